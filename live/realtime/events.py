"""The only place that knows group names and event types.

A session's group is named after the digest of its key, never the key. Events
sent through the channel layer carry the types below. Session events go to
each process's hub (live.realtime.hub), which handles them by type; the staff list
handles its own in a method named after it (`sessions.touched` ->
`sessions_touched`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from live.conf import is_reserved
from live.loops import PerLoop
from live.realtime import layers

logger = logging.getLogger(__name__)

GROUP_PREFIX = "session."
STAFF_GROUP = "sessions.staff"

SNAPSHOT = "session.snapshot"
CHANGED = "session.changed"
ROTATED = "session.rotated"
ENDED = "session.ended"
# Pushes stopped reaching the socket's process (the layer is down), and flow again.
PAUSED = "session.paused"
RESUMED = "session.resumed"
PRESENCE = "session.presence"
# Pushes to the session may have been lost (the layer was down): listeners fetch the truth.
STALE = "session.stale"
TOUCHED = "sessions.touched"
# Channels of this process: its hub's (one per process) and its probe's (live.realtime.probe).
HUB_CHANNEL = "live-hub"
PROBE = "live.probe"
RESYNC = "resync"

# JSON subprotocol offered to clients that want events instead of HTML.
JSON_SUBPROTOCOL = "session.json"

# A push must never hold up a write. The in-memory layer never waits, so its
# pushes are sent in place; a network layer's are handed to one sender per
# loop (_Outbox), which sends them in order, those posted meanwhile together in
# one batch within PUBLISH_TIMEOUT, while the write answers. When the layer is
# slow or down, pushes are skipped and logged, and the sessions they were for
# resync once it answers again.
PUBLISH_TIMEOUT = 2.0
# Pushes waiting for the sender, at most: beyond this a slow layer loses pushes
# rather than this process piling them up.
MAX_PENDING = 1000

# Staff lists refresh at most this often (seconds), and each process tells them
# that sessions changed at most this often too (see _touch_staff).
STAFF_REFRESH = 0.5


def group_name(digest: str) -> str:
    return f"{GROUP_PREFIX}{digest}"


@dataclass
class _Outbox:
    """This loop's pushes waiting for a network layer, and the one task that sends them."""

    waiting: deque[tuple[Any, str, dict[str, Any]]] = field(default_factory=deque)
    # Held here: the loop keeps only a weak reference to its tasks.
    sender: asyncio.Task[None] | None = None
    # Pushes lost since the layer last answered, and the sessions they were for.
    lost: int = 0
    missed: set[str] = field(default_factory=set)

    def post(self, layer: Any, group: str, event: dict[str, Any]) -> None:
        if len(self.waiting) >= MAX_PENDING:
            if not self.lost:
                logger.warning("The channel layer is not keeping up: pushes are dropped.")
            self._lose(event)
            return
        self.waiting.append((layer, group, event))
        if self.sender is None:
            self.sender = asyncio.get_running_loop().create_task(self._send_all())

    async def flushed(self) -> None:
        """Wait for the pushes posted so far, at most PUBLISH_TIMEOUT."""
        if self.sender is not None:
            await asyncio.wait({self.sender}, timeout=PUBLISH_TIMEOUT)

    async def _send_all(self) -> None:
        try:
            while self.waiting:
                # Everything posted while the last batch was on its way goes in
                # one batch: one round trip, however fast the writes come.
                layer, batch = self.waiting[0][0], []
                while self.waiting and self.waiting[0][0] is layer:
                    batch.append(self.waiting.popleft()[1:])
                try:
                    await asyncio.wait_for(layers.group_send_all(layer, batch), PUBLISH_TIMEOUT)
                except Exception as exc:  # the writes were saved; a lost push costs a resync
                    self._failed([event for _group, event in batch], exc)
                else:
                    if self.lost:
                        self._recovered(layer)
        finally:
            self.sender = None

    def _failed(self, events: list[dict[str, Any]], exc: Exception) -> None:
        # Those waiting behind them would wait on the same dead layer, in turn.
        skipped = [*events, *(waiting[2] for waiting in self.waiting)]
        self.waiting.clear()
        for each in skipped:
            self._lose(each)
        logger.warning("Skipped %d pushes: %s", len(skipped), exc.__class__.__name__)

    def _lose(self, event: dict[str, Any]) -> None:
        self.lost += 1
        if "digest" in event and event["type"] != PRESENCE and len(self.missed) < MAX_PENDING:
            self.missed.add(event["digest"])

    def _recovered(self, layer: Any) -> None:
        logger.info(
            "Pushes flow again after %d were lost; %d sessions resync.", self.lost, len(self.missed)
        )
        missed, self.missed, self.lost = self.missed, set(), 0
        for digest in missed:
            self.post(layer, group_name(digest), {"type": STALE, "digest": digest})
        self.post(layer, STAFF_GROUP, {"type": TOUCHED})


_outbox: PerLoop[_Outbox] = PerLoop(_Outbox)


async def _publish(layer: Any, group: str, event: dict[str, Any]) -> None:
    if not isinstance(layer, InMemoryChannelLayer):
        _outbox.get().post(layer, group, event)
        return
    try:
        await layer.group_send(group, event)
    except Exception as exc:  # as in _Outbox: a lost push costs a resync
        logger.warning("Skipped a %s push: %s", event["type"], exc.__class__.__name__)


