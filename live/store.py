"""Rows of live sessions: read, merge a request's changes, rotate, replace, delete.

Every function here is synchronous database work, run in one transaction; the
engine calls them directly from sync code and through one thread hop from async
code. The merge applies only what a request changed onto the latest stored
state, so concurrent requests to one session never overwrite each other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, connections, router, transaction
from django.utils import timezone

from live.conf import setting
from live.models import LiveChange, LiveSession

_MISSING = object()


def dumps(value: Any) -> str:
    """Encode like Django's JSONSerializer, strictly (no NaN or Infinity)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass
class Snapshot:
    """A session's state at one version, as stored."""

    digest: str
    version: int
    data: dict[str, Any]
    masked_key: str
    expire_date: datetime
    key_versions: dict[str, int] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return len(dumps(self.data).encode())


@dataclass
class Changes:
    """What one request did to a session: keys set, keys deleted, or everything wiped."""

    sets: dict[str, Any] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    wipe: bool = False
    # key -> the version the writer last saw; a later change to the key conflicts.
    expect: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.sets or self.deletes or self.wipe)


class Conflict(Exception):
    """The key changed after the version the writer saw."""

    def __init__(self, key: str, current: Any, version: int) -> None:
        super().__init__(f"The key {key!r} was changed by someone else since version {version}.")
        self.key = key
        self.current = current
        self.version = version


class Missing(Exception):
    """The row to merge into is gone (deleted, flushed or expired meanwhile)."""


# {"op": "set"|"delete", "key", "value" (sets), "old" (when the key existed)},
# in the order applied: the history keeps them whole, events drop "old".
Applied = list[dict[str, Any]]
ExpiryFn = Callable[[Any], datetime]


def _db() -> str:
    return router.db_for_write(LiveSession)


T = TypeVar("T")
_executors: dict[str, ThreadPoolExecutor] = {}


def _executor() -> ThreadPoolExecutor:
    # Async callers share a few long-lived threads, each with one persistent
    # connection, instead of a fresh thread and connection per request (what
    # Django's thread-sensitive hops give). On SQLite one thread: it has one
    # writer anyway, and a thousand connections queueing on its lock starve
    # into "database is locked".
    db = _db()
    if db not in _executors:
        workers = 1 if connections[db].vendor == "sqlite" else setting("DB_THREADS")
        _executors[db] = ThreadPoolExecutor(workers, thread_name_prefix=f"live-store-{db}")
    return _executors[db]


def _guarded(fn: Callable[..., T]) -> Callable[..., T]:
    def call(*args: Any) -> T:
        try:
            return fn(*args)
        except (OperationalError, InterfaceError):
            # A dropped connection (a database restart) must not poison this
            # thread forever: close it so the next call reconnects.
            connection = connections[_db()]
            if not connection.in_atomic_block:
                connection.close()
            raise

    return call


async def run(fn: Callable[..., T], *args: Any) -> T:
    """Run store work from async code on the store's own threads."""
    call = sync_to_async(_guarded(fn), thread_sensitive=False, executor=_executor())
    return await call(*args)  # type: ignore[no-any-return]


def close_connections() -> None:
    """Close the store threads' connections (tests, before dropping a database)."""
    for executor in _executors.values():
        for _ in range(executor._max_workers):
            executor.submit(connections.close_all).result()


def _snapshot(row: LiveSession) -> Snapshot:
    return Snapshot(
        digest=row.digest,
        version=row.version,
        data=json.loads(row.data),
        masked_key=row.masked_key,
        expire_date=row.expire_date,
        key_versions=json.loads(row.key_versions),
    )


def read(digest: str) -> Snapshot | None:
    """Return the live (unexpired) session with this digest, or None."""
    row = (
        LiveSession.objects.using(router.db_for_read(LiveSession))
        .filter(digest=digest, expire_date__gt=timezone.now())
        .first()
    )
    return _snapshot(row) if row else None


def exists(digest: str) -> bool:
    return LiveSession.objects.filter(digest=digest, expire_date__gt=timezone.now()).exists()


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
            if dumps(data[key]) == dumps(value):
                continue
            change["old"] = data[key]
        data[key] = value
        key_versions[key] = version
        applied.append(change)
    _prune_tombstones(data, key_versions)
    return applied


def _prune_tombstones(data: dict[str, Any], key_versions: dict[str, int]) -> None:
    tombstones = [k for k in key_versions if k not in data]
    excess = len(tombstones) - setting("MAX_TOMBSTONES")
    if excess > 0:
        for key in sorted(tombstones, key=key_versions.__getitem__)[:excess]:
            del key_versions[key]


def _check(data: dict[str, Any], key_versions: dict[str, int], changes: Changes) -> None:
    for key, seen in changes.expect.items():
        if key_versions.get(key, 0) > seen:
            raise Conflict(key, data.get(key), seen)


def _write(row: LiveSession, data: dict[str, Any], kv: dict[str, int], expiry: ExpiryFn) -> None:
    row.data = dumps(data)
    row.key_versions = dumps(kv)
    row.expire_date = expiry(data.get("_session_expiry"))
    row.updated_at = time.time()


def _record(db: str, digest: str, version: int, source: str, applied: Applied) -> None:
    """Add a timeline entry and drop the oldest beyond the history length."""
    LiveChange.objects.using(db).create(
        digest=digest, version=version, ts=time.time(), source=source[:200], changes=dumps(applied)
    )
    keep = setting("HISTORY_LENGTH")
    stale = (
        LiveChange.objects.using(db)
        .filter(digest=digest)
        .order_by("-version")
        .values_list("version", flat=True)[keep : keep + 1]
    )
    if stale:
        LiveChange.objects.using(db).filter(digest=digest, version__lte=stale[0]).delete()


