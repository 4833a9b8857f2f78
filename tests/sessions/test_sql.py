"""The SQL store's rows and merge rules, straight against the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from live.sessions import connections, kept
from live.sessions import sql as store
from live.sessions.kept import KeptRows
from live.types import Changes, Conflict, Snapshot, TooLarge
from tests.helpers import create_row, merge_row, row_expiry

pytestmark = pytest.mark.django_db(transaction=True)


def test_merge_keeps_keys_it_did_not_touch():
    digest = create_row(a=1, b=2)
    merge_row(digest, sets={"c": 3})
    snap, applied = merge_row(digest, deletes=["a"])
    assert snap.data == {"b": 2, "c": 3}
    assert applied == [{"op": "delete", "key": "a", "old": 1}]
    assert snap.version == 2


def test_merge_of_equal_value_is_no_change():
    digest = create_row(a=[1, 2])
    snap, applied = merge_row(digest, sets={"a": [1, 2]})
    assert applied == [] and snap.version == 0


def test_merge_refuses_stale_expectation():
    digest = create_row(a=1)
    merge_row(digest, sets={"a": 2})
    with pytest.raises(Conflict) as refused:
        merge_row(digest, sets={"a": 3}, expect={"a": 0})
    assert refused.value.current == 2
    assert connections.call(store.read, digest).data == {"a": 2}


def test_merge_refuses_growth_past_session_limit_under_the_lock(settings):
    settings.LIVE_SESSIONS = {"MAX_SESSION_BYTES": 100}
    digest = create_row(a="x" * 40)
    merge_row(digest, sets={"b": "y" * 30})
    with pytest.raises(TooLarge):
        merge_row(digest, sets={"c": "z" * 40})
    assert set(connections.call(store.read, digest).data) == {"a", "b"}
    # Shrinking is always allowed, even for a session already over a lowered limit.
    settings.LIVE_SESSIONS = {"MAX_SESSION_BYTES": 10}
    snap, _ = merge_row(digest, deletes=["a"])
    assert set(snap.data) == {"b"}


def test_tombstones_are_bounded(settings):
    settings.LIVE_SESSIONS = {"MAX_TOMBSTONES": 3}
    digest = create_row(**{f"k{n}": n for n in range(6)})
    snap, _ = merge_row(digest, deletes=[f"k{n}" for n in range(6)])
    assert len(snap.key_versions) == 3


class Recording:
    """A Db that notes the first word of every statement it runs."""

    def __init__(self, inner: connections.Db) -> None:
        self.inner, self.vendor = inner, inner.vendor
        self.statements: list[str] = []

    def execute(self, sql: str, params: object = ()) -> list[tuple[object, ...]]:
        self.statements.append(sql.split()[0])
        return self.inner.execute(sql, params)  # type: ignore[arg-type]

    def count(self, sql: str, params: object = ()) -> int:
        self.statements.append(sql.split()[0])
        return self.inner.count(sql, params)  # type: ignore[arg-type]

    def atomic(self) -> object:
        return self.inner.atomic()

    def alone(self) -> bool:
        return self.inner.alone()

    def kept_rows(self, check: bool = True) -> KeptRows | None:
        return self.inner.kept_rows(check)


def merge_from(base: Snapshot, **kwargs: object) -> tuple[Snapshot, list[str]]:
    def run(conn: connections.Db) -> Snapshot:
        recording = Recording(conn)
        changes = Changes(**kwargs)  # type: ignore[arg-type]
        snap, _ = store.merge(recording, base.digest, changes, row_expiry, base=base)  # type: ignore[arg-type]
        statements.extend(recording.statements)
        return snap

    statements: list[str] = []
    return connections.call(run), statements


def test_merge_from_a_current_base_writes_without_reading_the_row():
    digest = create_row(a=1)
    snap, statements = merge_from(connections.call(store.read, digest), sets={"b": 2})
    assert statements == ["UPDATE", "INSERT"]
    assert snap.version == 1
    assert connections.call(store.read, digest).data == {"a": 1, "b": 2}


def test_merge_from_a_stale_base_merges_onto_the_current_row():
    digest = create_row(a=1)
    stale = connections.call(store.read, digest)
    merge_row(digest, sets={"c": 3})
    snap, statements = merge_from(stale, sets={"b": 2})
    assert "SELECT" in statements
    assert snap.data == {"a": 1, "b": 2, "c": 3} and snap.version == 2
    assert connections.call(store.read, digest).key_versions == {"a": 0, "b": 2, "c": 1}


def test_merge_from_a_stale_base_refuses_only_what_the_current_row_refuses(settings):
    settings.LIVE_SESSIONS = {"MAX_SESSION_BYTES": 100}
    digest = create_row(a="x" * 60)
    stale = connections.call(store.read, digest)
    merge_row(digest, deletes=["a"])
    # With the stale "a" the session would pass the limit; without it, it fits.
    snap, _ = merge_from(stale, sets={"b": "y" * 60})
    assert connections.call(store.read, digest).data == {"b": "y" * 60} == snap.data
    stale = connections.call(store.read, digest)
    merge_row(digest, sets={"b": "z"})
    with pytest.raises(Conflict):
        merge_from(stale, sets={"b": "w"}, expect={"b": stale.version})
    assert connections.call(store.read, digest).data == {"b": "z"}


# --- the event loop's connection ------------------------------------------------------------


@pytest.fixture
def conn() -> Iterator[connections.LoopSqlite]:
    """A connection of the kind requests read through, on the test database."""
    from django.db import connection

    loop = connections.LoopSqlite(str(connection.settings_dict["NAME"]))
    yield loop
    loop.raw.close()


def read_on(conn: connections.Db, digest: str) -> tuple[Snapshot | None, list[str]]:
    recording = Recording(conn)
    return store.read(recording, digest), recording.statements  # type: ignore[arg-type]


def test_a_kept_row_answers_until_another_connection_writes(conn):
    digest = create_row(a=1)
    assert read_on(conn, digest) == (connections.call(store.read, digest), ["SELECT"])
    snap, statements = read_on(conn, digest)
    assert snap is not None and snap.data == {"a": 1} and statements == []
    # Django's connection stands for any other: another thread, another process.
    merge_row(digest, sets={"a": 2})
    snap, statements = read_on(conn, digest)
    assert snap is not None and snap.data == {"a": 2} and statements == ["SELECT"]


def test_a_row_written_here_is_kept_and_read_back(conn):
    digest = create_row(a=1)
    base = store.read(conn, digest)
    store.merge(conn, digest, Changes(sets={"b": 2}), row_expiry, base=base)
    snap, statements = read_on(conn, digest)
    assert snap is not None and statements == []
    assert (snap.data, snap.version) == ({"a": 1, "b": 2}, 1)
    assert (
        snap.key_versions == connections.call(store.read, digest).key_versions == {"a": 0, "b": 1}
    )


@pytest.mark.parametrize("value", [1, [1]], ids=["scalar", "list"])
def test_each_read_hands_out_a_row_of_its_own(value, conn):
    digest = create_row(a=value)
    for _ in range(2):
        snap = store.read(conn, digest)
        assert snap is not None and snap.data == {"a": value}
        assert snap.key_versions == {"a": 0}
        if isinstance(snap.data["a"], list):
            snap.data["a"].append(2)
        snap.data["b"] = snap.key_versions["b"] = 3


def test_a_row_is_not_read_past_its_expiry(monkeypatch, conn):
    digest = create_row(a=1)
    snap = store.read(conn, digest)
    assert snap is not None
    later = snap.expires_at + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.read(conn, digest) is None


class WriteRightAfter(Recording):
    """A Db on which another connection commits a change right after each commit of its own."""

    def __init__(self, inner: connections.Db, digest: str) -> None:
        super().__init__(inner)
        self.digest = digest

    @contextmanager
    def atomic(self) -> Iterator[None]:
        with self.inner.atomic():
            yield
        merge_row(self.digest, sets={"theirs": True})


def test_a_row_written_here_is_not_kept_when_someone_wrote_right_after(conn):
    digest = create_row(a=1)
    racing = WriteRightAfter(conn, digest)
    store.merge(racing, digest, Changes(sets={"ours": True}), row_expiry)  # type: ignore[arg-type]
    snap, _ = read_on(conn, digest)
    assert snap is not None and snap.data == {"a": 1, "ours": True, "theirs": True}


def test_a_large_row_is_not_kept(monkeypatch, conn):
    monkeypatch.setattr(kept, "ROW_CHARS", 40)
    digest = create_row(a="x" * 10)
    store.read(conn, digest)
    assert conn.kept.get(digest) is not None
    # Grown past the size, it is kept neither as written nor as read anew.
    base = store.read(conn, digest)
    store.merge(conn, digest, Changes(sets={"b": "y" * 40}), row_expiry, base=base)
    assert conn.kept.get(digest) is None
    snap, statements = read_on(conn, digest)
    assert snap is not None and snap.data == {"a": "x" * 10, "b": "y" * 40}
    assert statements == ["SELECT"] and conn.kept.get(digest) is None


def test_kept_rows_are_bounded(monkeypatch, conn):
    monkeypatch.setattr(kept, "ROWS", 2)
    digests = [f"{n}" * 64 for n in range(3)]
    for n, digest in enumerate(digests):
        connections.call(store.insert, digest, "abcd…wxyz", {"n": n}, row_expiry)
    for digest in digests:
        store.read(conn, digest)
    assert [conn.kept.get(d) is not None for d in digests] == [False, True, True]
    assert [store.read(conn, d).data for d in digests] == [{"n": n} for n in range(3)]  # type: ignore[union-attr]


def test_a_write_rolled_back_by_an_outer_block_is_not_read_back(conn):
    digest = create_row(a=1)
    base = store.read(conn, digest)
    with pytest.raises(ZeroDivisionError), conn.atomic():
        store.merge(conn, digest, Changes(sets={"a": 2}), row_expiry, base=base)
        assert store.read(conn, digest).data == {"a": 2}  # type: ignore[union-attr]
        1 / 0  # noqa: B018
    snap, statements = read_on(conn, digest)
    assert snap is not None and snap.data == {"a": 1} and statements == ["SELECT"]
