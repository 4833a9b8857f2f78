"""The expected state of each session, built from acknowledged writes only.

The server answers every write with the session version it produced, and
versions order all writes to one session whatever order the answers arrive
in. So the state of a key at version V is the last acknowledged event on it
at or below V: a set, a delete, or a clear (whose answer carries the whole
session). A write that failed without an answer may or may not have happened,
so the keys it touched are left out of every check ("unverifiable").

Checks: the final GET /api/session must hold exactly the latest acknowledged
state (else a write or a delete was lost); each GET of a key must not be older
than a write already acknowledged (stale read), and must hold the value the
history gives for the version it reports (inconsistent read). Reads are
checked when no write of the session is in flight, so the history up to their
version is complete; the history older than any pending read is then dropped,
which keeps memory flat in long runs.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_SAMPLES = 10
# Acknowledged writes between compactions of the history.
_COMPACT_AT = 256


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()
Event = tuple[int, Any]


@dataclass
class Consistency:
    """Counts of everything the model found wrong, summed over sessions."""

    sessions: int = 0
    verified_keys: int = 0
    lost_sets: int = 0
    lost_deletes: int = 0
    stale_reads: int = 0
    inconsistent_reads: int = 0
    unverifiable_keys: int = 0
    tabs_diverged: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lost_writes(self) -> int:
        return self.lost_sets + self.lost_deletes

    def note(self, kind: str, user: int, key: str, expected: Any, found: Any, version: int) -> None:
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(
                {
                    "kind": kind,
                    "user": user,
                    "key": key,
                    "expected": describe(expected),
                    "found": describe(found),
                    "version": version,
                }
            )

    def merge(self, other: Consistency) -> None:
        for name in (
            "sessions",
            "verified_keys",
            "lost_sets",
            "lost_deletes",
            "stale_reads",
            "inconsistent_reads",
            "unverifiable_keys",
            "tabs_diverged",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.samples.extend(other.samples[: max(0, 2 * MAX_SAMPLES - len(self.samples))])


def describe(value: Any) -> str:
    """A short spelling of a value for a report: the token of a generated value, else JSON."""
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, str) and ":" in value:
        return f"{value.partition(':')[0]}… ({len(value)} chars)"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"


class SessionModel:
    """What one user's session must hold, from its acknowledged writes."""

    def __init__(self, user: int, result: Consistency) -> None:
        self.user = user
        self.result = result
        self.history: dict[str, list[Event]] = {}
        # Whole-session states: the first GET /api/session, and each clear's answer.
        self.snapshots: list[tuple[int, dict[str, Any]]] = []
        self.acked = 0
        self.writes_in_flight = 0
        self._read_floors: Counter[int] = Counter()
        self._reads: list[tuple[str, Any, int, int]] = []
        self._unknown: set[str] = set()
        self._unknown_all = False
        # Events recorded since the last compaction: cheaper to test than every list.
        self._recorded = 0

    # --- writes -----------------------------------------------------------------

    def seed(self, version: int, data: dict[str, Any]) -> None:
        self.snapshots.append((version, dict(data)))
        self.acked = max(self.acked, version)

    def write_started(self) -> None:
        self.writes_in_flight += 1

    def set_acked(self, key: str, value: Any, version: int) -> None:
        self.history.setdefault(key, []).append((version, value))
        self._acked(version)

    def delete_acked(self, key: str, version: int) -> None:
        self.history.setdefault(key, []).append((version, ABSENT))
        self._acked(version)

    def clear_acked(self, version: int, data: dict[str, Any]) -> None:
        self.snapshots.append((version, data))
        self._acked(version)

    def write_refused(self) -> None:
        """A 4xx answer: by the contract the write changed nothing."""
        self._done()

    def write_unknown(self, key: str | None) -> None:
        """No usable answer (timeout, 5xx): the write may have happened. None means a clear."""
        if key is None:
            self._unknown_all = True
        else:
            self._unknown.add(key)
        self._done()

    def _acked(self, version: int) -> None:
        self.acked = max(self.acked, version)
        self._recorded += 1
        self._done()

    def _done(self) -> None:
        self.writes_in_flight -= 1
        if not self.writes_in_flight:
            self._settle()

    # --- reads ------------------------------------------------------------------

    def read_started(self) -> int:
        """Note a GET being sent; its answer may not be older than what is acked now."""
        floor = self.acked
        self._read_floors[floor] += 1
        return floor

    def read_done(self, floor: int, key: str | None, value: Any, version: int | None) -> None:
        """A GET's answer; key None for one that failed or found nothing to compare."""
        self._read_floors[floor] -= 1
        if not self._read_floors[floor]:
            del self._read_floors[floor]
        if key is not None and version is not None:
            self._reads.append((key, value, version, floor))
        if not self.writes_in_flight:
            self._settle()

    def _settle(self) -> None:
        for key, value, version, floor in self._reads:
            if version < floor:
                self.result.stale_reads += 1
                self.result.note("stale read", self.user, key, self.state(key), value, version)
            elif not self._unknowable(key) and self.state(key, version) != value:
                self.result.inconsistent_reads += 1
                expected = self.state(key, version)
                self.result.note("inconsistent read", self.user, key, expected, value, version)
        self._reads.clear()
        if self._recorded > _COMPACT_AT:
            self._compact(min(self._read_floors, default=self.acked))
            self._recorded = 0

    def _compact(self, floor: int) -> None:
        # Every future check looks at a version >= floor: keep the last event below it.
        def keep(events: list[Any]) -> list[Any]:
            older = [e for e in events if e[0] < floor]
            newer = [e for e in events if e[0] >= floor]
            return ([max(older, key=lambda e: e[0])] if older else []) + newer

        self.history = {key: keep(events) for key, events in self.history.items()}
        self.snapshots = keep(self.snapshots)

    # --- the expected state -------------------------------------------------------

    def _unknowable(self, key: str) -> bool:
        return self._unknown_all or key in self._unknown

    def state(self, key: str, version: int | None = None) -> Any:
        """The key's value at `version` (default: the latest), or ABSENT."""
        limit = self.acked if version is None else version
        best_version, best = -1, ABSENT
        for at, value in self.history.get(key, ()):
            if best_version <= at <= limit:
                best_version, best = at, value
        for at, data in self.snapshots:
            if best_version < at <= limit:
                best_version, best = at, data.get(key, ABSENT)
        return best

    def final(self, version: int, data: dict[str, Any]) -> None:
        """Compare the server's final state with every acknowledged write."""
        self._settle()
        result = self.result
        result.sessions += 1
        if version < self.acked:
            result.stale_reads += 1
            result.note("stale final read", self.user, "*", self.acked, version, version)
        keys = set(self.history).union(data, *(snapshot for _, snapshot in self.snapshots))
        for key in sorted(keys):
            if self._unknowable(key):
                result.unverifiable_keys += 1
                continue
            result.verified_keys += 1
            expected, found = self.state(key), data.get(key, ABSENT)
            if expected is ABSENT and found is not ABSENT:
                result.lost_deletes += 1
                result.note("lost delete", self.user, key, expected, found, version)
            elif expected is not ABSENT and (found is ABSENT or found != expected):
                result.lost_sets += 1
                result.note("lost write", self.user, key, expected, found, version)
