"""Sessions that the event loop's SQLite connection answers from memory, while nobody else writes.

A read is otherwise a SELECT and the parse of the session's JSON, on every
request; with them the benchmark's read goal figure rises by about 4%
(docs/performance.md). SQLite's data_version changes once this connection's
next statement can see a commit of any other connection (another thread's,
another process's), and never for its own: checking it, a statement but no
row lookup and no parse, forgets every kept row at the first sign of anyone
else's write. The end of each of the connection's own transactions forgets
them too; the store then keeps the row it wrote.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from live.sessions.codec import loads, scalars_only
from live.types import Snapshot

# At most this many sessions, each at most this many characters of JSON: a
# parsed session takes a few times its text, so they bound the memory to a few
# tens of MB however large sessions grow; a larger one is read anew each time.
ROWS = 512
ROW_CHARS = 8192


def _fresh(snapshot: Snapshot) -> Snapshot:
    """A copy whose data and key versions can change without changing the kept one."""
    data = snapshot.data
    # Scalars under str keys are copied exactly by a shallow copy; a list or a
    # dict may be changed in place by its reader, so the text is parsed instead.
    return Snapshot(
        snapshot.digest,
        snapshot.version,
        dict(data) if scalars_only(data) else loads(snapshot.text),
        snapshot.masked_key,
        snapshot.expires_at,
        dict(snapshot.key_versions),
        snapshot.text,
    )


class KeptRows:
    """The rows of one connection, by digest, valid while data_version stands still."""

    def __init__(self) -> None:
        self._rows: dict[str, Snapshot] = {}
        self._seen: Any = None

    def checked(self, raw: sqlite3.Connection) -> KeptRows:
        """Forget every row if another connection committed since the last look."""
        try:
            version = raw.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            version = object()  # not knowing is as good as a change
        if version != self._seen:
            self._rows.clear()
            self._seen = version
        return self

    def get(self, digest: str) -> Snapshot | None:
        kept = self._rows.get(digest)
        return _fresh(kept) if kept is not None else None

    def keep(self, snapshot: Snapshot) -> None:
        if len(snapshot.text) > ROW_CHARS:
            # What was kept of the session, if anything, is older still.
            self._rows.pop(snapshot.digest, None)
            return
        if len(self._rows) >= ROWS and snapshot.digest not in self._rows:
            del self._rows[next(iter(self._rows))]
        # A copy: the caller goes on to change the one it holds.
        self._rows[snapshot.digest] = _fresh(snapshot)

    def clear(self) -> None:
        self._rows.clear()
