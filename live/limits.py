"""Limits that keep one client from hurting the others: write rate per session.

A token bucket per session digest, in this process: each write takes a token,
tokens come back at WRITE_RATE per second up to WRITE_BURST. With several
processes each enforces its own share, which bounds the total just the same.
"""

from __future__ import annotations

import time

from live.conf import setting

_buckets: dict[str, tuple[float, float]] = {}
# Forget idle sessions' buckets so the dict cannot grow without bound.
_MAX_BUCKETS = 100_000


def allow_write(digest: str) -> bool:
    """Take a token for one write to this session; False means "slow down"."""
    rate, burst = float(setting("WRITE_RATE")), float(setting("WRITE_BURST"))
    now = time.monotonic()
    tokens, last = _buckets.get(digest, (burst, now))
    tokens = min(burst, tokens + (now - last) * rate)
    if tokens < 1:
        _buckets[digest] = (tokens, now)
        return False
    if len(_buckets) >= _MAX_BUCKETS and digest not in _buckets:
        _buckets.clear()
    _buckets[digest] = (tokens - 1, now)
    return True


def reset() -> None:
    _buckets.clear()
