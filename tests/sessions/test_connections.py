"""The event loop's own SQLite connection: nested transactions, and checkpoints left to a thread."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, OperationalError
from django.db import connection as django_connection

from live.sessions import connections
from live.types import Unavailable


def test_loop_connection_leaves_checkpoints_to_a_thread(tmp_path):
    loop_db = connections.LoopSqlite(str(tmp_path / "wal.sqlite3"))
    loop_db.raw.execute("PRAGMA journal_mode=WAL")
    loop_db.raw.execute("CREATE TABLE t (n INTEGER)")
    assert loop_db.raw.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    for n in range(connections.CHECKPOINT_EVERY):
        assert loop_db.checkpoint is None
        with loop_db.atomic():
            loop_db.execute("INSERT INTO t VALUES (%s)", (n,))
    assert loop_db.checkpoint is not None
    busy, frames, copied = loop_db.checkpoint.result(timeout=10)
    assert busy == 0 and frames >= connections.CHECKPOINT_EVERY and copied == frames


def test_loop_transactions_nest_and_roll_back_whole(tmp_path):
    loop = connections.LoopSqlite(str(tmp_path / "nest.sqlite3"))
    loop.execute("CREATE TABLE t (n INTEGER)")
    with loop.atomic():
        loop.execute("INSERT INTO t VALUES (1)")
        with loop.atomic():
            loop.execute("INSERT INTO t VALUES (2)")
    assert loop.execute("SELECT n FROM t ORDER BY n") == [(1,), (2,)]
    with pytest.raises(ZeroDivisionError), loop.atomic():
        loop.execute("INSERT INTO t VALUES (3)")
        with loop.atomic():
            loop.execute("INSERT INTO t VALUES (4)")
            1 / 0  # noqa: B018
    assert loop.execute("SELECT n FROM t ORDER BY n") == [(1,), (2,)]
    assert loop.depth == 0 and not loop.raw.in_transaction


@pytest.mark.django_db(transaction=True)
def test_django_connection_knows_when_a_change_left_for_good():
    # What a lost connection leaves unknown (live.sessions.outage): only a
    # change whose COMMIT was on its way may have been made.
    db = connections.DjangoDb("default")
    db.execute("SELECT 1")
    assert (db.changes, db.sent) == (False, False)
    with db.atomic():
        with db.atomic():
            db.execute("SELECT 1")
        assert (db.changes, db.sent) == (True, False)
    assert db.sent
    with pytest.raises(ZeroDivisionError), connections.DjangoDb("default").atomic():
        1 / 0  # noqa: B018


@pytest.mark.django_db(transaction=True)
def test_django_connection_broken_while_idle_is_replaced_once():
    django_connection.ensure_connection()
    tries: list[object] = []

    def fails_once(db: connections.DjangoDb) -> str:
        db.execute("SELECT 1")
        tries.append(db.connection.connection)
        if len(tries) == 1:
            raise OperationalError("the connection is closed")
        return "read"

    assert connections.call(fails_once) == "read"
    # The second try ran on a connection opened for it.
    assert tries[0] is not None and tries[1] is not tries[0]

    def always_fails(db: connections.DjangoDb) -> None:
        db.execute("SELECT 1")
        tries.append(db.connection.connection)
        raise OperationalError("connection refused")

    with pytest.raises(Unavailable, match="cannot be reached"):
        connections.call(always_fails)
    # Tried once more on a new connection, and no more: the first may have died while idle.
    assert len(tries) == 4 and tries[2] is tries[1] and tries[3] is not tries[2]
    assert django_connection.connection is None


@pytest.mark.django_db(transaction=True)
def test_sqlite_errors_of_a_setup_stay_what_they_are():
    def missing_table(db: connections.DjangoDb) -> None:
        db.execute("SELECT * FROM no_such_table")

    # On SQLite an OperationalError, on PostgreSQL a ProgrammingError: never a 503.
    with pytest.raises(DatabaseError):
        connections.call(missing_table)
