"""The metrics sampler: one task per event loop, a sample a second, whether or not anyone watches.

The process's first request (live.http.middleware) or socket starts the
sampler of its loop; from then on it closes one second of the counters in
live.metrics every second and keeps the last five minutes. A second in which
the loop was held is not made up afterwards: it stays a gap in the history.
Counting the active sessions reads the store (a query, or a SCAN of Redis), so
that gauge is refreshed every few seconds, and less often where counting is
slow (many sessions): it never takes more than COUNT_SHARE of the process's
time, watched or not; the rates are exact every second.
With REDIS_URL set, each sampler also keeps this process in a short-lived
sorted set in Redis, so the page can say how many processes there are.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings

from live import metrics
from live.loops import PerLoop
from live.realtime.presence import PROCESS
from live.sessions import watched

logger = logging.getLogger(__name__)

SECOND = 1.0
# "Active" sessions: changed within the window the page shows.
ACTIVE_WINDOW = float(metrics.HISTORY_SECONDS)
# Seconds between counts at least; more when one count takes longer than
# COUNT_SHARE of the time until the next.
COUNT_EVERY = 5.0
COUNT_SHARE = 0.01
# A sorted set of process names scored by when each last sampled; a process
# that stops sampling drops out of the count after PROCESS_SECONDS.
PROCESSES = "live:metrics:processes"
PROCESS_SECONDS = 15.0

Listener = Callable[[metrics.Snapshot], Awaitable[None]]


@dataclass
class Sampler:
    """A loop's history, its sampling task, and who hears of each new sample."""

    history: metrics.History = field(default_factory=metrics.History)
    task: asyncio.Task[None] | None = None
    listeners: set[Listener] = field(default_factory=set)
    sessions: int = 0
    processes: int | None = None
    # When the next count of the sessions is due, on this clock.
    count_due: float = 0.0
    clock: Callable[[], float] = time.monotonic

    def snapshot(self, now: float | None = None) -> metrics.Snapshot:
        now = time.time() if now is None else now
        return metrics.Snapshot(list(self.history.samples), now, os.getpid(), self.processes)

    async def tick(self, now: float | None = None) -> metrics.Sample:
        """Take one sample (the periodic task calls this; tests may too)."""
        now = time.time() if now is None else now
        started = self.clock()
        if started >= self.count_due:
            self.sessions = await _count_sessions(now, self.sessions)
            self.processes = await _count_processes(now)
            took = self.clock() - started
            self.count_due = started + max(COUNT_EVERY, took / COUNT_SHARE)
        return self.history.sample(self.sessions, now)


_samplers: PerLoop[Sampler] = PerLoop(Sampler)


def start() -> Sampler:
    """The running loop's sampler, its task started if it is not running yet."""
    sampler = _samplers.get()
    if sampler.task is None or sampler.task.done():
        sampler.task = asyncio.ensure_future(_run(sampler))
    return sampler


def reset() -> None:
    """Forget every loop's sampler (tests); a running task keeps its own history."""
    _samplers.clear()


async def _run(sampler: Sampler) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        # A clock, not a wait for a message: each sample is the rate over one second.
        due = max(due + SECOND, loop.time())
        await asyncio.sleep(due - loop.time())
        try:
            await sampler.tick()
        except Exception:
            logger.exception("Could not sample the metrics")
            continue
        snapshot = sampler.snapshot()
        for listener in list(sampler.listeners):
            try:
                await listener(snapshot)
            except Exception:
                logger.exception("Could not hand a metrics sample on")


async def _count_sessions(now: float, before: int) -> int:
    try:
        return await watched.count_active(now - ACTIVE_WINDOW)
    except Exception as exc:
        # The store may be down or not set up yet; the gauge keeps its last value.
        logger.warning("Could not count the active sessions: %s", exc.__class__.__name__)
        return before


async def _count_processes(now: float) -> int | None:
    """How many processes sampled lately, this one included; None without Redis or when down."""
    if not getattr(settings, "REDIS_URL", None):
        return None
    from live import redis_client  # redis-py is an extra: only a shared setup imports it

    try:
        pipe = redis_client.async_client().pipeline(transaction=False)
        pipe.zadd(PROCESSES, {PROCESS: now})
        pipe.zremrangebyscore(PROCESSES, "-inf", now - PROCESS_SECONDS)
        pipe.expire(PROCESSES, int(PROCESS_SECONDS))
        pipe.zcard(PROCESSES)
        replies = await pipe.execute()
    except redis_client.DOWN:
        return None
    return int(replies[-1])
