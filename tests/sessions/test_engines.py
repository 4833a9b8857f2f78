"""One session-behaviour suite for both live engines: the database one and the Redis one."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from channels.layers import get_channel_layer

from live import redis_client
from live.realtime import events
from live.sessions import db as engine
from live.sessions import redis as redis_engine
from live.sessions.base import LiveSessionBase
from live.sessions.codec import dumps
from live.sessions.keys import digest
from live.types import Conflict, TooLarge, Unavailable
from tests.conftest import REDIS_TEST_URL, free_port
from tests.helpers import logged_in_client, make_user, new_session

pytestmark = pytest.mark.django_db(transaction=True)

Engine = type[LiveSessionBase]


# This run's sessions go under a prefix of their own, removed at the end.
PREFIX = f"live-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="module", autouse=True)
def _remove_test_sessions() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    with contextlib.suppress(redis.RedisError):
        for name in client.scan_iter(f"{PREFIX}*"):
            client.delete(name)


@pytest.fixture(params=["db", "redis", "redis-cluster"])
def Store(request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Engine:
    if request.param.startswith("redis"):
        url = "redis_cluster_url" if request.param == "redis-cluster" else "redis_url"
        settings.REDIS_URL = request.getfixturevalue(url)
        monkeypatch.setattr(redis_engine, "PREFIX", PREFIX)
        return redis_engine.SessionStore
    return engine.SessionStore


@pytest.fixture(autouse=True)
async def _close_redis() -> AsyncIterator[None]:
    yield
    await redis_client.aclose()


async def loaded(Store: Engine, session_key: str | None) -> LiveSessionBase:
    session = Store(session_key)
    await session.akeys()  # the first read loads, as in a request
    return session


async def listen(session_digest: str) -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.group_name(session_digest), channel)
    return layer, channel


async def next_event(listener: tuple[Any, str]) -> dict[str, Any]:
    """The next event, without the session digest that every event carries for the hubs."""
    layer, channel = listener
    event = await asyncio.wait_for(layer.receive(channel), 3)
    assert isinstance(event.pop("digest"), str)
    return event  # type: ignore[no-any-return]


async def test_engine_stores_and_reads_back_json_values(Store: Engine):
    values = {"n": 1, "f": 1.0, "t": True, "none": None, "nested": {"a": [1, "ü"]}, "ключ": "é"}
    session = await new_session(Store, **values)
    assert session.version == 0
    assert await Store().aexists(session.session_key or "")
    again = await loaded(Store, session.session_key)
    assert await again.aitems() == values.items()
    # JSON types survive exactly: 1.0 stays a float and True stays a bool.
    assert type(await again.aget("f")) is float and type(await again.aget("t")) is bool
    assert again.key_versions == dict.fromkeys(values, 0)


def test_engine_encode_and_decode_are_djangos(Store: Engine):
    # SessionBase.encode() and decode() sign with SESSION_SERIALIZER, which
    # SessionBase.__init__ sets up; the engine's own storage does not use them.
    session = Store()
    data = {"n": 1, "nested": {"a": [True, None, "ü"]}}
    assert session.decode(session.encode(data)) == data
    assert session.decode("not signed") == {}


async def test_engine_reads_back_the_whole_row_after_writes(Store: Engine):
    # What a listener reads (the hub, the staff page) after writes is the row as
    # stored, masked key and all, however the engine answers it.
    session = await new_session(Store, a=1)
    other = await loaded(Store, session.session_key)
    await other.aset("b", 2)
    await other.asave()
    snap = await Store.aread(session.digest or "")
    assert snap is not None
    assert (snap.masked_key, snap.version, snap.data) == (session.masked_key, 1, {"a": 1, "b": 2})


async def test_engine_deletes_a_key_then_the_session(Store: Engine):
    session = await new_session(Store, a=1, b=2)
    await session.apop("a")
    await session.asave()
    assert dict(await (await loaded(Store, session.session_key)).aitems()) == {"b": 2}
    listener = await listen(session.digest or "")
    await session.adelete()
    assert await next_event(listener) == {"type": events.ENDED}
    assert not await Store().aexists(session.session_key or "")
    assert await Store.aread(session.digest or "") is None


async def test_engine_merges_diffs_of_concurrent_requests(Store: Engine):
    session = await new_session(Store, keep=0, gone=1)
    first, second = (
        await loaded(Store, session.session_key),
        await loaded(Store, session.session_key),
    )
    await first.aset("a", 1)
    await first.apop("gone")
    await second.aset("b", 2)
    await first.asave()
    await second.asave()
    snapshot = await Store.aread(session.digest or "")
    assert snapshot is not None
    assert snapshot.data == {"keep": 0, "a": 1, "b": 2}
    assert snapshot.version == 2
    # The second writer now holds the merged state, not only its own view.
    assert dict(await second.aitems()) == snapshot.data and second.version == 2


async def test_engine_keeps_every_one_of_many_concurrent_writes(Store: Engine):
    session = await new_session(Store)
    writers = [await loaded(Store, session.session_key) for _ in range(50)]

    async def write(n: int, writer: engine.SessionStore) -> int:
        await writer.aset(f"k{n}", n)
        await writer.asave()
        return writer.version

    versions = await asyncio.gather(*(write(n, w) for n, w in enumerate(writers)))
    snapshot = await Store.aread(session.digest or "")
    assert snapshot is not None
    assert snapshot.data == {f"k{n}": n for n in range(50)}
    assert sorted(versions) == list(range(1, 51))


async def test_engine_clear_also_removes_keys_set_by_others(Store: Engine):
    session = await new_session(Store, a=1)
    mine = await loaded(Store, session.session_key)
    theirs = await loaded(Store, session.session_key)
    await theirs.aset("z", 26)
    await theirs.asave()
    mine.clear()
    await mine.aset("n", 1)
    await mine.asave()
    snapshot = await Store.aread(session.digest or "")
    assert snapshot is not None and snapshot.data == {"n": 1}


async def test_engine_expect_refuses_a_key_changed_after_the_seen_version(Store: Engine):
    session = await new_session(Store, color="red")
    mine = await loaded(Store, session.session_key)
    theirs = await loaded(Store, session.session_key)
    await theirs.aset("color", "blue")
    await theirs.asave()
    mine.expect("color", mine.version)
    await mine.aset("color", "green")
    with pytest.raises(Conflict) as refused:
        await mine.asave()
    assert refused.value.current == "blue" and refused.value.key == "color"
    # The refused write stays refused: a later save (the middleware's) writes nothing.
    await mine.asave()
    snapshot = await Store.aread(session.digest or "")
    assert snapshot is not None and snapshot.data == {"color": "blue"}


async def test_engine_expect_sees_deletes_and_allows_unchanged_keys(Store: Engine):
    session = await new_session(Store, a=1, b=2)
    seen = session.version
    theirs = await loaded(Store, session.session_key)
    await theirs.apop("a")
    await theirs.asave()
    stale = await loaded(Store, session.session_key)
    stale.expect("a", seen)
    await stale.aset("a", 5)
    with pytest.raises(Conflict):
        await stale.asave()
    fine = await loaded(Store, session.session_key)
    fine.expect("b", seen)
    await fine.aset("b", 3)
    await fine.asave()
    assert fine.version == seen + 2


async def test_engine_refuses_growth_past_the_session_limit_under_the_lock(
    Store: Engine, settings: Any
):
    settings.LIVE_SESSIONS = {"MAX_SESSION_BYTES": 120}
    session = await new_session(Store, a="x" * 40)
    first = await loaded(Store, session.session_key)
    second = await loaded(Store, session.session_key)
    await first.aset("b", "y" * 30)
    await first.asave()
    # Each write fits alone; together they pass the limit, so the later one is
    # refused. The key needs escaping and is not ASCII: its size is the UTF-8
    # length of its JSON spelling, whichever store counts it.
    await second.aset('c/é"', "z" * 30)
    with pytest.raises(TooLarge) as refused:
        await second.asave()
    together = {"a": "x" * 40, "b": "y" * 30, 'c/é"': "z" * 30}
    assert f"would be {len(dumps(together).encode())} bytes" in str(refused.value)
    # The refused write stays refused: a later save (the middleware's) writes nothing.
    await second.asave()
    snapshot = await Store.aread(session.digest or "")
    assert snapshot is not None and snapshot.data == {"a": "x" * 40, "b": "y" * 30}
    # Shrinking is always allowed, even for a session already over a lowered limit.
    settings.LIVE_SESSIONS = {"MAX_SESSION_BYTES": 10}
    shrinking = await loaded(Store, session.session_key)
    await shrinking.apop("a")
    await shrinking.asave()
    snapshot = await Store.aread(session.digest or "")
    assert snapshot is not None and snapshot.data == {"b": "y" * 30}


async def test_engine_publishes_each_change_with_old_values(Store: Engine):
    session = await new_session(Store, b=1, c=3)
    session.source = "PUT /api/session/keys/a"
    listener = await listen(session.digest or "")
    await session.aset("a", "new")
    await session.aset("b", 2)
    await session.apop("c")
    await session.asave()
    event = await next_event(listener)
    assert event["type"] == events.CHANGED
    assert event["version"] == 1 and event["source"] == "PUT /api/session/keys/a"
    assert sorted(event["changes"], key=lambda c: c["key"]) == [
        {"op": "set", "key": "a", "value": "new"},
        {"op": "set", "key": "b", "value": 2, "old": 1},
        {"op": "delete", "key": "c", "old": 3},
    ]
    # Saving again with nothing new publishes nothing and keeps the version.
    await session.asave()
    assert session.version == 1


@pytest.mark.parametrize("written", [False, True], ids=["after a load", "after a write"])
async def test_engine_saves_exactly_the_scalars_that_changed(Store: Engine, written: bool):
    session = await new_session(Store, same=1, flag=1, ratio=1, name="x")
    if not written:
        session = await loaded(Store, session.session_key)
    listener = await listen(session.digest or "")
    await session.aset("same", 1)  # an equal value is no change
    await session.aset("flag", True)  # JSON tells true from 1
    await session.aset("ratio", 1.0)  # and 1.0 from 1
    await session.asave()
    event = await next_event(listener)
    assert sorted(event["changes"], key=lambda c: c["key"]) == [
        {"op": "set", "key": "flag", "value": True, "old": 1},
        {"op": "set", "key": "ratio", "value": 1.0, "old": 1},
    ]
    stored = await loaded(Store, session.session_key)
    assert dict(await stored.aitems()) == {"same": 1, "flag": True, "ratio": 1.0, "name": "x"}


@pytest.mark.parametrize("written", [False, True], ids=["after a load", "after a write"])
async def test_engine_saves_a_list_changed_in_place(Store: Engine, written: bool):
    session = await new_session(Store, items=[1], n=1)
    if not written:
        session = await loaded(Store, session.session_key)
    listener = await listen(session.digest or "")
    (await session.aget("items")).append(2)  # never set again
    await session.asave()
    assert (await next_event(listener))["changes"] == [
        {"op": "set", "key": "items", "value": [1, 2], "old": [1]}
    ]
    (await session.aget("items")).append(3)
    await session.asave()
    assert (await next_event(listener))["changes"] == [
        {"op": "set", "key": "items", "value": [1, 2, 3], "old": [1, 2]}
    ]


async def test_engine_never_shares_a_list_set_into_a_session_of_scalars(Store: Engine):
    # Once a list is set into a session of scalars, a request changing that
    # list in place without saving must not change what the next request reads.
    session = await new_session(Store, n=1)
    writer = await loaded(Store, session.session_key)
    await writer.aset("items", [1])
    await writer.asave()
    changer = await loaded(Store, session.session_key)
    (await changer.aget("items")).append(2)  # not saved
    reader = await loaded(Store, session.session_key)
    assert await reader.aget("items") == [1]


@pytest.mark.parametrize("number", [2**64, -(10**30)], ids=["2**64", "-10**30"])
async def test_engine_keeps_every_digit_of_a_long_integer(Store: Engine, number: int):
    session = await new_session(Store, n=1)
    writer = await loaded(Store, session.session_key)
    await writer.aset("big", number)
    await writer.asave()
    again = await loaded(Store, session.session_key)
    stored = await Store.aread(writer.digest or "")
    assert stored is not None
    for value in (await again.aget("big"), stored.data["big"]):
        assert value == number and type(value) is int


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (uuid.UUID(int=1), TypeError),
        ({"when": datetime(2026, 1, 1)}, TypeError),
        (math.nan, ValueError),
    ],
    ids=["uuid", "datetime", "nan"],
)
async def test_engine_refuses_what_json_cannot_hold_and_changes_nothing(
    Store: Engine, value: Any, error: type[Exception]
):
    session = await new_session(Store, n=1)
    writer = await loaded(Store, session.session_key)
    await writer.aset("n", 2)
    await writer.aset("bad", value)
    with pytest.raises(error):
        await writer.asave()
    stored = await loaded(Store, session.session_key)
    assert (dict(await stored.aitems()), stored.version) == ({"n": 1}, 0)


async def test_engine_cycle_key_moves_data_and_timeline(Store: Engine):
    session = await new_session(Store, a=1)
    await session.aset("b", 2)
    await session.asave()
    old_key, old_digest, version = session.session_key, session.digest or "", session.version
    listener = await listen(old_digest)
    await session.aset("c", 3)
    await session.acycle_key()
    assert session.session_key != old_key
    # The new key's digest never travels: listeners follow cookies.
    assert await next_event(listener) == {"type": events.ROTATED}
    assert await Store.aread(old_digest) is None
    moved = await Store.aread(session.digest or "")
    assert moved is not None
    assert moved.data == {"a": 1, "b": 2, "c": 3} and moved.version == version + 1
    history = await Store.ahistory(session.digest or "")
    assert [entry["version"] for entry in history] == [version + 1, version]
    assert history[0]["changes"][-1] == {"op": "cycle", "key": ""}
    assert await Store.aentry(session.digest or "", version) == history[1]


async def test_engine_flush_ends_the_session_and_stores_nothing(Store: Engine):
    session = await new_session(Store, a=1)
    await session.aset("b", 2)
    await session.asave()
    old_key, old_digest = session.session_key, session.digest or ""
    listener = await listen(old_digest)
    await session.aflush()
    assert await next_event(listener) == {"type": events.ENDED}
    assert await Store.aread(old_digest) is None
    assert not await Store().aexists(old_key)
    # Django's flush: no key and nothing stored until the next save creates a session.
    assert session.session_key is None and dict(await session.aitems()) == {}
    await session.aset("c", 3)
    await session.asave()
    assert session.session_key not in (None, old_key)
    fresh = await Store.aread(session.digest or "")
    assert fresh is not None and fresh.data == {"c": 3}


async def test_engine_expiry_follows_set_expiry(Store: Engine):
    session = await new_session(Store, a=1)
    await session.aset_expiry(300)
    await session.asave()
    snapshot = await Store.aread(session.digest or "")
    assert snapshot is not None
    assert snapshot.expires_at == pytest.approx(time.time() + 300, abs=5)
    await session.aset_expiry(datetime.now(UTC) - timedelta(seconds=1))
    await session.asave()
    # Expired at once: gone for readers, and a new request starts afresh.
    assert await Store.aread(session.digest or "") is None
    assert not await Store().aexists(session.session_key or "")
    assert dict(await (await loaded(Store, session.session_key)).aitems()) == {}


async def test_engine_expiry_set_by_another_request_is_kept(Store: Engine):
    session = await new_session(Store, a=1)
    mine = await loaded(Store, session.session_key)
    theirs = await loaded(Store, session.session_key)
    await theirs.aset_expiry(120)
    await theirs.asave()
    await mine.aset("b", 2)
    await mine.asave()
    snapshot = await Store.aread(session.digest or "")
    assert snapshot is not None and snapshot.data["_session_expiry"] == 120
    # Not the two-week default: the merge computed the expiry from their setting.
    assert snapshot.expires_at == pytest.approx(time.time() + 120, abs=5)


async def test_engine_save_of_a_session_nothing_read_keeps_its_data_and_slides_its_expiry(
    Store: Engine,
):
    # With SESSION_SAVE_EVERY_REQUEST, the middleware saves sessions the view never read.
    session = await new_session(Store, a=1)
    await session.aset_expiry(60)
    await session.asave()
    before = await Store.aread(session.digest or "")
    assert before is not None
    await Store(session.session_key).asave()
    after = await Store.aread(session.digest or "")
    assert after is not None and after.data == {"a": 1, "_session_expiry": 60}
    assert after.expires_at >= before.expires_at
    assert after.expires_at == pytest.approx(time.time() + 60, abs=5)
    await asyncio.to_thread(Store(session.session_key).save)
    again = await Store.aread(session.digest or "")
    assert again is not None and again.data == after.data
    assert again.expires_at >= after.expires_at


async def test_engine_aread_of_an_unknown_digest_is_none(Store: Engine):
    assert await Store.aread(digest("no-such-session-key-0123456789ab")) is None


async def test_engine_summaries_list_sessions_newest_change_first(Store: Engine):
    first = await new_session(Store, a=1)
    second = await new_session(Store, b="x")
    await first.aset("c", [1, 2])
    await first.asave()
    mine = (first.digest, second.digest)
    rows = [row for row in await Store.asummaries() if row.digest in mine]
    assert [row.digest for row in rows] == [first.digest, second.digest]
    row = rows[0]
    assert (row.masked_key, row.keys, row.version) == (first.masked_key, 2, first.version)
    assert row.size_bytes == len(dumps({"a": 1, "c": [1, 2]}).encode())
    assert row.expires_at > time.time() and row.updated_at <= time.time()
    # The list shows no values, and a flushed session leaves it.
    assert "[1, 2]" not in repr(rows)
    gone = first.digest
    await first.aflush()
    assert gone not in {row.digest for row in await Store.asummaries()}


async def test_engine_counts_sessions_changed_since_a_moment(Store: Engine):
    await new_session(Store, old=1)
    since = time.time()
    await new_session(Store, a=1)
    await new_session(Store, b=2)
    assert await Store.acount_active(since) == 2
    assert await Store.acount_active(time.time()) == 0


async def test_engine_lists_and_counts_more_sessions_than_fit_one_page(
    Store: Engine, monkeypatch: pytest.MonkeyPatch
):
    # Redis lists its sessions a SCAN page at a time, with a pipeline per page.
    monkeypatch.setattr(redis_engine, "SCAN_PAGE", 2)
    since = time.time()
    made = {(await new_session(Store, n=n)).digest for n in range(5)}
    assert await Store.acount_active(since) == 5
    assert made <= {row.digest for row in await Store.asummaries()}


async def test_engine_lists_a_users_sessions_newest_first_over_pages(
    Store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_engine, "SCAN_PAGE", 2)
    me, them = f"owner-{uuid.uuid4().hex}", f"other-{uuid.uuid4().hex}"
    first, _theirs, second, third = [
        await new_session(Store, _auth_user_id=uid) for uid in (me, them, me, me)
    ]
    await first.aset("a", 1)
    await first.asave()
    # Signed out: the session stays, but is no longer this user's.
    await third.apop("_auth_user_id")
    await third.asave()
    owned = [row.digest for row in await Store.aowned(me)]
    assert owned == [first.digest, second.digest]


async def test_staff_list_shows_the_sessions_of_the_configured_engine(Store: Engine, settings: Any):
    settings.SESSION_ENGINE = Store.__module__
    await make_user("boss", staff=True)
    staff = await logged_in_client("boss")
    mine = await new_session(Store, favorite_color="blue")
    listing = (await staff.get("/staff/sessions/")).content.decode()
    assert mine.masked_key in listing and "blue" not in listing


def test_engine_sync_methods_match_the_async_ones(Store: Engine):
    session = Store()
    session["a"] = 1
    session.create()
    assert Store().exists(session.session_key or "")
    other = Store(session.session_key)
    other["b"] = 2
    other.save()
    session["c"] = 3
    session.save()
    assert dict(Store(session.session_key).load()) == {"a": 1, "b": 2, "c": 3}
    old = session.session_key
    session.cycle_key()
    assert not Store().exists(old or "") and Store(session.session_key).load()["b"] == 2
    session.flush()
    assert Store(session.session_key).load() == {}
    session.delete()
    assert not Store().exists(session.session_key or "")


# --- Redis only ----------------------------------------------------------------------


async def test_redis_engine_stores_one_field_per_key_under_the_digest(
    redis_url: str, settings: Any, monkeypatch: pytest.MonkeyPatch
):
    settings.REDIS_URL = redis_url
    monkeypatch.setattr(redis_engine, "PREFIX", PREFIX)
    session = await new_session(redis_engine.SessionStore, a=1, b={"x": [2]})
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    # Data, per-key versions and meta; the timeline appears with the first change.
    assert len(client.keys(f"*{session.digest}*")) == 3
    assert not client.keys(f"*{session.session_key}*")
    data_key = redis_engine.session_keys(session.digest or "")[0]
    assert client.hgetall(data_key) == {"a": "1", "b": '{"x":[2]}'}
    assert 0 < client.pttl(data_key) <= 1209600 * 1000


async def test_redis_engine_lists_a_users_session_however_many_changed_after_it(
    redis_url: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REDIS_URL = redis_url
    prefix = f"live-test-many-{uuid.uuid4().hex[:8]}:"
    monkeypatch.setattr(redis_engine, "PREFIX", prefix)
    me = f"owner-{uuid.uuid4().hex}"
    mine = await new_session(redis_engine.SessionStore, _auth_user_id=me)
    client = redis.Redis.from_url(redis_url)
    try:
        # More sessions than a listing of the most recent ones would read,
        # every one empty and changed after this user's.
        later = time.time() + 60
        meta: dict[str | bytes, str | bytes] = {
            "version": "1",
            "masked": "abc…xyz",
            "expires": str(later + 3600),
            "updated": str(later),
        }
        with client.pipeline(transaction=False) as pipe:
            for n in range(10_001):
                pipe.hset(f"{prefix}{{other-{n}}}:meta", mapping=meta)
            pipe.execute()
        assert [row.digest for row in await redis_engine.SessionStore.aowned(me)] == [mine.digest]
    finally:
        for name in client.scan_iter(f"{prefix}*", count=1000):
            client.delete(name)


async def test_redis_engine_fails_fast_when_redis_is_down(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    session = redis_engine.SessionStore()
    await session.aset("a", 1)
    started = time.monotonic()
    with pytest.raises(Unavailable) as down:
        await session.asave()
    with pytest.raises(Unavailable):
        await redis_engine.SessionStore("some-session-key-123").aload()
    assert time.monotonic() - started < 3
    assert str(down.value).endswith(".") and "Redis" in str(down.value)


async def test_engine_lists_a_users_sessions_and_ends_one_by_digest(Store: Engine) -> None:
    # User ids no other test's login can take: ids a database hands out are numbers.
    me, them = f"owner-{uuid.uuid4().hex}", f"other-{uuid.uuid4().hex}"
    mine, also_mine, theirs = [
        await new_session(Store, _auth_user_id=uid) for uid in (me, me, them)
    ]
    owned = {row.digest for row in await Store.aowned(me)}
    assert owned == {mine.digest, also_mine.digest}
    listener = await listen(mine.digest)
    assert await Store.adelete_digest(mine.digest)
    assert await next_event(listener) == {"type": "session.ended"}
    assert not await Store().aexists(mine.session_key)
    assert await Store().aexists(also_mine.session_key)
    assert await Store().aexists(theirs.session_key)
    assert {row.digest for row in await Store.aowned(me)} == {also_mine.digest}
    # Ending what is not there ends nothing, and says so.
    assert not await Store.adelete_digest(mine.digest)
