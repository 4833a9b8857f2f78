"""redis-py clients for REDIS_URL: one per event loop, one for sync code.

asyncio connections belong to the loop that opened them, and tests (and
async_to_sync) run several loops in one process, so async clients are kept per
loop rather than in a module global. Every wait is bounded and nothing is
retried (a retried write whose reply was lost could apply twice). A stopped
Redis refuses connections at once; the timeouts only bound a hung or
unreachable one. They are loose on purpose: under a burst an event loop can
take a second or more to get to a reply, and a tight timeout would then report
a busy process as Redis being down. Callers turn DOWN errors into what suits them.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff

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
_sync: dict[str, redis.Redis] = {}
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, redis.asyncio.Redis]] = (
    weakref.WeakKeyDictionary()
)


def url() -> str:
    found = getattr(settings, "REDIS_URL", None)
    if not found:
        raise ImproperlyConfigured("REDIS_URL is not set (see the system check live.E004).")
    return str(found)


def sync_client() -> redis.Redis:
    """The process's sync client (its pool is thread-safe)."""
    address = url()
    if address not in _sync:
        retry = redis.retry.Retry(NoBackoff(), 0)
        pool = redis.BlockingConnectionPool.from_url(address, retry=retry, **_OPTIONS)
        _sync[address] = redis.Redis(connection_pool=pool)
    return _sync[address]


def async_client() -> redis.asyncio.Redis:
    """The running event loop's client."""
    address = url()
    clients = _async.setdefault(asyncio.get_running_loop(), {})
    if address not in clients:
        retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
        pool = redis.asyncio.BlockingConnectionPool.from_url(address, retry=retry, **_OPTIONS)
        clients[address] = redis.asyncio.Redis(connection_pool=pool)
    return clients[address]


async def aclose() -> None:
    """Close the running loop's clients (tests, before their loop ends)."""
    for client in _async.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose(close_connection_pool=True)
