"""Limits that keep one client from hurting the others: token buckets.

Each bucket holds up to `burst` tokens and gets `rate` back a second; an
action takes one token or is refused. Writes are limited per session digest,
in this process (with several processes each enforces its own share, which
bounds the total just the same); each socket keeps a bucket for its resyncs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

from live.conf import setting


@dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float = field(init=False)
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        """Take a token; False means "slow down"."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


# Bounded so that many sessions cannot grow it without end: the bucket of the
# session written to least lately goes first, and comes back full, as it
# would have refilled by then.
@lru_cache(maxsize=100_000)
def _bucket(digest: str) -> Bucket:
    return Bucket(float(setting("WRITE_RATE")), float(setting("WRITE_BURST")))


def allow_write(digest: str) -> bool:
    """Take a token for one write to this session; False means "slow down"."""
    return _bucket(digest).take()


def reset() -> None:
    _bucket.cache_clear()
