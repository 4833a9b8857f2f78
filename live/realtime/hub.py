"""One subscription per session per process, fanned out to the tabs of that process.

Tabs hold no channel, no copy of the session and no group membership of their
own: a change to a session with a hundred tabs would otherwise be copied,
queued, woken, applied and encoded a hundred times. The hub listens on one
channel per process, keeps one mirror of each session that has tabs here
(snapshot, timeline, tab count, expiry timer), applies each event once and
hands the result to the tabs, which render or encode it once between them and send.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from live import metrics
from live.conf import setting
from live.realtime import events, presence
from live.sessions import watched
from live.types import Snapshot

logger = logging.getLogger(__name__)


class Tab(Protocol):
    """What the hub needs of a socket (live.realtime.consumers.SessionConsumer)."""

    counts_as_tab: bool
    label: str

    async def show_snapshot(self, mirror: Mirror) -> None: ...

    async def show_change(self, mirror: Mirror, change: events.Change) -> None: ...

    async def show_tabs(self, mirror: Mirror) -> None: ...

    async def session_gone(self, rotated: bool) -> None:
        """The session is no longer under this key (rotated, flushed, deleted, expired)."""
        ...

    async def show_paused(self, paused: bool) -> None:
        """Pushes stopped reaching this process (True), or flow again (False)."""
        ...


@dataclass(eq=False)
class Mirror:
    """This process's copy of one session, shared by all its tabs here."""

    snapshot: Snapshot
    history: list[dict[str, Any]]
    # The session's tabs in every process, and their labels (live.realtime.presence).
    present: presence.Presence = presence.NOBODY
    listeners: set[Tab] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    # The key of the cookie a tab connected with, kept in memory only: Django's
    # own engines are read by key (live.sessions.watched); live ones by digest.
    key: str | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        return self.snapshot.digest


