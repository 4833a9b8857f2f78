"""Each session's timeline on the database: what every version changed, and by whom.

A row per version that changed something, keyed by (digest, version); its
changes are the Applied list as JSON. The functions take a
live.sessions.connections.Db and run inside the caller's transaction, so an
entry is written, moved or dropped together with the session row it belongs to;
on PostgreSQL a write's entry may instead go in the very statement that writes
its row (recorded_by).
"""

from __future__ import annotations

import time
from typing import Any

from live.conf import setting
from live.models import LiveChange
from live.sessions.codec import dumps, loads
from live.sessions.connections import Db
from live.types import Applied

CHANGES = LiveChange._meta.db_table

# Every write runs it: spelled once.
_RECORD = (
    f"INSERT INTO {CHANGES} (digest, version, ts, source, changes) VALUES (%s, %s, %s, %s, %s)"
)


def record(db: Db, digest: str, version: int, source: str, applied: Applied) -> None:
    """Add the entry of one version; now and then prune the oldest."""
    db.execute(_RECORD, (digest, version, time.time(), source[:200], dumps(applied)))
    oldest = _pruned(version)
    if oldest is not None:
        db.execute(f"DELETE FROM {CHANGES} WHERE digest = %s AND version <= %s", (digest, oldest))


def _pruned(version: int) -> int | None:
    """The newest version to prune when this one is recorded, if it prunes."""
    keep = int(setting("HISTORY_LENGTH"))
    # Pruning every 16th version keeps at most keep + 15 entries for one statement in 16.
    if version % 16 == 0 and version > keep:
        return version - keep
    return None


def recorded_by(
    update: str, params: list[Any], version: int, source: str, applied: Applied
) -> tuple[str, list[Any]]:
    """One statement (PostgreSQL): an UPDATE of a session row, and the entry of its version.

    The entry is inserted once per row the UPDATE returns, and the prune
    deletes only under a digest it returns: the statement's count is the
    UPDATE's, and an UPDATE that matches nothing writes nothing at all.
    """
    sql = f"WITH u AS ({update} RETURNING digest)"
    oldest = _pruned(version)
    if oldest is not None:
        sql += (
            f", p AS (DELETE FROM {CHANGES} WHERE digest IN (SELECT digest FROM u)"
            " AND version <= %s)"
        )
        params = [*params, oldest]
    sql += (
        f" INSERT INTO {CHANGES} (digest, version, ts, source, changes)"
        " SELECT digest, %s, %s, %s, %s FROM u"
    )
    return sql, [*params, version, time.time(), source[:200], dumps(applied)]


def move(db: Db, old: str | None, new: str) -> None:
    """Give a session's entries to its new digest (a key cycle)."""
    db.execute(f"UPDATE {CHANGES} SET digest = %s WHERE digest = %s", (new, old))


def drop(db: Db, digest: str) -> None:
    """Delete a session's entries."""
    db.execute(f"DELETE FROM {CHANGES} WHERE digest = %s", (digest,))


def _entry(row: tuple[Any, ...]) -> dict[str, Any]:
    version, ts, source, changes = row
    return {"version": version, "ts": ts, "source": source, "changes": loads(changes)}


def history(db: Db, digest: str) -> list[dict[str, Any]]:
    """The newest entries of a session, newest first."""
    rows = db.execute(
        f"SELECT version, ts, source, changes FROM {CHANGES} WHERE digest = %s"
        " ORDER BY version DESC LIMIT %s",
        (digest, setting("HISTORY_LENGTH")),
    )
    return [_entry(row) for row in rows]


def entry(db: Db, digest: str, version: int) -> dict[str, Any] | None:
    """The entry of one version, if it is still kept."""
    rows = db.execute(
        f"SELECT version, ts, source, changes FROM {CHANGES} WHERE digest = %s AND version = %s",
        (digest, version),
    )
    return _entry(rows[0]) if rows else None
