"""The expected state of each session, built from acknowledged writes only.

The server answers every write with the session version it produced, and
versions order all writes to one session whatever order the answers arrive
in. So the state of a key at version V is the last acknowledged event on it
at or below V: a set, a delete, or a clear (whose answer carries the whole
session). A write refused before it reached the server (connection refused)
changed nothing. A write that got no answer (a timeout, a dropped connection,
a 5xx) may or may not have happened, and is kept with the time it was sent.

Checks: the final GET /api/session must hold the latest acknowledged state of
every key, or else a value that a write without an answer explains: its
value, or absence after a delete or clear. Such a write landed after every
acknowledged write to the key only if it was sent after all their answers
came; then the key is verified. Otherwise the final state cannot tell an
acknowledged write lost from one overwritten by the unanswered write, and the
key is counted as unverifiable, as are the keys of a session whose final read
failed; a run with any of those proves nothing about them and fails. Any
other difference is a lost write or delete. Each GET of a key must not be older
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
    acked_writes: int = 0
    verified_keys: int = 0
    lost_sets: int = 0
    lost_deletes: int = 0
    stale_reads: int = 0
    inconsistent_reads: int = 0
    # Keys whose check the final state cannot decide, and sessions whose final read failed.
    undecided_keys: int = 0
    unread_sessions: int = 0
    unread_keys: int = 0
    tabs_diverged: int = 0
    # Tabs closed by the server because their session ended (4404): not compared.
    tabs_ended: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lost_writes(self) -> int:
        return self.lost_sets + self.lost_deletes

    @property
    def unverifiable_keys(self) -> int:
        return self.undecided_keys + self.unread_keys

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
            "acked_writes",
            "verified_keys",
            "lost_sets",
            "lost_deletes",
            "stale_reads",
            "inconsistent_reads",
            "undecided_keys",
            "unread_sessions",
            "unread_keys",
            "tabs_diverged",
            "tabs_ended",
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
        # When the last acknowledged write to each key, and the last clear, was answered
        # (perf_counter): the server applied them before then.
        self._answered: dict[str, float] = {}
        self._cleared = float("-inf")
        # Writes without an answer: (value or ABSENT, when sent) per key, and clears' send times.
        self._unknown: dict[str, list[tuple[Any, float]]] = {}
        self._unknown_clears: list[float] = []
        # Events recorded since the last compaction: cheaper to test than every list.
        self._recorded = 0

    # --- writes -----------------------------------------------------------------

    def seed(self, version: int, data: dict[str, Any]) -> None:
        self.snapshots.append((version, dict(data)))
        self.acked = max(self.acked, version)

    def write_started(self) -> None:
        self.writes_in_flight += 1

    def set_acked(self, key: str, value: Any, version: int, at: float) -> None:
        """A set answered at `at` (perf_counter) with `version`."""
        self.history.setdefault(key, []).append((version, value))
        self._answered[key] = max(self._answered.get(key, at), at)
        self._acked(version)

    def delete_acked(self, key: str, version: int, at: float) -> None:
        self.history.setdefault(key, []).append((version, ABSENT))
        self._answered[key] = max(self._answered.get(key, at), at)
        self._acked(version)

    def clear_acked(self, version: int, data: dict[str, Any], at: float) -> None:
        self.snapshots.append((version, data))
        self._cleared = max(self._cleared, at)
        self._acked(version)

    def write_refused(self) -> None:
        """A 4xx answer, or no connection at all: the write changed nothing."""
        self._done()

    def write_unknown(self, key: str | None, value: Any, sent: float) -> None:
        """No usable answer (timeout, dropped connection, 5xx): the write may have happened.

        `key` None means a clear; `value` is what a set wrote, ABSENT for a delete;
        `sent` is when the request left (perf_counter).
        """
        if key is None:
            self._unknown_clears.append(sent)
        else:
            self._unknown.setdefault(key, []).append((value, sent))
        self._done()

    def _acked(self, version: int) -> None:
        self.acked = max(self.acked, version)
        self.result.acked_writes += 1
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
        return bool(self._unknown_clears) or key in self._unknown

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

    def explained(self, key: str, found: Any) -> bool | None:
        """Whether a write without an answer explains `found`: True when it landed after
        every acknowledged write to the key, None when it may have landed before one
        (undecidable), False when none explains it."""
        sent = [at for value, at in self._unknown.get(key, ()) if value is found or value == found]
        if found is ABSENT:
            sent += self._unknown_clears
        if not sent:
            return False
        answered = max(self._answered.get(key, float("-inf")), self._cleared)
        return True if max(sent) > answered else None

    def keys(self) -> set[str]:
        """Every key the model knows of: written, deleted, or in a whole-session state."""
        return set(self.history).union(*(snapshot for _, snapshot in self.snapshots))

    def final(self, version: int, data: dict[str, Any]) -> None:
        """Compare the server's final state with every acknowledged write."""
        self._settle()
        result = self.result
        result.sessions += 1
        if version < self.acked:
            result.stale_reads += 1
            result.note("stale final read", self.user, "*", self.acked, version, version)
        for key in sorted(self.keys().union(data)):
            expected, found = self.state(key), data.get(key, ABSENT)
            if found is expected or found == expected:
                result.verified_keys += 1
                continue
            explained = self.explained(key, found)
            if explained is None:
                result.undecided_keys += 1
                result.note("unverifiable", self.user, key, expected, found, version)
                continue
            result.verified_keys += 1
            if explained:
                continue
            if expected is ABSENT:
                result.lost_deletes += 1
                result.note("lost delete", self.user, key, expected, found, version)
            else:
                result.lost_sets += 1
                result.note("lost write", self.user, key, expected, found, version)

    def unread(self) -> None:
        """The final read failed: none of this session's keys can be checked."""
        self._settle()
        self.result.sessions += 1
        self.result.unread_sessions += 1
        self.result.unread_keys += len(self.keys())


