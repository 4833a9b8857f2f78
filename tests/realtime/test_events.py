"""Events: a burst of changes touches the staff lists at once, then once at the interval's end."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from live.realtime import events


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