async def _send(digest: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    # The digest travels with the event: each process's hub listens on one
    # channel for all the sessions its tabs follow.
    event = {**event, "digest": digest}
    await _publish(layer, group_name(digest), event)
    if event["type"] != PRESENCE:
        await _touch_staff(layer)


@dataclass
class _Touches:
    """When this loop last told the staff lists, the touch it has due, and the touches in flight."""

    sent_at: float = float("-inf")
    due: asyncio.TimerHandle | None = None
    # The loop keeps only a weak reference to its tasks.
    sending: set[asyncio.Task[None]] = field(default_factory=set)


_touches: PerLoop[_Touches] = PerLoop(_Touches)


async def _touch_staff(layer: Any) -> None:
    """Tell the staff lists that a session changed: no data, just "refresh".

    A staff list refreshes at most every STAFF_REFRESH seconds however many
    touches arrive, so a process sends at most one per interval: the first
    change at once, later ones by a single touch at the interval's end. A
    touch per write would cost a round trip per write over a network layer,
    even with no staff page open, and a message per write to each one that is.
    """
    touches = _touches.get()
    if touches.due is not None:
        # The scheduled touch goes after this change was saved: it covers it.
        return
    loop = asyncio.get_running_loop()
    now, due = loop.time(), touches.sent_at + STAFF_REFRESH
    if now < due:
        touches.due = loop.call_at(due, _send_due_touch, layer, touches)
        return
    touches.sent_at = now
    await _send_touch(layer)


def _send_due_touch(layer: Any, touches: _Touches) -> None:
    touches.due = None
    touches.sent_at = asyncio.get_running_loop().time()
    task = asyncio.ensure_future(_send_touch(layer))
    touches.sending.add(task)
    task.add_done_callback(touches.sending.discard)


async def _send_touch(layer: Any) -> None:
    # A lost touch only delays a staff refresh.
    await _publish(layer, STAFF_GROUP, {"type": TOUCHED})


def changed_event(
    version: int, applied: list[dict[str, Any]], source: str, expires_at: float
) -> dict[str, Any]:
    """The layer event of a change; `applied` keeps old values for the timeline."""
    return {
        "type": CHANGED,
        "version": version,
        "changes": applied,
        "source": source,
        "ts": time.time(),
        "expires_at": expires_at,
    }


def apply_change(data: dict[str, Any], event: dict[str, Any]) -> None:
    """Apply a `session.changed` event's changes to a session's data, in the order applied.

    The layer's events and the session.json ones spell changes alike, so the
    hub's mirror and any client's copy of a session follow it the same way.
    """
    for change in event["changes"]:
        if change["op"] == "set":
            data[change["key"]] = change["value"]
        else:
            data.pop(change["key"], None)


def client_changes(applied: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The changes as the session.json protocol spells them: no old values, no Django keys."""
    return [
        {"op": c["op"], "key": c["key"], "value": c["value"]}
        if c["op"] == "set"
        else {"op": c["op"], "key": c["key"]}
        for c in applied
        if not is_reserved(c["key"])
    ]


@dataclass(eq=False)
class Change:
    """One `session.changed` event, as the hub hands it to every tab of its session here."""

    event: dict[str, Any]

    @cached_property
    def text(self) -> str:
        """The event as a session.json message: encoded for the first JSON tab, sent by all."""
        event = self.event
        message = {
            "type": CHANGED,
            "version": event["version"],
            "changes": client_changes(event["changes"]),
            "source": event["source"],
            "ts": event["ts"],
        }
        return json.dumps(message, separators=(",", ":"))


async def publish_changed(digest: str, event: dict[str, Any]) -> None:
    await _send(digest, event)


def store_channel(digest: str, address: str) -> dict[str, str] | None:
    """What a store's script on the Redis at `address` needs to publish a change itself.

    The Redis engine's merge publishes the change in the same script that
    makes it, when the channel layer is on that same Redis (see
    live.realtime.layers.script_channel): no publish of its own to wait for,
    and the pushes leave in version order. Such an event carries the change's
    timeline entry as JSON text under "entry" (see expanded), since a script
    cannot re-encode arbitrary JSON values exactly.
    """
    layer = get_channel_layer()
    channel = layers.script_channel(layer, group_name(digest), address) if layer else None
    return {"channel": channel, "type": CHANGED, "digest": digest} if channel else None


def expanded(event: dict[str, Any]) -> dict[str, Any]:
    """A `session.changed` event as changed_event spells it, also when a store's script sent it."""
    if "entry" not in event:
        return event
    return {
        "type": CHANGED,
        "digest": event["digest"],
        "expires_at": event["expires_at"],
        **json.loads(event["entry"]),
    }


async def changed_by_store() -> None:
    """A change that the store published itself (store_channel): the staff lists still hear."""
    layer = get_channel_layer()
    if layer is not None:
        await _touch_staff(layer)


async def publish_rotated(digest: str) -> None:
    # No successor travels with it: listeners follow cookies, never the server.
    await _send(digest, {"type": ROTATED})


async def publish_ended(digest: str) -> None:
    await _send(digest, {"type": ENDED})


async def publish_presence(digest: str, tabs: int, labels: tuple[str, ...] = ()) -> None:
    await _send(digest, {"type": PRESENCE, "tabs": tabs, "labels": list(labels)})


async def publish_stale(digest: str) -> None:
    await _send(digest, {"type": STALE})


def publish_from_sync(coroutine_function: Any, *args: Any) -> None:
    """Run a publish function from sync code (a sync view, a command, a thread).

    async_to_sync may run it on a loop of its own, which cancels what is left
    when it returns, so the push is waited for here (at most PUBLISH_TIMEOUT).
    """

    async def publish() -> None:
        await coroutine_function(*args)
        await _outbox.get().flushed()

    async_to_sync(publish)()
