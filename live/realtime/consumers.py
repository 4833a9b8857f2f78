"""The WebSocket side: follow one session and push its changes to a tab.

The consumer authenticates from the session cookie on connect, attaches to
its process's hub (live.realtime.hub), which follows the session's group and keeps the
one copy of it, sends a snapshot and then shows what the hub hands it: HTML
fragments for htmx or, with the `session.json` subprotocol, JSON events.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from typing import Any
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils.module_loading import import_string

from live import metrics, sampler
from live.conf import setting, tab_label, visible
from live.limits import Bucket
from live.realtime import events, presence
from live.realtime.hub import Hub, Mirror, hub_for
from live.sessions.keys import digest
from live.web.listing import staff_filters, staff_list

RESYNC_BURST, RESYNC_RATE = 50, 5.0
# Close codes: htmx reconnects only after 1006, 1011, 1012 and 1013, so these stay closed.
CLOSE_NO_SESSION = 4404
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY_TABS = 4429
# The session left the key this socket's cookie named (rotated, flushed,
# deleted or expired): the client reconnects, and its cookie decides what it sees.
CLOSE_MOVED = 4307
# 1009 ("message too big") is the protocol layer's code: daphne's autobahn lets an
# application close only with 1000 or 3000-4999, and turns 1009 into a crash (1011).
CLOSE_TOO_BIG = 4009


class SessionConsumer(AsyncWebsocketConsumer):
    # Staff watchers follow a session without showing up as one of its tabs.
    counts_as_tab = True
    json_mode = False
    label = ""
    mirror: Mirror | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI application, as channels' own but for a consumer with no channel.

        Tabs hold no channel: the process's hub listens for them all. The socket
        is then the only source of messages, so it is read in place; channels'
        loop would keep a task and an asyncio.wait per idle tab for a second
        source, which docs/performance.md weighs against the idle-memory goal.
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            while True:
                await self.dispatch(await receive())

    @property
    def hub(self) -> Hub:
        return hub_for(get_channel_layer())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resyncs = Bucket(RESYNC_RATE, RESYNC_BURST)

    async def connect(self) -> None:
        # A socket may be the loop's first visitor: it starts the metrics sampler then.
        sampler.start()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.label = tab_label(query.get("tab", [""])[0])
        self.json_mode = events.JSON_SUBPROTOCOL in self.scope.get("subprotocols", [])
        await self.accept(events.JSON_SUBPROTOCOL if self.json_mode else None)
        cookie = self.scope.get("cookies", {}).get(settings.SESSION_COOKIE_NAME)
        await self._follow(digest(cookie) if cookie else None, cookie)

    async def _follow(self, session_digest: str | None, key: str | None = None) -> None:
        # Staff watchers are not tabs: no cap, and no count to fetch for one.
        full = (
            self.counts_as_tab
            and session_digest
            and await presence.count(session_digest) >= setting("MAX_TABS")
        )
        if full:
            await self.close(code=CLOSE_TOO_MANY_TABS)
            return
        mirror = await self.hub.attach(self, session_digest, key) if session_digest else None
        if mirror is None:
            if self.json_mode:
                await self._send_json({"type": events.ENDED})
            else:
                await self._send_html(None, only="final")
            await self.close(code=CLOSE_NO_SESSION)
            return
        metrics.counters.sockets += 1
        self.mirror = mirror
        if self.counts_as_tab:
            mirror.present = await presence.join(mirror.digest, self.label)
        await self.show_snapshot(mirror)
        if self.counts_as_tab:
            await events.publish_presence(mirror.digest, *mirror.present)

    async def disconnect(self, code: int) -> None:
        mirror, self.mirror = self.mirror, None
        if mirror is None:
            return
        metrics.counters.sockets -= 1
        await self.hub.detach(self, mirror)
        if self.counts_as_tab:
            left = await presence.leave(mirror.digest, self.label)
            await events.publish_presence(mirror.digest, *left)

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
        wants_resync = isinstance(message, dict) and message.get("type") == events.RESYNC
        # A client asking in a loop cannot turn the socket into a database load.
        if wants_resync and self.mirror is not None and self.resyncs.take():
            await self.hub.resync(self.mirror, only=self)

    # --- what the hub shows this tab ------------------------------------------------

    async def show_snapshot(self, mirror: Mirror) -> None:
        if self.json_mode:
            await self._send_json(
                {
                    "type": events.SNAPSHOT,
                    "version": mirror.snapshot.version,
                    "data": visible(mirror.snapshot.data),
                }
            )
        else:
            await self._send_html(mirror)

    async def show_change(self, mirror: Mirror, change: events.Change) -> None:
        if self.json_mode:
            await self._send_text(change.text)
        else:
            await self._send_html(mirror)

    async def show_tabs(self, mirror: Mirror) -> None:
        if not self.json_mode:
            await self._send_html(mirror, only="tabs")

    async def session_gone(self, rotated: bool) -> None:
        # The hub has already let go of this tab (and its presence).
        if self.mirror is not None:
            self.mirror = None
            metrics.counters.sockets -= 1
        if self.json_mode:
            await self._send_json({"type": events.ROTATED if rotated else events.ENDED})
        await self.close(code=CLOSE_MOVED)

    async def show_paused(self, paused: bool) -> None:
        if self.json_mode:
            await self._send_json({"type": events.PAUSED if paused else events.RESUMED})
        else:
            await self._send_html(None, only="paused" if paused else "open")

    async def _send_json(self, message: dict[str, Any]) -> None:
        await self._send_text(json.dumps(message, separators=(",", ":")))

    async def _send_text(self, text: str) -> None:
        # AsyncWebsocketConsumer.send(text_data=...) in one step instead of two
        # layers of calls: a change to a session makes one send per open tab.
        await self.base_send({"type": "websocket.send", "text": text})

    async def _send_html(self, mirror: Mirror | None, only: str | None = None) -> None:
        render = import_string(setting("RENDERER"))
        snapshot = mirror.snapshot if mirror else None
        history = mirror.history if mirror else None
        tabs, labels = mirror.present if mirror else presence.NOBODY
        # Rendering does no I/O, so it runs here rather than paying a thread hop;
        # the renderer keeps what it rendered, so a change is rendered once per process.
        # It may be async, to look up what the page shows beside the session (a username).
        html = render(snapshot, tabs, self.scope, only, history, labels=labels)
        if inspect.isawaitable(html):
            html = await html
        await self._send_text(html)


class StaffWatchConsumer(SessionConsumer):
    """A staff member follows one session read-only; the digest comes from the URL."""

    counts_as_tab = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_staff:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.scope["live_read_only"] = True
        await self.accept()
        await self._follow(self.scope["url_route"]["kwargs"]["digest"])


class _TouchedListConsumer(AsyncWebsocketConsumer):
    """A list of sessions, refreshed on any change (at most twice a second).

    It hears the data-free "sessions changed" touches (live.realtime.events)
    and reads its list again; subclasses say who may watch and what to send.
    """

    _pending: asyncio.TimerHandle | None = None

    def allowed(self, user: Any) -> bool:
        raise NotImplementedError

    async def render(self) -> str:
        raise NotImplementedError

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not self.allowed(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        await self.channel_layer.group_add(events.STAFF_GROUP, self.channel_name)
        await self._refresh()

    async def disconnect(self, code: int) -> None:
        if self._pending is not None:
            self._pending.cancel()
        await self.channel_layer.group_discard(events.STAFF_GROUP, self.channel_name)

    async def sessions_touched(self, event: dict[str, Any]) -> None:
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(
                events.STAFF_REFRESH, lambda: asyncio.ensure_future(self._refresh())
            )

    async def _refresh(self) -> None:
        self._pending = None
        await self.send(text_data=await self.render())


class StaffListConsumer(_TouchedListConsumer):
    """The staff list of live sessions."""

    def allowed(self, user: Any) -> bool:
        if not user.is_staff:
            return False
        # The page's filters, so that each refresh lists what the page does.
        self.filters = staff_filters(self.scope.get("query_string", b"").decode("latin-1"))
        return True

    async def render(self) -> str:
        rows, tabs = await staff_list(self.filters)
        render = import_string(setting("STAFF_RENDERER"))
        return str(render(rows, tabs))


class MySessionsConsumer(_TouchedListConsumer):
    """A user's "My sessions" list."""

    def allowed(self, user: Any) -> bool:
        if not user.is_authenticated:
            return False
        self.user_id = str(user.pk)
        self.key = self.scope.get("cookies", {}).get(settings.SESSION_COOKIE_NAME)
        return True

    async def render(self) -> str:
        # Imported here: the page's views import the socket routes, which import this module.
        from live.web.holders import render_my_sessions

        return await render_my_sessions(self.key, self.user_id)
