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
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from live.conf import is_reserved
from live.loops import PerLoop

logger = logging.getLogger(__name__)

GROUP_PREFIX = "session."
STAFF_GROUP = "sessions.staff"

SNAPSHOT = "session.snapshot"
CHANGED = "session.changed"
ROTATED = "session.rotated"
ENDED = "session.ended"
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

# A push must never hold up a write: when the layer is slow or down, the
# change is saved, the push skipped and logged, and tabs resync on reconnect.
PUBLISH_TIMEOUT = 2.0

# Staff lists refresh at most this often (seconds), and each process tells them
# that sessions changed at most this often too (see _touch_staff).
STAFF_REFRESH = 0.5


def group_name(digest: str) -> str:
    return f"{GROUP_PREFIX}{digest}"


async def _bounded(layer: Any, sending: Any) -> None:
    # The in-memory layer never waits, so it skips the timer (a task per
    # send, on every write); a network layer gets PUBLISH_TIMEOUT.
    if isinstance(layer, InMemoryChannelLayer):
        await sending
    else:
        await asyncio.wait_for(sending, PUBLISH_TIMEOUT)


async def _send(digest: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        # The digest travels with the event: each process's hub listens on one
        # channel for all the sessions its tabs follow.
        event = {**event, "digest": digest}
        await _bounded(layer, layer.group_send(group_name(digest), event))
        if event["type"] != PRESENCE:
            await _touch_staff(layer)
    except Exception as exc:  # the write already succeeded; losing a push only costs a resync
        logger.warning("Skipped a %s push: %s", event["type"], exc.__class__.__name__)


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
    try:
        await _bounded(layer, layer.group_send(STAFF_GROUP, {"type": TOUCHED}))
    except Exception as exc:  # as in _send: a lost touch only delays a staff refresh
        logger.warning("Skipped a %s push: %s", TOUCHED, exc.__class__.__name__)


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
    """Run a publish function from sync code (a sync view, a command, a thread)."""
    async_to_sync(coroutine_function)(*args)
