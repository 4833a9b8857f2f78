"""The embedded channel layer, and many group messages at once over channels-redis's pub/sub."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer


class LocalChannelLayer(InMemoryChannelLayer):
    """One process's layer (the default without REDIS_URL).

    Every write publishes to its session's group and to the staff group, and
    most of those groups have no member here: no tab follows the session, no
    staff page is open. The stock group_send would still sweep every channel
    for expired messages and build an asyncio queue for the results; a group
    nobody joined is skipped outright.

    For a group with members, the stock group_send starts a task per member
    and waits for them, although putting a message on an in-memory queue never
    waits, so the writer's request would stand aside while the hub pushes the
    change to every tab. Here the messages go on the queues in place and the
    request finishes first; the tabs' pushes come no later (docs/performance.md
    has the figures).
    """

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        if group not in self.groups:
            return
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            # A member that is not keeping up misses this one, as with the stock send.
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)


async def group_send_all(layer: Any, messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Send each (group, message) in order: on channels-redis's pub/sub layer, one round trip.

    Its group_send publishes one message per round trip, under its
    connection's lock; a process writing faster than one round trip per
    change would fall behind and drop pushes. Here the messages go out in one
    pipeline per shard, through the layer's own connection, to the channel the
    layer names for each group, serialized as it serializes them.
    """
    if type(layer).__module__ != "channels_redis.pubsub":
        for group, message in messages:
            await layer.group_send(group, message)
        return
    shards: dict[Any, list[tuple[str, bytes]]] = {}
    for group, message in messages:
        channel = layer._get_group_channel_name(group)
        shards.setdefault(layer._get_shard(channel), []).append((channel, layer.serialize(message)))
    for shard, published in shards.items():
        async with shard._lock:
            shard._ensure_redis()
            async with shard._redis.pipeline(transaction=False) as pipe:
                for channel, payload in published:
                    pipe.publish(channel, payload)
                await pipe.execute()


# Per layer, per Redis URL: whether a script on that Redis may publish the layer's messages.
_publishable: weakref.WeakKeyDictionary[Any, dict[str, bool]] = weakref.WeakKeyDictionary()


def script_channel(layer: Any, group: str, address: str) -> str | None:
    """The channel that a script on the Redis at `address` may PUBLISH a group's message to.

    Only for channels-redis's pub/sub layer on that same server, with one
    shard, and messages as plain msgpack (no encryption, no prefix), which a
    Lua script writes with cmsgpack; otherwise None, and the message goes
    through the layer.
    """
    if type(layer).__module__ != "channels_redis.pubsub":
        return None
    known = _publishable.setdefault(layer, {})
    if address not in known:
        known[address] = _same_server(layer, address)
    return layer._get_group_channel_name(group) if known[address] else None


def _same_server(layer: Any, address: str) -> bool:
    serializer = getattr(layer, "_serializer", None)
    shards: Any = getattr(layer, "_shards", ())
    if (
        type(serializer).__name__ != "MsgPackSerializer"
        or getattr(serializer, "crypter", True) is not None
        or getattr(serializer, "random_prefix_length", 1) != 0
        or len(shards) != 1
    ):
        return False
    host = shards[0].host
    return isinstance(host, dict) and _server(str(host.get("address", ""))) == _server(address)


def _server(address: str) -> tuple[Any, ...]:
    # Pub/sub spans a server's databases: the database number does not matter.
    url = urlsplit(address)
    return (url.scheme, url.hostname, url.port or 6379, url.username, url.password)
