"""Rows of live sessions: read, merge a request's changes, rotate, delete, list.

Each function takes a live.sessions.connections.Db and does its work in one
transaction, in a few plain SQL statements (this is every request's hot path);
the timeline's entries go with the rows (live.sessions.timeline). The merge applies
only what a request changed onto the latest stored state under the write lock
(BEGIN IMMEDIATE on SQLite, FOR UPDATE on PostgreSQL), so concurrent requests
to one session never overwrite each other. On PostgreSQL a merge onto an
unchanged row is a single statement that commits on its own.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import SESSION_KEY

from live.conf import setting
from live.models import LiveSession
from live.sessions import timeline
from live.sessions.codec import dumps, loads
from live.sessions.connections import AsyncDb, Db
from live.types import (
    Applied,
    Changes,
    Conflict,
    ExpiryFn,
    Missing,
    Snapshot,
    Summary,
    TooLarge,
    same,
)

SESSIONS = LiveSession._meta.db_table
_COLUMNS = "digest, data, key_versions, version, masked_key, expires_at"


def _row(row: tuple[Any, ...]) -> Snapshot:
    digest, data, key_versions, version, masked_key, expires_at = row
    return Snapshot(
        digest=digest,
        version=version,
        data=loads(data),
        masked_key=masked_key,
        expires_at=expires_at,
        key_versions=loads(key_versions),
        text=data,
    )


_SELECT = f"SELECT {_COLUMNS} FROM {SESSIONS} WHERE digest = %s AND expires_at > %s"


def _select(db: Db, digest: str, lock: bool = False) -> Snapshot | None:
    sql = _SELECT
    if lock and db.vendor == "postgresql":
        # SQLite has no FOR UPDATE; its BEGIN IMMEDIATE already holds the lock.
        sql += " FOR UPDATE"
    rows = db.execute(sql, (digest, time.time()))
    return _row(rows[0]) if rows else None


def read(db: Db, digest: str) -> Snapshot | None:
    """Return the live (unexpired) session with this digest, or None."""
    kept = db.kept_rows()
    if kept is not None:
        snapshot = kept.get(digest)
        if snapshot is not None and snapshot.expires_at > time.time():
            return snapshot
    snapshot = _select(db, digest)
    if kept is not None and snapshot is not None:
        # A write by someone else since the look above clears it at the next.
        kept.keep(snapshot)
    return snapshot


async def aread(db: AsyncDb, digest: str) -> Snapshot | None:
    """read(), on one of the loop's own PostgreSQL connections, which keep no rows."""
    rows = await db.execute(_SELECT, (digest, time.time()))
    return _row(rows[0]) if rows else None


def exists(db: Db, digest: str) -> bool:
    sql = f"SELECT 1 FROM {SESSIONS} WHERE digest = %s AND expires_at > %s"
    return bool(db.execute(sql, (digest, time.time())))


def _apply(
    data: dict[str, Any], key_versions: dict[str, int], changes: Changes, version: int
) -> Applied:
    applied: Applied = []
    deletes = list(data) if changes.wipe else changes.deletes
    for key in deletes:
        if key in data and key not in changes.sets:
            applied.append({"op": "delete", "key": key, "old": data.pop(key)})
            key_versions[key] = version
    for key, value in changes.sets.items():
        change = {"op": "set", "key": key, "value": value}
        if key in data:
            if same(data[key], value):
                continue
            change["old"] = data[key]
        data[key] = value
        key_versions[key] = version
        applied.append(change)
    _prune_tombstones(data, key_versions)
    return applied


def _prune_tombstones(data: dict[str, Any], key_versions: dict[str, int]) -> None:
    limit = setting("MAX_TOMBSTONES")
    # Every key held has a version, so the versions beyond the keys are tombstones.
    if len(key_versions) - len(data) <= limit:
        return
    tombstones = [k for k in key_versions if k not in data]
    excess = len(tombstones) - limit
    if excess > 0:
        for key in sorted(tombstones, key=key_versions.__getitem__)[:excess]:
            del key_versions[key]


def _check(snapshot: Snapshot, changes: Changes) -> None:
    for key, seen in changes.expect.items():
        if snapshot.key_versions.get(key, 0) > seen:
            raise Conflict(key, snapshot.data.get(key), seen)


