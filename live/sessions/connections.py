"""How the session tables are reached: Django's connection, or connections of the event loop.

On SQLite an uncontended statement costs less than a hop to a thread, so async
callers run the store's work right on the event loop, through a connection of
the loop's own that never waits for a lock: if another process holds the write
lock it gives up at once (Busy) and the work is redone in a thread that may
wait. On PostgreSQL, reads of a session run on the loop's own async
connections (live.sessions.pg_loop); every other piece of work, and anything
on another database, goes through Django's connection in a thread.

Whichever thread runs it, store work on Django's connection goes through
`_guarded`: a database that cannot be reached or answer becomes Unavailable
(live.sessions.outage), the broken connection is closed so that the thread's
next call opens a new one, and work that met a connection which died while it
sat idle (the database restarted, or a line was cut) is run once more on a
fresh one, unless a change may already have been committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from functools import cache, lru_cache, partial
from types import TracebackType
from typing import Any, Protocol, TypeVar

from asgiref.sync import sync_to_async
from django.core import mail
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connections,
    router,
    transaction,
)

from live.conf import setting
from live.loops import PerLoop
from live.models import LiveSession
from live.sessions import outage
from live.sessions.kept import KeptRows
from live.sockets import readable

T = TypeVar("T")


class Busy(Exception):
    """SQLite's write lock is held by another process; retry where waiting is allowed."""


