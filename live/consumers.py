"""The WebSocket side: follow one session and push its changes to a tab.

The consumer authenticates from the session cookie on connect, joins the
session's group, sends a snapshot and then relays events, as HTML fragments
for htmx or, with the `session.json` subprotocol, as JSON. It keeps its own
copy of the session (snapshot plus changes) so that it renders without a
database read, and it resyncs from the database when it sees a version gap.
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib import import_module
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils.module_loading import import_string

from live import broadcasting, db, metrics, presence, store
from live.conf import setting
from live.engine import SessionStore as LiveStore
from live.keys import digest

# Close codes: htmx reconnects only after 1006, 1011, 1012 and 1013, so these stay closed.
RESYNC_BURST, RESYNC_RATE = 50, 5.0
CLOSE_NO_SESSION = 4404
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY_TABS = 4429
# The session moved on (rotated or flushed again) faster than this socket could
# follow: the page reconnects, and the browser's cookie leads it to the session.
CLOSE_MOVED = 4307
# 1009 ("message too big") is the protocol layer's code: daphne's autobahn lets an
# application close only with 1000 or 3000-4999, and turns 1009 into a crash (1011).
CLOSE_TOO_BIG = 4009


def _engine() -> type[LiveStore]:
    # Any engine with the live engine's interface (aread, versions, events) will do.
    return import_module(settings.SESSION_ENGINE).SessionStore  # type: ignore[no-any-return]


_encoded: dict[tuple[str, int], str] = {}


def _changed_text(session_digest: str, event: dict[str, Any]) -> str:
    """Encode a change once for all the JSON tabs of its session in this process."""
    key = (session_digest, event["version"])
    text = _encoded.get(key)
    if text is None:
        message = {
            "type": broadcasting.CHANGED,
            "version": event["version"],
            "changes": broadcasting.client_changes(event["changes"]),
            "source": event["source"],
            "ts": event["ts"],
        }
        text = json.dumps(message, separators=(",", ":"))
        if len(_encoded) >= 256:
            _encoded.pop(next(iter(_encoded)))
        _encoded[key] = text
    return text


def _visible(data: dict[str, Any]) -> dict[str, Any]:
    # Keys starting with "_" belong to Django; JSON clients see the user's keys.
    return {k: v for k, v in data.items() if not k.startswith("_")}


class SessionConsumer(AsyncWebsocketConsumer):
    digest: str | None = None
    snapshot: store.Snapshot | None = None
    tabs = 0
    # Staff watchers follow a session without showing up as one of its tabs.
    counts_as_tab = True
    _resync_tokens = float(RESYNC_BURST)
    _resync_at = 0.0
    history: list[dict[str, Any]]

    async def connect(self) -> None:
        self.json_mode = broadcasting.JSON_SUBPROTOCOL in self.scope.get("subprotocols", [])
        await self.accept(broadcasting.JSON_SUBPROTOCOL if self.json_mode else None)
        cookie = self.scope.get("cookies", {}).get(settings.SESSION_COOKIE_NAME)
        snapshot = await self._read_listening(digest(cookie)) if cookie else None
        if snapshot is None:
            await self._send_ended(followed=False)
            await self.close(code=CLOSE_NO_SESSION)
            return
        await self._follow(snapshot)

    async def disconnect(self, code: int) -> None:
        self._cancel_expiry()
        await self._unfollow()

    # --- expiry: nobody writes when a session dies of age, so the socket watches ----

    _expiry_timer: asyncio.TimerHandle | None = None

    def _cancel_expiry(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None

    def _watch_expiry(self) -> None:
        self._cancel_expiry()
        if self.snapshot is None:
            return
        delay = self.snapshot.expires_at - time.time()
        # Check just after the moment; a write meanwhile re-arms the timer.
        self._expiry_timer = asyncio.get_running_loop().call_later(
            max(delay, 0) + 0.25, lambda: asyncio.ensure_future(self._resync())
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Measured in bytes: 4096 characters of emoji are 16 KiB.
        size = len(bytes_data or (text_data or "").encode("utf-8", "surrogatepass"))
        if size > setting("MAX_MESSAGE_BYTES"):
            # "Message too big"; a client that sends these is broken or hostile.
            await self.close(code=CLOSE_TOO_BIG)
            return
        try:
            message = json.loads(text_data or "")
        except (ValueError, RecursionError):
            # Not JSON, or nested deeper than the parser recurses (a few
            # thousand brackets fit in a message): either way not a request.
            return
        if isinstance(message, dict) and message.get("type") == broadcasting.RESYNC:
            # A bucket of RESYNC_BURST reads refilled at RESYNC_RATE a second:
            # a client asking in a loop cannot turn the socket into a database load.
            now = time.monotonic()
            tokens = min(RESYNC_BURST, self._resync_tokens + (now - self._resync_at) * RESYNC_RATE)
            self._resync_at = now
            if tokens >= 1:
                self._resync_tokens = tokens - 1
                await self._resync()
            else:
                self._resync_tokens = tokens

    # --- following a session ----------------------------------------------------

    async def _read_listening(self, session_digest: str) -> store.Snapshot | None:
        """Join the session's group, then read it: nothing published in between is lost.

        Events the snapshot already holds are skipped by their version. Reading
        first would drop a rotation or flush made meanwhile, and the socket would
        follow a session that nobody writes to any more.
        """
        group = broadcasting.group_name(session_digest)
        await self.channel_layer.group_add(group, self.channel_name)
        snapshot = await _engine().aread(session_digest)
        if snapshot is None:
            await self.channel_layer.group_discard(group, self.channel_name)
        return snapshot

    async def _follow(self, snapshot: store.Snapshot) -> None:
        if self.counts_as_tab and await presence.count(snapshot.digest) >= setting("MAX_TABS"):
            group = broadcasting.group_name(snapshot.digest)
            await self.channel_layer.group_discard(group, self.channel_name)
            await self.close(code=CLOSE_TOO_MANY_TABS)
            return
        self.digest, self.snapshot = snapshot.digest, snapshot
        metrics.counters.sockets += 1
        self.history = await _engine().ahistory(snapshot.digest) if not self.json_mode else []
        await self.channel_layer.group_add(broadcasting.group_name(self.digest), self.channel_name)
        if self.counts_as_tab:
            self.tabs = await presence.join(self.digest)
        else:
            self.tabs = await presence.count(self.digest)
        self._watch_expiry()
        await self._send_snapshot()
        if self.counts_as_tab:
            await broadcasting.publish_presence(self.digest, self.tabs)

    async def _unfollow(self) -> None:
        if self.digest is None:
            return
        gone, self.digest, self.snapshot = self.digest, None, None
        metrics.counters.sockets -= 1
        await self.channel_layer.group_discard(broadcasting.group_name(gone), self.channel_name)
        if self.counts_as_tab:
            await broadcasting.publish_presence(gone, await presence.leave(gone))

    async def _resync(self) -> None:
        if self.digest is None:
            return
        snapshot = await _engine().aread(self.digest)
        if snapshot is None:
            await self._unfollow()
            await self._send_ended(followed=False)
            return
        self.snapshot = snapshot
        if not self.json_mode:
            self.history = await _engine().ahistory(snapshot.digest)
        self._watch_expiry()
        await self._send_snapshot()

    async def _move_to(self, new_digest: str | None) -> None:
        await self._unfollow()
        if new_digest is None:
            return
        snapshot = await self._read_listening(new_digest)
        if snapshot is None:
            # The successor moved on again before this socket caught up (a Redis
            # round trip is enough), and where it went was announced before the
            # socket listened. Following nothing in silence would leave the tab
            # deaf; a reconnect finds the session by the cookie.
            await self.close(code=CLOSE_MOVED)
            return
        await self._follow(snapshot)

    # --- channel layer events, one handler per type -------------------------------

    async def session_changed(self, event: dict[str, Any]) -> None:
        snapshot = self.snapshot
        if snapshot is None or event["version"] <= snapshot.version:
            return
        if event["version"] != snapshot.version + 1:
            # A push was dropped (a full channel, a restart): fetch the truth.
            await self._resync()
            return
        for change in event["changes"]:
            if change["op"] == "set":
                snapshot.data[change["key"]] = change["value"]
            else:
                snapshot.data.pop(change["key"], None)
        snapshot.version = event["version"]
        snapshot.expires_at = event["expires_at"]
        self._watch_expiry()
        self.history.insert(
            0,
            {k: event[k] for k in ("version", "ts", "source", "changes")},
        )
        del self.history[setting("HISTORY_LENGTH") :]
        if self.json_mode:
            await self.send(text_data=_changed_text(snapshot.digest, event))
        else:
            await self._send_html()
        metrics.pushed(event["ts"])

    async def session_rotated(self, event: dict[str, Any]) -> None:
        if self.json_mode:
            await self._send_json({"type": broadcasting.ROTATED})
        await self._move_to(event["next"])

    async def session_ended(self, event: dict[str, Any]) -> None:
        await self._send_ended(followed=bool(event.get("next")))
        await self._move_to(event.get("next"))

    async def session_stale(self, event: dict[str, Any]) -> None:
        # Pushes may have been lost while the channel layer was down: fetch the truth.
        await self._resync()

    async def session_presence(self, event: dict[str, Any]) -> None:
        self.tabs = event["tabs"]
        if not self.json_mode and self.snapshot is not None:
            await self._send_html(only="tabs")

    # --- sending --------------------------------------------------------------------

    async def _send_json(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message, separators=(",", ":")))

    async def _send_snapshot(self) -> None:
        assert self.snapshot is not None
        if self.json_mode:
            await self._send_json(
                {
                    "type": broadcasting.SNAPSHOT,
                    "version": self.snapshot.version,
                    "data": _visible(self.snapshot.data),
                }
            )
        else:
            await self._send_html()

    async def _send_ended(self, followed: bool) -> None:
        if self.json_mode:
            await self._send_json({"type": broadcasting.ENDED})
        else:
            await self._send_html(only="followed" if followed else "final")

    async def _send_html(self, only: str | None = None) -> None:
        render = import_string(setting("RENDERER"))
        # Rendering does no I/O, so it runs here rather than paying a thread hop.
        await self.send(text_data=render(self.snapshot, self.tabs, self.scope, only, self.history))


class StaffWatchConsumer(SessionConsumer):
    """A staff member follows one session read-only; the digest comes from the URL."""

    counts_as_tab = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_staff:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.json_mode = False
        self.scope["live_read_only"] = True
        await self.accept()
        snapshot = await self._read_listening(self.scope["url_route"]["kwargs"]["digest"])
        if snapshot is None:
            await self._send_ended(followed=False)
            await self.close(code=CLOSE_NO_SESSION)
            return
        await self._follow(snapshot)


class StaffListConsumer(AsyncWebsocketConsumer):
    """The staff list of live sessions, refreshed on any change (at most twice a second)."""

    REFRESH_EVERY = 0.5
    _pending: asyncio.TimerHandle | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_staff:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        await self.channel_layer.group_add(broadcasting.STAFF_GROUP, self.channel_name)
        await self._refresh()

    async def disconnect(self, code: int) -> None:
        if self._pending is not None:
            self._pending.cancel()
        await self.channel_layer.group_discard(broadcasting.STAFF_GROUP, self.channel_name)

    async def sessions_touched(self, event: dict[str, Any]) -> None:
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(
                self.REFRESH_EVERY, lambda: asyncio.ensure_future(self._refresh())
            )

    async def _refresh(self) -> None:
        self._pending = None
        rows = await db.run(store.summaries)
        tabs = {row.digest: await presence.count(row.digest) for row in rows}
        render = import_string(setting("STAFF_RENDERER"))
        await self.send(text_data=render(rows, tabs))