_UPDATE = (
    f"UPDATE {SESSIONS} SET data = %s, key_versions = %s, version = %s, expires_at = %s,"
    " updated_at = %s WHERE digest = %s"
)
_UPDATE_IF_AT = _UPDATE + " AND version = %s AND expires_at > %s"


def _update(
    db: Db,
    snap: Snapshot,
    expiry: ExpiryFn,
    if_version: int | None,
    entry: tuple[str, Applied] | None = None,
) -> bool:
    """Write the row; with if_version, only if it is still at that version and live.

    With an entry (source, applied), the new version's timeline entry is
    written by the same statement, only if the row is.
    """
    snap.expires_at = expiry(snap.data.get("_session_expiry"))
    now = time.time()
    params = [snap.text, dumps(snap.key_versions), snap.version, snap.expires_at, now, snap.digest]
    if if_version is None:
        db.execute(_UPDATE, params)
        return True
    sql, params = _UPDATE_IF_AT, [*params, if_version, now]
    if entry is not None:
        sql, params = timeline.recorded_by(sql, params, snap.version, *entry)
    return db.count(sql, params) == 1


def _insert(db: Db, snap: Snapshot, expiry: ExpiryFn) -> None:
    snap.expires_at = expiry(snap.data.get("_session_expiry"))
    snap.text = dumps(snap.data)
    # An expired row under this digest is dead weight, not a collision.
    db.execute(
        f"DELETE FROM {SESSIONS} WHERE digest = %s AND expires_at <= %s",
        (snap.digest, time.time()),
    )
    # A live row under this digest makes the insert fail (IntegrityError, or
    # sqlite3.IntegrityError on the loop); the engine retries with another key.
    db.execute(
        f"INSERT INTO {SESSIONS} ({_COLUMNS}, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            snap.digest,
            snap.text,
            dumps(snap.key_versions),
            snap.version,
            snap.masked_key,
            snap.expires_at,
            time.time(),
        ),
    )


def merge(
    db: Db,
    digest: str,
    changes: Changes,
    expiry: ExpiryFn,
    source: str = "code",
    base: Snapshot | None = None,
) -> tuple[Snapshot, Applied]:
    """Apply changes onto the stored row under the write lock; a real change bumps the version.

    `base` is the state the writer loaded, if it has one (its data and
    key_versions are consumed). Most of the time nobody wrote in between: the
    merge is then computed from it and written by an UPDATE that holds only
    while the row is still at that version, with no SELECT and no parse. When
    someone did write, that UPDATE matches nothing and the merge is redone
    from the row read under the lock, so the result is the same either way.

    On PostgreSQL, outside a caller's transaction, that UPDATE and the
    timeline's entry are one statement committing on its own: one round trip
    instead of BEGIN, UPDATE, INSERT and COMMIT. Only the loop's SQLite
    connection keeps rows, and it never writes that way.
    """
    if base is not None and db.vendor == "postgresql" and db.alone():
        try:
            return _merge_onto(db, base, changes, expiry, source, base.version, alone=True)
        except (_Stale, Conflict, TooLarge):
            # Nothing was written: the row read under the lock decides.
            base = None
    with db.atomic():
        result = _merge_from(db, digest, changes, expiry, source, base)
    # The commit made this connection forget its rows; this one it wrote itself.
    kept = db.kept_rows(check=False)
    if kept is not None:
        kept.keep(result[0])
    return result


def _merge_from(
    db: Db,
    digest: str,
    changes: Changes,
    expiry: ExpiryFn,
    source: str,
    base: Snapshot | None,
) -> tuple[Snapshot, Applied]:
    if base is not None:
        try:
            return _merge_onto(db, base, changes, expiry, source, if_version=base.version)
        except (_Stale, Conflict, TooLarge):
            # A refusal counts only when the current row refuses too.
            pass
    snap = _select(db, digest, lock=True)
    if snap is None:
        raise Missing(digest)
    return _merge_onto(db, snap, changes, expiry, source, if_version=None)


class _Stale(Exception):
    """The row moved past the writer's base version."""


