"""When each request is sent: on a fixed timeline (open loop) or as soon as possible.

Open loop follows wrk2: request number s of the whole test is due at
start + s / rate, user u owns the numbers u, u + users, u + 2 * users, ...,
and latency runs from the due time, not from when the request actually left.
A slow answer then delays the user's next sends and that delay is counted,
instead of silently lowering the rate (coordinated omission). Numbering by
global user index gives every process its share of one timeline and of
--requests without talking to the others.
"""

from __future__ import annotations

from time import perf_counter

from live.loadtest.config import Config


class Schedule:
    def __init__(self, config: Config, budget: int | None) -> None:
        self.config = config
        # Closed loop with --requests: this process's share, claimed first come first served.
        self.budget = budget
        self.claimed = 0
        self.start = 0.0
        self.end = float("inf")
        self.stopped = False

    def begin(self, start: float) -> None:
        self.start = start
        if self.config.duration is not None:
            self.end = start + self.config.duration

    def stop(self) -> None:
        """End the test early (Ctrl-C): no new sends; answers still awaited and reported."""
        self.end = 0.0
        self.stopped = True

    def claim(self, user: int, slot: int) -> float | None:
        """The due time of a user's request number `slot`, or None when the test is over."""
        config = self.config
        if config.rate is not None:
            number = user + slot * config.users
            if config.requests is not None and number >= config.requests:
                return None
            due = self.start + number / config.rate
            return due if due < self.end else None
        now = perf_counter()
        if now >= self.end or (self.budget is not None and self.claimed >= self.budget):
            return None
        self.claimed += 1
        return now
