"""Limits that keep one client from hurting the others: token buckets and write slots.

Each bucket holds up to `burst` tokens and gets `rate` back a second; an
action takes one token or is refused. Writes are limited per session digest,
in this process (with several processes each enforces its own share, which
bounds the total just the same); each socket keeps a bucket for its resyncs.

A session's writes also take turns: at most WRITES_IN_FLIGHT of them run at
once in a process, the next WRITES_QUEUED wait (costing nothing while they
wait, and at most WRITE_WAIT seconds), and any more are refused. One
session's flood then holds only a few of the process's turns, and other
sessions' writes are served between them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from live.conf import setting
from live.loops import PerLoop


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


class Busy(Exception):
    """Too many writes to one session are already running or waiting."""


@dataclass
class _Slots:
    free: asyncio.Semaphore
    holders: int = 0


# Only sessions being written right now have an entry; the last writer removes it.
_slots: PerLoop[dict[str, _Slots]] = PerLoop(dict)


@asynccontextmanager
async def writing(digest: str) -> AsyncIterator[None]:
    """Hold one of the session's write slots for the duration.

    Busy when too many wait already, or when no slot frees up within
    WRITE_WAIT seconds: a request never waits long for its turn.
    """
    running = int(setting("WRITES_IN_FLIGHT"))
    slots = _slots.get()
    entry = slots.get(digest)
    if entry is None:
        entry = slots[digest] = _Slots(asyncio.Semaphore(running))
    if entry.holders >= running + int(setting("WRITES_QUEUED")):
        raise Busy
    entry.holders += 1
    try:
        try:
            async with asyncio.timeout(float(setting("WRITE_WAIT"))):
                await entry.free.acquire()
        except TimeoutError:
            raise Busy from None
        try:
            yield
        finally:
            entry.free.release()
    finally:
        entry.holders -= 1
        if not entry.holders:
            del slots[digest]
