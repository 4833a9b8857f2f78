"""The server's own counters, sampled once a second while someone watches /metrics/.

Counting is an integer increment on paths that already do far more work; the
push-lag samples (a float per push) are only kept while a watcher is
connected, so the counters cost nothing measurable when nobody looks.
Counters are per process: with several processes, each page shows its own.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

HISTORY_SECONDS = 300


@dataclass
class Counters:
    writes: int = 0
    pushes: int = 0
    errors: int = 0
    refused: int = 0
    sockets: int = 0
    watchers: int = 0
    lags: list[float] = field(default_factory=list)


@dataclass
class Sample:
    """One second of the server's life."""

    at: float
    sessions: int
    sockets: int
    writes: float
    pushes: float
    lag_p50_ms: float
    lag_p99_ms: float
    errors: float


# Module-level rather than per loop: they count for the process, whichever loop
# or thread does the work.
counters = Counters()
history: deque[Sample] = deque(maxlen=HISTORY_SECONDS)
_last = {"at": 0.0, "writes": 0, "pushes": 0, "errors": 0}


def wrote() -> None:
    counters.writes += 1


def pushed(sent_at: float, tabs: int = 1) -> None:
    """One change sent to `tabs` tabs; the lag is until the last of them."""
    counters.pushes += tabs
    if counters.watchers:
        counters.lags.append(time.time() - sent_at)


def responded(status: int) -> None:
    if status >= 500:
        counters.errors += 1
    elif status in (400, 409, 413, 429):
        counters.refused += 1


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def sample(sessions: int) -> Sample:
    """Close the current second: rates since the last sample, lag percentiles, then reset."""
    now = time.time()
    elapsed = max(now - _last["at"], 1e-6) if _last["at"] else 1.0
    lags, counters.lags = counters.lags, []
    current = Sample(
        at=now,
        sessions=sessions,
        sockets=counters.sockets,
        writes=(counters.writes - _last["writes"]) / elapsed,
        pushes=(counters.pushes - _last["pushes"]) / elapsed,
        lag_p50_ms=_percentile(lags, 0.5) * 1000,
        lag_p99_ms=_percentile(lags, 0.99) * 1000,
        errors=(counters.errors - _last["errors"]) / elapsed,
    )
    _last.update(at=now, writes=counters.writes, pushes=counters.pushes, errors=counters.errors)
    history.append(current)
    return current


def reset() -> None:
    global counters
    counters = Counters()
    history.clear()
    _last.update(at=0.0, writes=0, pushes=0, errors=0)
