"""The store's merge rules, straight against the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from live import db, store

pytestmark = pytest.mark.django_db(transaction=True)


def expiry(_value: object) -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def create(**data: object) -> str:
    db.call(store.insert, "d" * 64, "abcd…wxyz", dict(data), expiry)
    return "d" * 64


def merge(digest: str, **kwargs: object) -> tuple[store.Snapshot, store.Applied]:
    return db.call(store.merge, digest, store.Changes(**kwargs), expiry)  # type: ignore[arg-type]


def test_same_tells_json_types_apart():
    assert store.same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not store.same(1, True)
    assert not store.same([1], [1.0])
    assert not store.same({"a": 1}, {"a": 1, "b": 2})


def test_merge_keeps_keys_it_did_not_touch():
    digest = create(a=1, b=2)
    merge(digest, sets={"c": 3})
    snap, applied = merge(digest, deletes=["a"])
    assert snap.data == {"b": 2, "c": 3}
    assert applied == [{"op": "delete", "key": "a", "old": 1}]
    assert snap.version == 2


def test_merge_of_equal_value_is_no_change():
    digest = create(a=[1, 2])
    snap, applied = merge(digest, sets={"a": [1, 2]})
    assert applied == [] and snap.version == 0


def test_merge_refuses_stale_expectation():
    digest = create(a=1)
    merge(digest, sets={"a": 2})
    with pytest.raises(store.Conflict) as refused:
        merge(digest, sets={"a": 3}, expect={"a": 0})
    assert refused.value.current == 2
    assert db.call(store.read, digest).data == {"a": 2}


def test_merge_refuses_growth_past_session_limit_under_the_lock(settings):
    settings.LIVE_SESSIONS = {"MAX_SESSION_BYTES": 100}
    digest = create(a="x" * 40)
    merge(digest, sets={"b": "y" * 30})
    with pytest.raises(store.TooLarge):
        merge(digest, sets={"c": "z" * 40})
    assert set(db.call(store.read, digest).data) == {"a", "b"}
    # Shrinking is always allowed, even for a session already over a lowered limit.
    settings.LIVE_SESSIONS = {"MAX_SESSION_BYTES": 10}
    snap, _ = merge(digest, deletes=["a"])
    assert set(snap.data) == {"b"}


def test_tombstones_are_bounded(settings):
    settings.LIVE_SESSIONS = {"MAX_TOMBSTONES": 3}
    digest = create(**{f"k{n}": n for n in range(6)})
    snap, _ = merge(digest, deletes=[f"k{n}" for n in range(6)])
    assert len(snap.key_versions) == 3
