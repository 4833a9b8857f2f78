"""How many tabs are open on each session, counted where the sockets are.

In one process a dict is the truth. With several processes (REDIS_URL set)
the counts live in one Redis hash so every process reports the same total.
"""

from __future__ import annotations

from collections import Counter

from django.conf import settings

_local: Counter[str] = Counter()
_REDIS_HASH = "live:presence"
_redis = None


def _client():  # type: ignore[no-untyped-def]
    global _redis
    if _redis is None:
        from redis.asyncio import Redis

        _redis = Redis.from_url(str(settings.REDIS_URL), socket_timeout=2, socket_connect_timeout=2)
    return _redis


async def join(digest: str) -> int:
    """Count one more tab on a session and return the new total."""
    if getattr(settings, "REDIS_URL", None):
        return int(await _client().hincrby(_REDIS_HASH, digest, 1))
    _local[digest] += 1
    return _local[digest]


async def leave(digest: str) -> int:
    """Count one tab fewer and return the new total."""
    if getattr(settings, "REDIS_URL", None):
        tabs = int(await _client().hincrby(_REDIS_HASH, digest, -1))
        if tabs <= 0:
            await _client().hdel(_REDIS_HASH, digest)
        return max(tabs, 0)
    _local[digest] -= 1
    tabs = _local[digest]
    if tabs <= 0:
        del _local[digest]
    return max(tabs, 0)


async def count(digest: str) -> int:
    if getattr(settings, "REDIS_URL", None):
        raw = await _client().hget(_REDIS_HASH, digest)
        return int(raw or 0)
    return _local.get(digest, 0)


def reset() -> None:
    """Forget the local counts (tests, and a fresh process)."""
    _local.clear()
