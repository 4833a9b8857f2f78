"""The server's own counters, and the history of one-second samples taken of them.

Counting is an integer increment on paths that already do far more work; the
push-lag samples (a float per push) are capped per second, so the counters cost
nothing measurable whether or not anyone looks. Counters are per process: with
several processes, each keeps and shows its own. live.sampler closes a second.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

HISTORY_SECONDS = 300
# A flood of pushes keeps the first lags of the second: enough for percentiles,
# and bounded even when nothing samples (a process that only publishes).
MAX_LAGS = 10_000


@dataclass
class Counters:
    requests: int = 0
    writes: int = 0
    pushes: int = 0
    errors: int = 0
    refused: int = 0
    sockets: int = 0
    lags: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    """One second of the server's life: gauges as counted, rates per second since the last."""

    at: float
    sessions: int
    sockets: int
    requests: float
    writes: float
    pushes: float
    errors: float
    lag_p50_ms: float
    lag_p99_ms: float


@dataclass(frozen=True)
class Snapshot:
    """What the metrics page draws: the samples, the moment it is drawn, and whose they are."""

    samples: list[Sample]
    now: float
    pid: int
    # Processes known to be running (Redis), None when this is the only one or it is unknown.
    processes: int | None = None


# Module-level rather than per loop: they count for the process, whichever loop
# or thread does the work.
counters = Counters()


def wrote() -> None:
    counters.writes += 1


def pushed(sent_at: float, tabs: int = 1) -> None:
    """One change sent to `tabs` tabs; the lag is until the last of them."""
    counters.pushes += tabs
    if len(counters.lags) < MAX_LAGS:
        counters.lags.append(time.time() - sent_at)


def responded(status: int) -> None:
    counters.requests += 1
    if status >= 500:
        counters.errors += 1
    elif status in (400, 409, 413, 429):
        counters.refused += 1


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _totals() -> tuple[int, int, int, int]:
    return counters.requests, counters.writes, counters.pushes, counters.errors


class History:
    """The last five minutes of samples, each closing the counters' second since the one before."""

    def __init__(self, seconds: int = HISTORY_SECONDS, now: float | None = None) -> None:
        self.samples: deque[Sample] = deque(maxlen=seconds)
        # The first second runs from now: what was counted before belongs to no second drawn.
        self._at = time.time() if now is None else now
        self._totals = _totals()

    def sample(self, sessions: int, now: float | None = None) -> Sample:
        """Close the current second: rates since the last sample, lag percentiles."""
        now = time.time() if now is None else now
        totals = _totals()
        elapsed = max(now - self._at, 1e-6)
        requests, writes, pushes, errors = (
            (total - before) / elapsed for total, before in zip(totals, self._totals, strict=True)
        )
        lags, counters.lags = counters.lags, []
        current = Sample(
            at=now,
            sessions=sessions,
            sockets=counters.sockets,
            requests=requests,
            writes=writes,
            pushes=pushes,
            errors=errors,
            lag_p50_ms=_percentile(lags, 0.5) * 1000,
            lag_p99_ms=_percentile(lags, 0.99) * 1000,
        )
        self._at, self._totals = now, totals
        self.samples.append(current)
        return current


def reset() -> None:
    global counters
    counters = Counters()