class Db(Protocol):
    vendor: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write statement; return how many rows it changed."""
        ...

    def atomic(self) -> Any: ...

    def alone(self) -> bool:
        """Whether a statement sent now commits on its own, on a line the server has not closed."""
        ...

    def kept_rows(self, check: bool = True) -> KeptRows | None:
        """Rows this connection may answer from memory (live.sessions.kept), or None."""
        ...


class AsyncDb(Protocol):
    """A connection of the loop's own (live.sessions.pg_loop), for reads."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class DjangoDb:
    """Django's connection of the current thread; locks wait up to the configured timeout."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.connection = connections[alias]
        self.vendor = self.connection.vendor
        # What a lost connection leaves unknown (live.sessions.outage): whether
        # this work writes, and whether a write was sent to be kept for good.
        self.changes = False
        self.sent = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        alone, sent = not self.connection.in_atomic_block, self.sent
        if alone:
            # Outside a transaction the statement commits as it runs.
            self.changes = self.sent = True
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = int(cursor.rowcount)
        if alone and not rows:
            # Answered, and it changed nothing: no more of this work is kept than before.
            self.sent = sent
        return rows

    @contextmanager
    def atomic(self) -> Iterator[None]:
        self.changes = True
        outermost = not self.connection.in_atomic_block
        with transaction.atomic(using=self.alias):
            yield
            # Its COMMIT follows: a line lost from here on may have lost only
            # the answer. Before it, the database rolls the transaction back.
            self.sent = self.sent or outermost

    def alone(self) -> bool:
        """Whether a statement sent now runs in a transaction of its own, on an open line.

        Such a statement may have been made once sent, so work that meets a
        dead line there cannot be run again (live.sessions.outage). A line the
        server closed while it sat idle has something to read: its farewell,
        or the end of the stream. That line, and one not opened yet, take a
        transaction instead, whose loss before its COMMIT is run again.
        """
        connection = self.connection
        if connection.in_atomic_block or not connection.autocommit or connection.connection is None:
            return False
        try:
            fileno = connection.connection.fileno()
        except Exception:
            # psycopg's own error for a line libpq already dropped: the
            # transaction's path meets it as Django's error, and runs again.
            return False
        return not readable(fileno)

    def kept_rows(self, check: bool = True) -> None:
        # Other connections write through Django's without a way to tell this one.
        return None


# Commits on the loop between two checkpoints: at about 6 pages per session
# write, below SQLite's own threshold of 1,000 pages.
CHECKPOINT_EVERY = 128


class LoopSqlite:
    """A raw SQLite connection for the event loop: no waiting, ever."""

    vendor = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self.raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.raw.execute("PRAGMA busy_timeout=0")
        self.raw.execute("PRAGMA synchronous=NORMAL")
        # A checkpoint copies the WAL into the database file and syncs both to
        # disk: milliseconds that would stall every request on the loop, paid by
        # whichever commit crossed the threshold. This connection never
        # checkpoints; every CHECKPOINT_EVERY commits a thread does it instead.
        self.raw.execute("PRAGMA wal_autocheckpoint=0")
        self.depth = 0
        self.commits = 0
        self.checkpoint: Future[tuple[int, int, int]] | None = None
        self.kept = KeptRows()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(sql, params).fetchall()

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._run(sql, params).rowcount

    def _run(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self.raw.execute(_qmark(sql), params)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Busy from exc
            raise

    def atomic(self) -> LoopSqlite:
        """A transaction as a with-block: the connection is its own context manager.

        Nested blocks join the outer transaction, as Django's atomic does.
        Not a generator-based context manager: every write enters one, and
        this way none is built.
        """
        return self

    def alone(self) -> bool:
        # A transaction on SQLite costs no round trip: every write keeps its own.
        return False

    def __enter__(self) -> None:
        if self.depth:
            self.depth += 1
            return
        self.execute("BEGIN IMMEDIATE")
        self.depth = 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.depth -= 1
        if self.depth:
            return
        # Rows may have been read or written inside the transaction: once it
        # ends, either way, they are forgotten.
        self.kept.clear()
        if kind is not None:
            self.raw.execute("ROLLBACK")
            return
        try:
            self.raw.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self.raw.execute("ROLLBACK")
            raise Busy from exc
        self._committed()

    def kept_rows(self, check: bool = True) -> KeptRows | None:
        """The rows kept in memory; none inside a transaction, whose writes may be rolled back.

        `check=False` skips the data_version look, right after this
        connection's own commit: a write by anyone else around that moment
        shows at the next look all the same.
        """
        if self.depth or self.raw.in_transaction:
            return None
        return self.kept.checked(self.raw) if check else self.kept

    def _committed(self) -> None:
        self.commits += 1
        running = self.checkpoint is not None and not self.checkpoint.done()
        if self.commits % CHECKPOINT_EVERY == 0 and not running:
            self.checkpoint = _checkpointer().submit(_checkpoint, self.path)


@lru_cache(maxsize=256)
def _qmark(sql: str) -> str:
    # The store writes Django's %s placeholders; sqlite3 takes ?. Its few
    # statements are translated once each rather than on every call.
    return sql.replace("%s", "?")


@cache
def _checkpointer() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="live-checkpoint")


def _checkpoint(path: str) -> tuple[int, int, int]:
    """Checkpoint without waiting for anyone: (busy, WAL frames, frames copied)."""
    # sqlite3 releases the GIL while it copies and syncs, so the loop runs on meanwhile.
    busy, frames, copied = (
        _checkpoint_connection(path).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    )
    return busy, frames, copied


@cache
def _checkpoint_connection(path: str) -> sqlite3.Connection:
    # One per database file, opened and used by the checkpoint thread alone.
    return sqlite3.connect(path, isolation_level=None)


# Each loop's SQLite connections, by database file: the test runner swaps in its
# test database after start-up.
_loop_connections: PerLoop[dict[str, LoopSqlite]] = PerLoop(dict)


def _loop_db(path: str) -> LoopSqlite:
    found = _loop_connections.get()
    if path not in found:
        found[path] = LoopSqlite(path)
    return found[path]


@cache
def _executor(name: str) -> ThreadPoolExecutor:
    # Long-lived threads, each keeping one connection, instead of a fresh
    # thread and connection per request (Django's thread-sensitive hops). On
    # SQLite a single thread: it has one writer anyway.
    workers = 1 if connections[name].vendor == "sqlite" else setting("DB_THREADS")
    return ThreadPoolExecutor(workers, thread_name_prefix=f"live-db-{name}")


def _guarded(fn: Callable[..., T], name: str, *args: Any) -> T:
    """Run store work on this thread's Django connection; a lost database raises Unavailable."""
    connection = connections[name]
    # A connection left open by earlier work may have died since (a server
    # restart, a cut line); a new one has not.
    again = connection.connection is not None
    while True:
        db = DjangoDb(name)
        try:
            return fn(db, *args)
        except outage.DOWN as exc:
            # Inside the caller's transaction the connection is theirs to roll
            # back; else a broken one must not poison this thread for good:
            # the next call opens a new one.
            ours = not connection.in_atomic_block
            if ours:
                with suppress(DatabaseError):
                    connection.close()
            if not outage.lost(exc):
                raise
            if not (ours and again and not db.sent):
                raise outage.unavailable(exc, db.changes, db.sent) from exc
            again = False


