"""redis-py clients for REDIS_URL: one per event loop, one for sync code.

asyncio connections belong to the loop that opened them, and tests (and
async_to_sync) run several loops in one process, so async clients are kept per
loop (live.loops.PerLoop). Every wait is bounded by BUDGET, the longest a
request may wait on Redis: a stopped Redis refuses connections at once, and the
timeouts bound a hung or unreachable one. redis-py retries nothing (a retried
write whose reply was lost could apply twice); callers retry what is safe to
retry, and turn DOWN errors into what suits them.

redis-py checks a pooled connection before handing it out and reconnects one
that the server closed (after a restart), but skips that check while its
maintenance notifications are on, as they are by default with RESP3; this
project has no use for them, so they are off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from live.loops import PerLoop

# The longest one operation waits on Redis in all (the pool, connecting, the
# reply, a retry): a person at the page gets an answer within it.
BUDGET = 2.0
CONNECT_TIMEOUT = BUDGET
SOCKET_TIMEOUT = BUDGET
# Connections per client; a burst of requests waits for one to free up (a
# pool that refuses instead turns a busy second into errors).
MAX_CONNECTIONS = 50
POOL_TIMEOUT = BUDGET
# What a client raises when Redis is down, restarting, unreachable or too slow.
DOWN = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, OSError)

_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": CONNECT_TIMEOUT,
    "socket_timeout": SOCKET_TIMEOUT,
    "socket_keepalive": True,
    "max_connections": MAX_CONNECTIONS,
    "timeout": POOL_TIMEOUT,
    "maint_notifications_config": MaintNotificationsConfig(enabled=False),
}
# Each loop's clients, by URL.
_async: PerLoop[dict[str, redis.asyncio.Redis]] = PerLoop(dict)


@dataclass
class Attempt:
    """One command's way to Redis: once it holds a connection, the command may have run."""

    connected: bool = False


_attempt: ContextVar[Attempt | None] = ContextVar("live_redis_attempt", default=None)


@contextmanager
def attempt() -> Iterator[Attempt]:
    """Note whether the commands sent inside got as far as a connection."""
    current = Attempt()
    token = _attempt.set(current)
    try:
        yield current
    finally:
        _attempt.reset(token)


def _connected() -> None:
    current = _attempt.get()
    if current is not None:
        current.connected = True


class _Pool(redis.BlockingConnectionPool):
    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        # Connecting, and waiting for a connection, send nothing of the caller's.
        connection = super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        _connected()
        return connection


class _AsyncPool(redis.asyncio.BlockingConnectionPool):
    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        _connected()
        return connection


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
    pool = _Pool.from_url(address, retry=retry, **_OPTIONS)
    return redis.Redis(connection_pool=pool)


def async_client() -> redis.asyncio.Redis:
    """The running event loop's client."""
    address = url()
    clients = _async.get()
    if address not in clients:
        retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
        pool = _AsyncPool.from_url(address, retry=retry, **_OPTIONS)
        clients[address] = redis.asyncio.Redis(connection_pool=pool)
    return clients[address]


async def aclose() -> None:
    """Close the running loop's clients (tests, before their loop ends)."""
    clients = _async.get()
    while clients:
        _address, client = clients.popitem()
        await client.aclose(close_connection_pool=True)
