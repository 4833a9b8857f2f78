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
from live.realtime.layers import LocalChannelLayer, group_send_all
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


@pytest.mark.django_db
async def test_concurrent_writes_faster_than_a_round_trip_lose_no_push(
    own_redis: Callable[..., RedisServer], settings: Any
):
    # Writers outpace one publish per round trip many times over; every change
    # still reaches its session's listener, in order, with no resync.
    redis = own_redis()
    settings.REDIS_URL = redis.url
    settings.SESSION_ENGINE = "live.redis_engine"
    layer = _redis_layer(settings, redis.url)
    stores = []
    for _ in range(8):
        store = redis_engine.SessionStore()
        await store.aset("n", 0)
        await store.asave()
        stores.append(store)
    listeners = []
    for store in stores:
        listener = await layer.new_channel()
        await layer.group_add(events.group_name(store.digest), listener)
        listeners.append(listener)

    async def writer(key: str, n: int) -> None:
        for step in range(25):
            session = redis_engine.SessionStore(key)
            await session.aset(f"w{n}", step)
            await session.asave()

    await asyncio.gather(*(writer(stores[n % 8].session_key, n) for n in range(48)))
    outbox = events._outbox.get()
    await outbox.flushed()
    assert outbox.lost == 0
    for listener in listeners:
        got = [(await asyncio.wait_for(layer.receive(listener), 5)) for _ in range(150)]
        assert [m["version"] for m in got] == list(range(1, 151))
    await redis_client.aclose()
    await layer.flush()
