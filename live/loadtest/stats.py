"""Latency histograms and counters that are cheap to record and exact to merge.

A Histogram is log-linear like HdrHistogram: microseconds below 256 are
counted exactly and above that each power of two is split into 128 buckets,
so any percentile is within 0.8% of the truth while recording is one integer
increment. Fixed buckets, unlike a list of samples, merge across processes by
adding counts and keep memory flat however long the test runs.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from live.loadtest.config import OPERATIONS

_BITS = 8
_HALF = 1 << (_BITS - 1)
_MAX_US = (1 << 32) - 1  # about 71 minutes; anything longer is clamped
_SIZE = ((_MAX_US.bit_length() - _BITS + 1) << (_BITS - 1)) + _HALF


def _index(us: int) -> int:
    if us < (1 << _BITS):
        return us
    shift = us.bit_length() - _BITS
    return (shift << (_BITS - 1)) + (us >> shift)


def _upper(index: int) -> int:
    """The highest value that falls into a bucket."""
    if index < (1 << _BITS):
        return index
    shift = (index >> (_BITS - 1)) - 1
    mantissa = index - (shift << (_BITS - 1))
    return ((mantissa + 1) << shift) - 1


class Histogram:
    __slots__ = ("counts", "max_us", "min_us", "sum_us", "total")

    def __init__(self) -> None:
        self.counts = [0] * _SIZE
        self.total = 0
        self.sum_us = 0
        self.max_us = 0
        self.min_us = _MAX_US

    def record(self, seconds: float) -> None:
        us = int(seconds * 1_000_000)
        if us < 0:
            us = 0
        elif us > _MAX_US:
            us = _MAX_US
        self.counts[_index(us)] += 1
        self.total += 1
        self.sum_us += us
        if us > self.max_us:
            self.max_us = us
        if us < self.min_us:
            self.min_us = us

    def merge(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.sum_us += other.sum_us
        self.max_us = max(self.max_us, other.max_us)
        self.min_us = min(self.min_us, other.min_us)

    def percentile(self, percent: float) -> float:
        """The latency in milliseconds that `percent` of the samples do not exceed."""
        if not self.total:
            return 0.0
        rank = max(1, math.ceil(percent * self.total / 100))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(_upper(index), self.max_us) / 1000
        return self.max_us / 1000

    def summary(self, percents: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[str, float]:
        result = {f"p{p:g}": round(self.percentile(p), 3) for p in percents}
        result["max"] = round(self.max_us / 1000, 3)
        result["min"] = round((self.min_us if self.total else 0) / 1000, 3)
        result["mean"] = round(self.sum_us / self.total / 1000, 3) if self.total else 0.0
        return result

    # Pickled to move between processes: a dict of non-zero buckets is far smaller.
    def __getstate__(self) -> dict[str, Any]:
        nonzero = {i: c for i, c in enumerate(self.counts) if c}
        return {
            "counts": nonzero,
            "total": self.total,
            "sum_us": self.sum_us,
            "max_us": self.max_us,
            "min_us": self.min_us,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.counts = [0] * _SIZE
        for index, count in state["counts"].items():
            self.counts[index] = count
        self.total, self.sum_us = state["total"], state["sum_us"]
        self.max_us, self.min_us = state["max_us"], state["min_us"]


@dataclass
class OperationStats:
    """One operation's latencies and outcomes."""

    latency: Histogram = field(default_factory=Histogram)
    # 404 from GET or DELETE of a key that is not there: a normal answer, not an error.
    misses: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return self.latency.total

    def merge(self, other: OperationStats) -> None:
        self.latency.merge(other.latency)
        self.misses += other.misses
        self.errors.update(other.errors)


@dataclass
class PushStats:
    """How acknowledged writes reached the tabs."""

    # From the write's HTTP answer to a tab's receipt of that version or later.
    latency: Histogram = field(default_factory=Histogram)
    # From the write's request being sent to the tab's receipt: never negative, so it
    # still says something when the push beats the HTTP answer, as it usually does.
    from_send: Histogram = field(default_factory=Histogram)
    # Deliveries a tab had already received when the writer got its answer (counted as 0).
    early: int = 0
    missed: int = 0
    messages: int = 0
    resyncs: int = 0
    gaps: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)
    # Sockets that dropped without the server meaning it, by close code (1006: the
    # connection was lost), the new sockets that followed, and attempts refused meanwhile.
    drops: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    refused: int = 0
    # The server's own endings: 4307 (the session left the cookie's key), 4404 (no session).
    moved: int = 0
    ended: int = 0

    def merge(self, other: PushStats) -> None:
        self.latency.merge(other.latency)
        self.from_send.merge(other.from_send)
        self.early += other.early
        self.missed += other.missed
        self.messages += other.messages
        self.resyncs += other.resyncs
        self.gaps += other.gaps
        self.unexpected.update(other.unexpected)
        self.drops.update(other.drops)
        self.reconnects += other.reconnects
        self.refused += other.refused
        self.moved += other.moved
        self.ended += other.ended


@dataclass
class StepStats:
    """One named step of a scenario: its latencies, errors and the pushes it caused."""

    latency: Histogram = field(default_factory=Histogram)
    errors: Counter[str] = field(default_factory=Counter)
    # The first reason seen for each kind of error, one line each.
    reasons: dict[str, str] = field(default_factory=dict)
    # From the step's answer to a tab's receipt of its change, and from its sending.
    push: Histogram = field(default_factory=Histogram)
    push_from_send: Histogram = field(default_factory=Histogram)
    early: int = 0
    missed: int = 0
    name: str = ""

    @property
    def count(self) -> int:
        return self.latency.total

    def error(self, kind: str, reason: str) -> None:
        self.errors[kind] += 1
        self.reasons.setdefault(kind, reason)

    def merge(self, other: StepStats) -> None:
        self.latency.merge(other.latency)
        self.errors.update(other.errors)
        for kind, reason in other.reasons.items():
            self.reasons.setdefault(kind, reason)
        self.push.merge(other.push)
        self.push_from_send.merge(other.push_from_send)
        self.early += other.early
        self.missed += other.missed


@dataclass
class Stats:
    """Everything one process measured; merged across processes by `merge`."""

    operations: dict[str, OperationStats] = field(
        default_factory=lambda: {name: OperationStats() for name in OPERATIONS}
    )
    push: PushStats = field(default_factory=PushStats)
    # A scenario's named steps, in the order first seen.
    steps: dict[str, StepStats] = field(default_factory=dict)
    # How late sends left compared with their scheduled time (open loop only).
    max_lag: float = 0.0

    @property
    def requests(self) -> int:
        return sum(op.count for op in self.operations.values()) + sum(
            step.count for step in self.steps.values()
        )

    @property
    def errors(self) -> int:
        return sum(sum(op.errors.values()) for op in self.operations.values()) + sum(
            sum(step.errors.values()) for step in self.steps.values()
        )

    def step(self, name: str) -> StepStats:
        found = self.steps.get(name)
        if found is None:
            found = self.steps[name] = StepStats(name=name)
        return found

    def merge(self, other: Stats) -> None:
        for name, op in other.operations.items():
            self.operations[name].merge(op)
        for name, step in other.steps.items():
            self.step(name).merge(step)
        self.push.merge(other.push)
        self.max_lag = max(self.max_lag, other.max_lag)
