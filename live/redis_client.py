"""redis-py clients for REDIS_URL: one per event loop, one for sync code.

asyncio connections belong to the loop that opened them, and tests (and
async_to_sync) run several loops in one process, so async clients are kept per
loop (live.loops.PerLoop). Every wait is bounded and nothing is
retried (a retried write whose reply was lost could apply twice). A stopped
Redis refuses connections at once; the timeouts only bound a hung or
unreachable one. They are loose on purpose: under a burst an event loop can
take a second or more to get to a reply, and a tight timeout would then report
a busy process as Redis being down. Callers turn DOWN errors into what suits them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff

from live.loops import PerLoop

CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 5.0
# Connections per client; a burst of requests waits for one to free up (a
# pool that refuses instead turns a busy second into errors).
MAX_CONNECTIONS = 50
POOL_TIMEOUT = 10.0
# What a client raises when Redis is down, restarting, unreachable or too slow.
DOWN = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, OSError)

_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": CONNECT_TIMEOUT,
    "socket_timeout": SOCKET_TIMEOUT,
    "socket_keepalive": True,
    "max_connections": MAX_CONNECTIONS,
    "timeout": POOL_TIMEOUT,
}
# Each loop's clients, by URL.
_async: PerLoop[dict[str, redis.asyncio.Redis]] = PerLoop(dict)


def url() -> str:
    found = getattr(settings, "REDIS_URL", None)
    if not found:
        raise ImproperlyConfigured("REDIS_URL is not set (see the system check live.E004).")
    return str(found)


def sync_client() -> redis.Redis:
    """The process's sync client (its pool is thread-safe)."""
    return _sync_client(url())


@cache
def _sync_client(address: str) -> redis.Redis:
    retry = redis.retry.Retry(NoBackoff(), 0)
    pool = redis.BlockingConnectionPool.from_url(address, retry=retry, **_OPTIONS)
    return redis.Redis(connection_pool=pool)


def async_client() -> redis.asyncio.Redis:
    """The running event loop's client."""
    address = url()
    clients = _async.get()
    if address not in clients:
        retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
        pool = redis.asyncio.BlockingConnectionPool.from_url(address, retry=retry, **_OPTIONS)
        clients[address] = redis.asyncio.Redis(connection_pool=pool)
    return clients[address]


async def aclose() -> None:
    """Close the running loop's clients (tests, before their loop ends)."""
    clients = _async.get()
    while clients:
        _address, client = clients.popitem()
        await client.aclose(close_connection_pool=True)
