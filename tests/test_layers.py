"""The embedded channel layer, and the digest every request computes."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.utils.crypto import salted_hmac

from live.keys import digest
from live.layers import LocalChannelLayer


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


def test_digest_is_djangos_salted_hmac_and_follows_the_secret():
    key = "397tmjimvd4xvpcoum84gjs28ml00rny"
    expected = salted_hmac("live.keys.digest", key, algorithm="sha256").hexdigest()
    assert digest(key) == expected
    with override_settings(SECRET_KEY="another-secret-" + "x" * 40):
        other = digest(key)
        assert other == salted_hmac("live.keys.digest", key, algorithm="sha256").hexdigest()
    assert other != expected
