"""The embedded channel layer: members get each message in order; empty groups are skipped."""

from __future__ import annotations

import asyncio

import pytest

from live.realtime.layers import LocalChannelLayer


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
