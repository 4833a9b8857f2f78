"""The event loop's own SQLite connection: nested transactions, and checkpoints left to a thread."""

from __future__ import annotations

import pytest

from live.sessions import connections


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