# Asked on every request: without routers, Django's answer is the default
# alias reached through a closure, a loop and a dict of hints; a database's
# vendor never changes while the process runs. With the kept rows and the
# diff's shallow copy they move the write figure (docs/performance.md).
def _alias() -> str:
    return DEFAULT_DB_ALIAS if not router.routers else router.db_for_write(LiveSession)


@cache
def _vendor(name: str) -> str:
    return str(connections[name].vendor)


def call(fn: Callable[..., T], *args: Any) -> T:
    """Run store work from sync code, on this thread's Django connection."""
    return _guarded(fn, _alias(), *args)


def djangos_connection() -> bool:
    """Whether async work goes through Django's connection, thread-sensitive, as Django's does.

    django.test.TestCase holds each test in a transaction on the test thread's
    connection, which connections of the engine's own cannot see (on SQLite
    they wait for its lock). Django's test environment sets up mail.outbox
    for as long as it lasts, under Django's runner and pytest-django alike.
    """
    mode = setting("CONNECTIONS")
    if mode == "auto":
        return hasattr(mail, "outbox")
    return bool(mode == "django")


async def run(fn: Callable[..., T], *args: Any, pg: Callable[..., Awaitable[T]] | None = None) -> T:
    """Run store work from async code: on the loop when it can, else in a thread.

    On SQLite, `fn` runs on the loop's own connection; on PostgreSQL, `pg`
    (the same read, async) runs on one of the loop's connections, if given.
    Either hands the work back to a thread when it cannot be done there.
    """
    name = _alias()
    if not djangos_connection():
        vendor = _vendor(name)
        if vendor == "sqlite" and setting("SQLITE_ON_LOOP"):
            try:
                # The same dict as the connection's settings_dict, which the test
                # runner points at its test database.
                return fn(_loop_db(str(connections.settings[name]["NAME"])), *args)
            except Busy:
                pass
        elif vendor == "postgresql" and pg is not None and setting("PG_LOOP_CONNECTIONS"):
            on_loop = _pg_loop()
            if on_loop is not None:
                try:
                    result: T = await on_loop.run(name, pg, *args)
                    return result
                except on_loop.Elsewhere:
                    pass
    return await in_thread(fn, *args)


@cache
def _pg_loop() -> Any:
    """live.sessions.pg_loop where psycopg 3 is installed (Django's backend takes psycopg2 too)."""
    try:
        from live.sessions import pg_loop
    except ImportError:
        return None
    return pg_loop


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run work on Django's connection from async code: the ORM, which refuses the loop."""
    name = _alias()
    if djangos_connection():
        return await sync_to_async(_guarded)(fn, name, *args)
    # The loop's own executor call, not sync_to_async: the work needs none of
    # the request's context, and asgiref's copy and restore of it cost a write
    # on PostgreSQL 13% of its throughput (docs/performance.md). Each thread
    # keeps its own connection in its own context.
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(name), partial(_guarded, fn, name, *args))


# A digest already taken: Django's error from a thread, sqlite3's from the loop.
INTEGRITY_ERRORS = (IntegrityError, sqlite3.IntegrityError)