def history(digest: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The newest timeline entries of a session, newest first."""
    rows = LiveChange.objects.using(router.db_for_read(LiveChange)).filter(digest=digest)
    rows = rows.order_by("-version")[: limit or setting("HISTORY_LENGTH")]
    return [_as_entry(r) for r in rows]


def entry(digest: str, version: int) -> dict[str, Any] | None:
    """The timeline entry of one version, if it is still kept."""
    row = (
        LiveChange.objects.using(router.db_for_read(LiveChange))
        .filter(digest=digest, version=version)
        .first()
    )
    return _as_entry(row) if row else None


def _as_entry(row: LiveChange) -> dict[str, Any]:
    return {
        "version": row.version,
        "ts": row.ts,
        "source": row.source,
        "changes": json.loads(row.changes),
    }


def merge(
    digest: str, changes: Changes, expiry: ExpiryFn, source: str = "code"
) -> tuple[Snapshot, Applied]:
    """Apply changes onto the stored row under a write lock; a real change bumps the version."""
    db = _db()
    with transaction.atomic(using=db):
        # SQLite ignores FOR UPDATE but its IMMEDIATE transactions already
        # serialize writers; PostgreSQL takes the row lock here.
        row = (
            LiveSession.objects.using(db)
            .select_for_update()
            .filter(digest=digest, expire_date__gt=timezone.now())
            .first()
        )
        if row is None:
            raise Missing(digest)
        data, kv = json.loads(row.data), json.loads(row.key_versions)
        _check(data, kv, changes)
        applied = _apply(data, kv, changes, row.version + 1)
        if applied:
            row.version += 1
            _record(db, digest, row.version, source, applied)
        _write(row, data, kv, expiry)
        row.save(
            using=db,
            update_fields=["data", "key_versions", "version", "expire_date", "updated_at"],
        )
    return _snapshot(row), applied


def insert(
    digest: str, masked_key: str, data: dict[str, Any], expiry: ExpiryFn, version: int = 0
) -> Snapshot:
    """Create a row; IntegrityError if the digest is taken (the caller picks another key)."""
    db = _db()
    row = LiveSession(digest=digest, masked_key=masked_key, version=version)
    kv = dict.fromkeys(data, version)
    _write(row, data, kv, expiry)
    with transaction.atomic(using=db):
        # An expired row with this digest is dead weight, not a collision.
        LiveSession.objects.using(db).filter(
            digest=digest, expire_date__lte=timezone.now()
        ).delete()
        row.save(using=db, force_insert=True)
    return _snapshot(row)


def rotate(
    old: str | None,
    new: str,
    masked_key: str,
    changes: Changes,
    expiry: ExpiryFn,
    keep_data: bool = True,
    source: str = "code",
) -> tuple[Snapshot, Applied]:
    """Move a session to a new digest in one transaction, merging pending changes first.

    With keep_data=False the new row starts empty (a flush); the version keeps
    growing across the move so that clients never see it go backwards.
    """
    db = _db()
    with transaction.atomic(using=db):
        row = None
        if old is not None:
            row = (
                LiveSession.objects.using(db)
                .select_for_update()
                .filter(digest=old, expire_date__gt=timezone.now())
                .first()
            )
        data: dict[str, Any] = json.loads(row.data) if row else {}
        kv: dict[str, int] = json.loads(row.key_versions) if row else {}
        version = row.version if row else 0
        applied = _apply(data, kv, changes, version + 1) if keep_data else []
        if not keep_data:
            data, kv = {}, {}
        if row is not None:
            row.delete()
        fresh = LiveSession(digest=new, masked_key=masked_key, version=version + 1)
        _write(fresh, data, kv, expiry)
        # A digest collision raises IntegrityError and rolls everything back;
        # the engine then retries with another key.
        fresh.save(using=db, force_insert=True)
        timeline = LiveChange.objects.using(db).filter(digest=old)
        if keep_data:
            # The timeline moves with the data; a flush starts a new one, so a
            # logged-out user's successor never sees what came before.
            timeline.update(digest=new)
            _record(db, new, version + 1, source, [*applied, {"op": "cycle", "key": ""}])
        else:
            timeline.delete()
    return _snapshot(fresh), applied


def delete(digest: str) -> bool:
    """Delete a row; True if it existed."""
    db = _db()
    with transaction.atomic(using=db):
        deleted, _ = LiveSession.objects.using(db).filter(digest=digest).delete()
        LiveChange.objects.using(db).filter(digest=digest).delete()
    return bool(deleted)


def delete_expired() -> list[str]:
    """Delete expired rows and return their digests."""
    db = _db()
    with transaction.atomic(using=db):
        expired = LiveSession.objects.using(db).filter(expire_date__lte=timezone.now())
        digests = list(expired.values_list("digest", flat=True))
        expired.delete()
        LiveChange.objects.using(db).filter(digest__in=digests).delete()
    return digests


@dataclass
class Summary:
    """A session as the staff list shows it, without its values."""

    digest: str
    masked_key: str
    keys: int
    size_bytes: int
    version: int
    expire_date: datetime
    updated_at: float


def summaries(limit: int = 200) -> list[Summary]:
    """The most recently changed live sessions."""
    rows = (
        LiveSession.objects.using(router.db_for_read(LiveSession))
        .filter(expire_date__gt=timezone.now())
        .order_by("-updated_at")[:limit]
    )
    return [
        Summary(
            digest=row.digest,
            masked_key=row.masked_key,
            keys=len(json.loads(row.data)),
            size_bytes=len(row.data.encode()),
            version=row.version,
            expire_date=row.expire_date,
            updated_at=row.updated_at,
        )
        for row in rows
    ]