class Hub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.mirrors: dict[str, Mirror] = {}
        self._opening: dict[str, asyncio.Future[None]] = {}
        self._listener: asyncio.Task[None] | None = None
        # Tabs of a fresh process open at once; only one of them may start the listener.
        self._starting = asyncio.Lock()

    # --- tabs come and go -----------------------------------------------------------

    async def attach(self, tab: Tab, digest: str, key: str | None = None) -> Mirror | None:
        """Follow a session for this tab; None if it does not exist (any more)."""
        while digest in self._opening:
            await self._opening[digest]
        mirror = self.mirrors.get(digest) or await self._open(digest, key)
        if mirror is not None:
            mirror.listeners.add(tab)
        return mirror

    async def detach(self, tab: Tab, mirror: Mirror) -> None:
        mirror.listeners.discard(tab)
        if not mirror.listeners and self.mirrors.get(mirror.digest) is mirror:
            await self._close(mirror)

    async def _open(self, digest: str, key: str | None) -> Mirror | None:
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._opening[digest] = opened
        try:
            await self._listen()
            assert self.channel is not None
            # Join, then read: an event published in between is either in the
            # snapshot (and skipped by its version) or arrives after it.
            await self.layer.group_add(events.group_name(digest), self.channel)
            try:
                mirror = await self._read(digest, key)
            finally:
                # Not followed after all (gone, or the store cannot be read):
                # its events must not keep coming to this process.
                if digest not in self.mirrors:
                    await self.layer.group_discard(events.group_name(digest), self.channel)
            return mirror
        finally:
            del self._opening[digest]
            opened.set_result(None)

    async def _read(self, digest: str, key: str | None) -> Mirror | None:
        snapshot = await watched.read(digest, key)
        if snapshot is None:
            return None
        history = await watched.history(digest)
        mirror = Mirror(snapshot, history, await presence.current(digest), key=key)
        self.mirrors[digest] = mirror
        self._watch_expiry(mirror)
        return mirror

    async def _close(self, mirror: Mirror) -> None:
        self.mirrors.pop(mirror.digest, None)
        if mirror.timer is not None:
            mirror.timer.cancel()
        if self.channel is not None:
            await self.layer.group_discard(events.group_name(mirror.digest), self.channel)

    # --- the one listener of this process -----------------------------------------------

    async def _listen(self) -> None:
        async with self._starting:
            if self._listener is not None and not self._listener.done():
                return
            self.channel = await self.layer.new_channel(prefix=events.HUB_CHANNEL)
            self._listener = asyncio.ensure_future(self._run())
            presence.watch_pushes(self._pushes_paused)
            presence.watch_counts(self._counted)
            # A listener started again (its task ended) joins the groups of the
            # sessions it already follows under its new channel.
            for digest in self.mirrors:
                await self.layer.group_add(events.group_name(digest), self.channel)

    async def _run(self) -> None:
        assert self.channel is not None
        while True:
            event = await self.layer.receive(self.channel)
            try:
                await self._handle(event)
            except Exception:
                # One bad event must not deafen every tab of the process.
                logger.exception("Could not relay a %s event", event.get("type"))

    async def _handle(self, event: dict[str, Any]) -> None:
        mirror = self.mirrors.get(event.get("digest", ""))
        if mirror is None:
            return
        kind = event["type"]
        if kind == events.CHANGED:
            await self._changed(mirror, events.expanded(event))
        elif kind == events.PRESENCE:
            await self._show_count(
                mirror, presence.Presence(event["tabs"], tuple(event.get("labels", ())))
            )
        elif kind in (events.ROTATED, events.ENDED):
            await self._end(mirror, rotated=kind == events.ROTATED)
        elif kind == events.STALE:
            await self.resync(mirror)

    async def _each(self, mirror: Mirror, show: Any) -> None:
        for tab in list(mirror.listeners):
            try:
                await show(tab)
            except Exception:
                logger.exception("Could not push to a tab")

    async def _changed(self, mirror: Mirror, event: dict[str, Any]) -> None:
        snapshot = mirror.snapshot
        if event["version"] <= snapshot.version:
            return
        if event["version"] != snapshot.version + 1:
            # A push was dropped (a full channel, an outage): fetch the truth.
            await self.resync(mirror)
            return
        events.apply_change(snapshot.data, event)
        snapshot.version = event["version"]
        snapshot.expires_at = event["expires_at"]
        mirror.history.insert(0, {k: event[k] for k in ("version", "ts", "source", "changes")})
        del mirror.history[setting("HISTORY_LENGTH") :]
        self._watch_expiry(mirror)
        change = events.Change(event)
        await self._each(mirror, lambda tab: tab.show_change(mirror, change))
        metrics.pushed(event["ts"], len(mirror.listeners))

    async def resync(self, mirror: Mirror, only: Tab | None = None) -> None:
        """Read the session again; show it to one tab, or to all of them."""
        snapshot = await watched.read(mirror.digest, mirror.key)
        if snapshot is None:
            await self._end(mirror, rotated=False)
            return
        changed = snapshot.version != mirror.snapshot.version
        mirror.snapshot = snapshot
        if changed:
            mirror.history = await watched.history(mirror.digest)
        self._watch_expiry(mirror)
        if only is not None and not changed:
            await only.show_snapshot(mirror)
        else:
            await self._each(mirror, lambda tab: tab.show_snapshot(mirror))

    async def _counted(self, digest: str, present: presence.Presence) -> None:
        # Read again by the heartbeat: a process that died announced nothing.
        mirror = self.mirrors.get(digest)
        if mirror is not None and mirror.present != present:
            await self._show_count(mirror, present)

    async def _show_count(self, mirror: Mirror, present: presence.Presence) -> None:
        mirror.present = present
        await self._each(mirror, lambda tab: tab.show_tabs(mirror))

    async def _pushes_paused(self, paused: bool) -> None:
        # Tabs must not look live while nothing reaches them; the resync that
        # follows the outage (live.realtime.probe) brings them up to date.
        for mirror in list(self.mirrors.values()):
            await self._each(mirror, lambda tab: tab.show_paused(paused))

    async def _end(self, mirror: Mirror, rotated: bool) -> None:
        """The session left this key: its tabs stop following it.

        The hub never moves a tab to another key, not even the successor of a
        rotation: a socket holds only what its own cookie holds. Each tab
        reconnects, and the browser's current cookie decides what it sees.
        """
        tabs = list(mirror.listeners)
        mirror.listeners.clear()
        await self._close(mirror)
        for tab in tabs:
            try:
                if tab.counts_as_tab:
                    await presence.leave(mirror.digest, tab.label)
                await tab.session_gone(rotated)
            except Exception:
                logger.exception("Could not end a tab")

    # --- expiry: nobody writes when a session dies of age, so the hub watches -----------

    def _watch_expiry(self, mirror: Mirror) -> None:
        if mirror.timer is not None:
            mirror.timer.cancel()
        delay = max(mirror.snapshot.expires_at - time.time(), 0) + 0.25
        mirror.timer = asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self.resync(mirror))
        )


# Keyed by layer rather than by loop (live.loops.PerLoop): the hub's channel and
# groups belong to its layer (tests make a new one each), and a layer serves one loop.
_hubs: weakref.WeakKeyDictionary[Any, Hub] = weakref.WeakKeyDictionary()


def hub_for(layer: Any) -> Hub:
    """The hub of this process for a channel layer."""
    if layer not in _hubs:
        _hubs[layer] = Hub(layer)
    return _hubs[layer]
