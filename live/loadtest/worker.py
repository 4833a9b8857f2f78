"""One process of a load test: one event loop running a share of the users.

The phases are the same in every process: set up all users (sessions, tokens,
tabs), wait for the common start, run, wait briefly for pushes still on their
way, then verify every session. Only the running phase is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from time import perf_counter

import aiohttp

from live.loadtest.client import User
from live.loadtest.config import Config
from live.loadtest.model import Consistency
from live.loadtest.scenario import load
from live.loadtest.schedule import Schedule
from live.loadtest.stats import OperationStats, Stats
from live.loadtest.visitor import ScenarioUser, missed

# Users setting up at once: enough to be quick, few enough not to look like an attack.
SETUP_PARALLEL = 32
TICK = 0.2


class Phase(IntEnum):
    SETUP = 0
    READY = 1
    RUNNING = 2
    DRAINING = 3
    VERIFYING = 4
    DONE = 5


@dataclass(frozen=True)
class Part:
    """The users [first, first + count) and, closed loop with --requests, their share of it."""

    first: int
    count: int
    budget: int | None


@dataclass
class Outcome:
    stats: Stats = field(default_factory=Stats)
    consistency: Consistency = field(default_factory=Consistency)
    elapsed: float = 0.0
    cpu: float = 0.0
    users: int = 0
    tabs: int = 0
    interrupted: bool = False

    def merge(self, other: Outcome) -> None:
        self.stats.merge(other.stats)
        self.consistency.merge(other.consistency)
        # Processes start together, so the test lasted as long as the slowest.
        self.elapsed = max(self.elapsed, other.elapsed)
        self.cpu += other.cpu
        self.users += other.users
        self.tabs += other.tabs
        self.interrupted |= other.interrupted


Progress = Callable[[Phase, int, int], None]
Begin = Callable[[], Awaitable[float]]


def split(config: Config) -> list[Part]:
    """Share users (and a closed loop's request budget) evenly among processes."""
    parts, first = [], 0
    for n in range(config.processes):
        count = config.users // config.processes + (n < config.users % config.processes)
        budget = None
        if config.requests is not None and config.rate is None:
            # Proportional to users, rounded so that the shares add up exactly.
            budget = config.requests * (first + count) // config.users
            budget -= config.requests * first // config.users
        parts.append(Part(first, count, budget))
        first += count
    return parts


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _now() -> float:
    return perf_counter()


@contextlib.contextmanager
def _on_interrupt(stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C stops sending; the answers, pushes and checks are still awaited and reported."""
    loop = asyncio.get_running_loop()
    presses = 0

    def pressed() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            raise KeyboardInterrupt  # a second Ctrl-C: give up waiting
        stop()

    try:
        loop.add_signal_handler(signal.SIGINT, pressed)
    except (NotImplementedError, RuntimeError):  # no signal handlers here (Windows, a thread)
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def run(config: Config, part: Part, progress: Progress, begin: Begin = _now) -> Outcome:
    outcome = Outcome(users=part.count, tabs=part.count * config.tabs)
    stats, phase = outcome.stats, Phase.SETUP
    connector = aiohttp.TCPConnector(
        # Every tab holds a connection for its whole life, and each request loop
        # needs one: aiohttp's default of 100 would queue requests behind them.
        limit=part.count * (config.tabs + config.concurrency) + 8,
        limit_per_host=0,
        ttl_dns_cache=None,
    )
    schedule = Schedule(config, part.budget)
    users: list[User]
    if config.scenario is None:
        users = [
            User(index, config, connector, stats, outcome.consistency, schedule)
            for index in range(part.first, part.first + part.count)
        ]
    else:
        scenario = load(config.scenario)
        users = [
            ScenarioUser(index, config, connector, stats, outcome.consistency, schedule, scenario)
            for index in range(part.first, part.first + part.count)
        ]

    async def tick() -> None:
        while True:
            progress(phase, stats.requests, stats.errors)
            await asyncio.sleep(TICK)

    ticker = asyncio.create_task(tick())
    try:
        gate = asyncio.Semaphore(SETUP_PARALLEL)

        async def start(user: User) -> None:
            async with gate:
                await user.start()

        # Let every set-up finish or fail before raising, so none is left running.
        for failure in await asyncio.gather(*(start(u) for u in users), return_exceptions=True):
            if isinstance(failure, BaseException):
                raise failure
        # --prefill's writes are set-up, not part of the measurement.
        stats.operations = {name: OperationStats() for name in stats.operations}
        phase = Phase.READY
        progress(phase, 0, 0)
        started = await begin()
        schedule.begin(started)
        phase = Phase.RUNNING
        cpu = _cpu_seconds()
        delay = started - perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        with _on_interrupt(schedule.stop):
            await asyncio.gather(*(user.run() for user in users))
            outcome.elapsed = perf_counter() - started
            outcome.cpu = _cpu_seconds() - cpu

            phase = Phase.DRAINING
            waiting = [f for user in users for tab in user.tabs if (f := tab.until_settled())]
            if waiting and config.drain:
                await asyncio.wait(waiting, timeout=config.drain)
            tabs = [tab for user in users for tab in user.tabs]
            stats.push.missed = sum(len(tab.pending) for tab in tabs) + missed(tabs)

            phase = Phase.VERIFYING
            await asyncio.gather(*(user.verify() for user in users))
        outcome.interrupted = schedule.stopped
        phase = Phase.DONE
        progress(phase, stats.requests, stats.errors)
        return outcome
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await asyncio.gather(*(user.close() for user in users), return_exceptions=True)
        await connector.close()