class DeclaredModel:
    """What a scenario user's session must hold, from the writes its steps declared.

    A scenario user sends one request at a time, so the order of its answers
    is the order in which the server applied them and no versions are needed.
    Only declared keys are checked: views write others (a login's
    `_auth_user_id`) that the scenario does not promise. A step that declares
    `clears` (a logout, a flush) empties the session. A declared write without
    a usable answer may or may not have happened: its key is checked only if a
    later acknowledged write settles it.
    """

    def __init__(self, user: int, result: Consistency) -> None:
        self.user = user
        self.result = result
        self.expected: dict[str, Any] = {}
        self.unknown: set[str] = set()
        self.unknown_clear = False
        # The step that last declared each key, and the keys found lost: (step, what was found).
        self.steps: dict[str, str] = {}
        self.lost: list[tuple[str, str]] = []

    def acked(self, writes: dict[str, Any], clears: bool, step: str = "") -> None:
        if clears:
            self.expected = dict.fromkeys(self.expected, ABSENT)
            self.unknown_clear = False
            self.unknown.clear()
        for key, value in writes.items():
            self.expected[key] = value
            self.unknown.discard(key)
            self.steps[key] = step
        self.result.acked_writes += 1

    def failed(self, writes: dict[str, Any], clears: bool) -> None:
        """No usable answer: each declared key (every key, for a clear) is now unknown."""
        self.unknown.update(writes)
        if clears:
            self.unknown_clear = True

    def final(self, data: dict[str, Any]) -> None:
        result = self.result
        result.sessions += 1
        for key in sorted(self.expected.keys() | self.unknown):
            expected, found = self.expected.get(key, ABSENT), data.get(key, ABSENT)
            if found is expected or found == expected:
                result.verified_keys += 1
            elif key in self.unknown or self.unknown_clear:
                result.undecided_keys += 1
                result.note("unverifiable", self.user, key, expected, found, -1)
            elif expected is ABSENT:
                result.verified_keys += 1
                result.lost_deletes += 1
                result.note("lost delete", self.user, key, expected, found, -1)
                self._lost(key, expected, found)
            else:
                result.verified_keys += 1
                result.lost_sets += 1
                result.note("lost write", self.user, key, expected, found, -1)
                self._lost(key, expected, found)

    def _lost(self, key: str, expected: Any, found: Any) -> None:
        what = f"{key}: declared {describe(expected)}, found {describe(found)}"
        self.lost.append((self.steps.get(key, ""), what))

    def unread(self) -> None:
        self.result.sessions += 1
        self.result.unread_sessions += 1
        self.result.unread_keys += len(self.expected.keys() | self.unknown)