def _merge_onto(
    db: Db,
    snap: Snapshot,
    changes: Changes,
    expiry: ExpiryFn,
    source: str,
    if_version: int | None,
    alone: bool = False,
) -> tuple[Snapshot, Applied]:
    _check(snap, changes)
    before = snap.text
    applied = _apply(snap.data, snap.key_versions, changes, snap.version + 1)
    if applied:
        snap.version += 1
    snap.text = dumps(snap.data)
    # Checked here, under the lock, because concurrent writes that each fit
    # could together pass the limit; a session already over it may shrink.
    size, limit = len(snap.text.encode()), setting("MAX_SESSION_BYTES")
    if size > limit and size > len(before.encode()):
        raise TooLarge(size, limit)
    # Alone, the entry must go in the UPDATE's statement: a second one would
    # commit apart from it.
    entry = (source, applied) if alone and applied else None
    if not _update(db, snap, expiry, if_version, entry):
        raise _Stale
    if applied and not alone:
        timeline.record(db, snap.digest, snap.version, source, applied)
    return snap, applied


def insert(
    db: Db, digest: str, masked_key: str, data: dict[str, Any], expiry: ExpiryFn
) -> Snapshot:
    """Create a session row with this data at version 0."""
    snap = Snapshot(digest, 0, data, masked_key, 0.0, dict.fromkeys(data, 0))
    with db.atomic():
        _insert(db, snap, expiry)
    return snap


def rotate(
    db: Db,
    old: str | None,
    new: str,
    masked_key: str,
    changes: Changes,
    expiry: ExpiryFn,
    source: str = "code",
) -> tuple[Snapshot, Applied]:
    """Move a session to a new digest in one transaction (cycle_key), merging pending changes first.

    The version keeps growing across the move, and the timeline moves with the data.
    """
    with db.atomic():
        previous = _select(db, old, lock=True) if old else None
        version = previous.version if previous else 0
        data = previous.data if previous else {}
        kv = previous.key_versions if previous else {}
        applied = _apply(data, kv, changes, version + 1)
        if old:
            db.execute(f"DELETE FROM {SESSIONS} WHERE digest = %s", (old,))
        snap = Snapshot(new, version + 1, data, masked_key, 0.0, kv)
        _insert(db, snap, expiry)
        timeline.move(db, old, new)
        timeline.record(db, new, version + 1, source, [*applied, {"op": "cycle", "key": ""}])
    return snap, applied


def delete(db: Db, digest: str) -> bool:
    """Delete a session and its timeline; True if it existed."""
    with db.atomic():
        found = bool(db.execute(f"SELECT 1 FROM {SESSIONS} WHERE digest = %s", (digest,)))
        db.execute(f"DELETE FROM {SESSIONS} WHERE digest = %s", (digest,))
        timeline.drop(db, digest)
    return found


def delete_expired(db: Db) -> list[str]:
    """Delete expired sessions and their timelines; return their digests."""
    now = time.time()
    with db.atomic():
        rows = db.execute(f"SELECT digest FROM {SESSIONS} WHERE expires_at <= %s", (now,))
        digests = [row[0] for row in rows]
        for digest in digests:
            timeline.drop(db, digest)
        db.execute(f"DELETE FROM {SESSIONS} WHERE expires_at <= %s", (now,))
    return digests


def count_active(db: Db, since: float) -> int:
    """How many live sessions changed since this moment."""
    rows = db.execute(
        f"SELECT COUNT(*) FROM {SESSIONS} WHERE updated_at > %s AND expires_at > %s",
        (since, time.time()),
    )
    return int(rows[0][0])


_SUMMARY = f"SELECT digest, masked_key, data, version, expires_at, updated_at FROM {SESSIONS}"


def _summary(row: tuple[Any, ...]) -> Summary:
    digest, masked_key, data, version, expires_at, updated_at = row
    return Summary.of(
        Snapshot(digest, version, loads(data), masked_key, expires_at, text=data), updated_at
    )


def summaries(db: Db, limit: int = 200) -> list[Summary]:
    """The most recently changed live sessions."""
    rows = db.execute(
        _SUMMARY + " WHERE expires_at > %s ORDER BY updated_at DESC LIMIT %s",
        (time.time(), limit),
    )
    return [_summary(row) for row in rows]


def owned(db: Db, user_id: str) -> list[Summary]:
    """The live sessions signed in as this user, most recently changed first.

    The LIKE finds the stored text of the user's id among the top-level keys
    (the data is compact JSON); it may also match a nested copy, so each row
    found is checked once parsed.
    """
    pattern = "%" + dumps({SESSION_KEY: user_id})[1:-1] + "%"
    rows = db.execute(
        _SUMMARY + " WHERE expires_at > %s AND data LIKE %s ORDER BY updated_at DESC",
        (time.time(), pattern),
    )
    return [found for found in map(_summary, rows) if found.user_id == user_id]
