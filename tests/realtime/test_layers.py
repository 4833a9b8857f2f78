"""The embedded channel layer, and the digest every request computes."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer
from django.test import override_settings
from django.utils.crypto import salted_hmac

from live.realtime import events
from live.realtime.layers import LocalChannelLayer
from live.sessions.keys import digest


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


async def test_a_burst_of_changes_touches_the_staff_lists_once_now_and_once_at_the_end():
    layer = get_channel_layer()
    staff = await layer.new_channel()
    await layer.group_add(events.STAFF_GROUP, staff)
    follower = await layer.new_channel()
    await layer.group_add(events.group_name("d" * 64), follower)
    for version in range(1, 21):
        event = events.changed_event(version, [], "test", 0.0)
        await events.publish_changed("d" * 64, event)
    # Every change still reaches the session's own listeners...
    got = [(await layer.receive(follower))["version"] for _ in range(20)]
    assert got == list(range(1, 21))
    # ...while the staff lists hear of the first at once and of the rest once,
    # after the interval in which they all fell.
    assert (await layer.receive(staff))["type"] == events.TOUCHED
    later = await asyncio.wait_for(layer.receive(staff), events.STAFF_REFRESH * 4)
    assert later["type"] == events.TOUCHED
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(staff), 0.05)
    await layer.group_discard(events.STAFF_GROUP, staff)
    await layer.group_discard(events.group_name("d" * 64), follower)


async def test_a_change_after_a_quiet_interval_touches_the_staff_lists_at_once():
    layer = get_channel_layer()
    staff = await layer.new_channel()
    await layer.group_add(events.STAFF_GROUP, staff)
    loop = asyncio.get_running_loop()
    # As if the last touch went out a whole interval ago.
    events._touches.get().sent_at = loop.time() - events.STAFF_REFRESH
    await events.publish_changed("e" * 64, events.changed_event(1, [], "test", 0.0))
    assert (await asyncio.wait_for(layer.receive(staff), 0.05))["type"] == events.TOUCHED
    await layer.group_discard(events.STAFF_GROUP, staff)


def test_digest_is_djangos_salted_hmac_and_follows_the_secret():
    key = "397tmjimvd4xvpcoum84gjs28ml00rny"
    expected = salted_hmac("live.keys.digest", key, algorithm="sha256").hexdigest()
    assert digest(key) == expected
    with override_settings(SECRET_KEY="another-secret-" + "x" * 40):
        other = digest(key)
        assert other == salted_hmac("live.keys.digest", key, algorithm="sha256").hexdigest()
    assert other != expected
