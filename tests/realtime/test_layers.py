"""Channel layers: the embedded one's members get each message in order, empty groups are
skipped; many messages sent at once over Redis arrive in order; a burst of writes loses no push."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from channels.layers import channel_layers, get_channel_layer

from live import redis_client
from live.realtime import events
from live.realtime.layers import LocalChannelLayer, group_send_all, script_channel
from live.sessions import redis as redis_engine
from tests.conftest import RedisServer


async def test_group_with_members_gets_every_message_in_order():
    layer = LocalChannelLayer()
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("session.abc", first)
    await layer.group_add("session.abc", second)
    for n in range(3):
        await layer.group_send("session.abc", {"type": "session.changed", "n": n})
    for channel in (first, second):
        got = [(await layer.receive(channel))["n"] for _ in range(3)]
        assert got == [0, 1, 2]


async def test_sending_to_a_group_returns_before_any_member_wakes():
    # A writer's request publishes and answers; the tabs hear of it after.
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("session.abc", channel)
    order = []

    async def member() -> None:
        await layer.receive(channel)
        order.append("member woke")

    listening = asyncio.ensure_future(member())
    await asyncio.sleep(0)  # the member starts, and waits on its queue
    await layer.group_send("session.abc", {"type": "session.changed"})
    order.append("send returned")
    await listening
    assert order == ["send returned", "member woke"]


async def test_a_full_member_channel_drops_the_message_and_spares_the_others():
    layer = LocalChannelLayer(capacity=1)
    full, free = await layer.new_channel(), await layer.new_channel()
    for channel in (full, free):
        await layer.group_add("session.abc", channel)
    await layer.send(full, {"type": "session.changed", "n": 0})
    await layer.group_send("session.abc", {"type": "session.changed", "n": 1})
    assert (await layer.receive(full))["n"] == 0
    assert (await layer.receive(free))["n"] == 1
    # The full channel got nothing more: its queue was drained and dropped.
    assert full not in layer.channels


async def test_group_without_members_is_skipped_and_queues_nothing():
    layer = LocalChannelLayer()
    listener = await layer.new_channel()
    await layer.group_add("session.abc", listener)
    await layer.group_discard("session.abc", listener)
    await layer.group_send("session.abc", {"type": "session.changed"})
    await layer.group_send("session.never-joined", {"type": "session.changed"})
    # Nothing was queued for anyone: a message would sit in a channel's queue.
    assert layer.channels == {}


async def test_group_without_members_still_refuses_a_bad_name_or_message():
    layer = LocalChannelLayer()
    with pytest.raises(TypeError):
        await layer.group_send("no spaces allowed", {"type": "x"})
    with pytest.raises(AssertionError):
        await layer.group_send("session.abc", "not a dict")  # type: ignore[arg-type]


# --- many messages at once over channels-redis's pub/sub layer ---------------------------


def _redis_layer(settings: Any, url: str) -> Any:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": url}]},
        }
    }
    channel_layers.backends.clear()
    return get_channel_layer()


async def test_group_send_all_delivers_every_message_in_order_over_redis(
    own_redis: Callable[..., RedisServer], settings: Any
):
    layer = _redis_layer(settings, own_redis().url)
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("one", first)
    await layer.group_add("two", second)
    sent = [("one" if n % 3 else "two", {"type": "t", "n": n}) for n in range(300)]
    await group_send_all(layer, sent)
    for channel, group in ((first, "one"), (second, "two")):
        wanted = [m["n"] for g, m in sent if g == group]
        got = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in wanted]
        assert got == wanted
    await layer.flush()


async def test_group_send_all_sends_in_turn_on_other_layers():
    layer = get_channel_layer()
    member = await layer.new_channel()
    await layer.group_add("g", member)
    await group_send_all(layer, [("g", {"type": "t", "n": n}) for n in range(5)])
    assert [(await layer.receive(member))["n"] for _ in range(5)] == list(range(5))


async def _sessions_followed(layer: Any, count: int) -> list[tuple[Any, str]]:
    """New Redis engine sessions, each with a listener on its group."""
    made = []
    for _ in range(count):
        store = redis_engine.SessionStore()
        await store.aset("n", 0)
        await store.asave()
        listener = await layer.new_channel()
        await layer.group_add(events.group_name(store.digest), listener)
        made.append((store, listener))
    return made


async def _write_concurrently(made: list[tuple[Any, str]], writers: int, steps: int) -> None:
    async def writer(key: str, n: int) -> None:
        for step in range(steps):
            session = redis_engine.SessionStore(key)
            await session.aset(f"w{n}", step)
            await session.asave()

    keys = [store.session_key for store, _ in made]
    await asyncio.gather(*(writer(keys[n % len(keys)], n) for n in range(writers)))


@pytest.mark.django_db
async def test_concurrent_writes_faster_than_a_round_trip_lose_no_push(
    own_redis: Callable[..., RedisServer], settings: Any
):
    # The channel layer on a Redis of its own, so each change goes through
    # the outbox: writers outpace one publish per round trip many times over,
    # and every change still reaches its session's listener, in order.
    sessions, pushes = own_redis(), own_redis()
    settings.REDIS_URL = sessions.url
    settings.SESSION_ENGINE = "live.redis_engine"
    layer = _redis_layer(settings, pushes.url)
    made = await _sessions_followed(layer, 8)
    await _write_concurrently(made, 48, 25)
    outbox = events._outbox.get()
    await outbox.flushed()
    assert outbox.lost == 0
    for _store, listener in made:
        got = [await asyncio.wait_for(layer.receive(listener), 5) for _ in range(150)]
        assert "entry" not in got[0]
        assert [m["version"] for m in got] == list(range(1, 151))
    await redis_client.aclose()
    await layer.flush()


@pytest.mark.django_db
async def test_the_redis_engine_publishes_its_changes_in_its_script_exactly_and_in_order(
    own_redis: Callable[..., RedisServer], settings: Any
):
    # The channel layer on the engine's own Redis: the merge script publishes.
    redis = own_redis()
    settings.REDIS_URL = redis.url
    settings.SESSION_ENGINE = "live.redis_engine"
    layer = _redis_layer(settings, redis.url)
    made = await _sessions_followed(layer, 4)
    await _write_concurrently(made, 16, 10)
    # Nothing went through the outbox: the writes only told the staff lists.
    assert all(event["type"] == events.TOUCHED for _, _, event in events._outbox.get().waiting)
    for _store, listener in made:
        got = [await asyncio.wait_for(layer.receive(listener), 5) for _ in range(40)]
        assert all("entry" in message for message in got)
        assert [events.expanded(m)["version"] for m in got] == list(range(1, 41))
    # Values that a script could not re-encode arrive exactly as they were set.
    store, listener = made[0]
    exact = {"big": 2**63 + 1, "float": 0.1, "text": "é\u2028</script>", "nested": [1.5, None]}
    session = redis_engine.SessionStore(store.session_key)
    for key, value in exact.items():
        await session.aset(key, value)
    await session.asave()
    event = events.expanded(await asyncio.wait_for(layer.receive(listener), 5))
    assert event["version"] == 41 and event["digest"] == store.digest
    assert {c["key"]: c["value"] for c in event["changes"]} == exact
    assert event["expires_at"] == pytest.approx(session.get_expiry_date().timestamp(), abs=1)
    assert event["source"] == "code" and event["ts"] > 0
    await redis_client.aclose()
    await layer.flush()


async def test_a_script_publishes_only_for_the_pub_sub_layer_on_its_own_server(
    own_redis: Callable[..., RedisServer], settings: Any
):
    first, second = own_redis(), own_redis()
    layer = _redis_layer(settings, first.url)
    assert script_channel(layer, "g", first.url) == layer._get_group_channel_name("g")
    # Pub/sub spans the server's databases.
    assert script_channel(layer, "g", first.url.rsplit("/", 1)[0] + "/3") is not None
    assert script_channel(layer, "g", second.url) is None
    assert script_channel(LocalChannelLayer(), "g", first.url) is None
    for options in ({"serializer_format": "json"}, {"symmetric_encryption_keys": ["k" * 32]}):
        settings.CHANNEL_LAYERS["default"]["CONFIG"].update(options)
        channel_layers.backends.clear()
        assert script_channel(get_channel_layer(), "g", first.url) is None
        for option in options:
            del settings.CHANNEL_LAYERS["default"]["CONFIG"][option]
