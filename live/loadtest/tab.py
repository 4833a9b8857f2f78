"""One WebSocket tab of a virtual user: it follows the session and dates every push.

A tab applies `session.changed` events to its own copy of the session, asks
for a resync when it sees a version gap (as the page does), and settles the
acknowledged versions it owes: each settles when the tab holds that version
or a later one, which gives the push latency of that write to that tab.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections import deque
from time import perf_counter
from typing import Any

import aiohttp

from live.loadtest.stats import PushStats
from live.realtime import events


class SetupError(Exception):
    """A user could not get a session, a token or a tab; the test cannot start."""


class Tab:
    """One WebSocket following the user's session, and the acked versions it still owes."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, push: PushStats) -> None:
        self.ws = ws
        self.push = push
        self.version = -1
        self.data: dict[str, Any] = {}
        self.snapshots = 0
        # (version, when its write was answered, when it was sent): a heap, oldest first.
        self.pending: list[tuple[int, float, float]] = []
        # (version, time) of recent receipts, to date a push that beat the HTTP answer.
        self.received: deque[tuple[int, float]] = deque(maxlen=64)
        self.settled: asyncio.Future[None] | None = None
        self.closing = False

    async def first_snapshot(self) -> None:
        message = await self.ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise SetupError(f"the tab got {message.type.name} instead of a snapshot")
        event = json.loads(message.data)
        if event.get("type") != events.SNAPSHOT:
            raise SetupError(f"the tab's first message was {event.get('type')!r}, not a snapshot")
        self._handle(event, perf_counter())

    async def listen(self) -> None:
        ws, push = self.ws, self.push
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = perf_counter()
            push.messages += 1
            try:
                gap = self._handle(json.loads(message.data), now)
            except (ValueError, KeyError, TypeError):
                push.unexpected["malformed"] += 1
                continue
            if gap:
                await ws.send_str(json.dumps({"type": events.RESYNC}))
        if not self.closing:
            push.unexpected["socket closed"] += 1

    def _handle(self, event: dict[str, Any], now: float) -> bool:
        """Apply one event; return True when a gap means the tab must ask for a resync."""
        kind, version = event.get("type"), event.get("version", -1)
        if kind == events.CHANGED:
            if version <= self.version:
                return False
            if version != self.version + 1:
                self.push.gaps += 1
                return True
            events.apply_change(self.data, event)
            self.version = version
        elif kind == events.SNAPSHOT:
            self.snapshots += 1
            if self.snapshots > 1:
                self.push.resyncs += 1
            self.data, self.version = event["data"], max(self.version, version)
        else:
            self.push.unexpected[str(kind)] += 1
            return False
        self.received.append((self.version, now))
        pending, push = self.pending, self.push
        while pending and pending[0][0] <= self.version:
            _, acked_at, sent_at = heapq.heappop(pending)
            push.latency.record(now - acked_at)
            push.from_send.record(now - sent_at)
        if not pending and self.settled is not None and not self.settled.done():
            self.settled.set_result(None)
        return False

    def expect(self, version: int, acked_at: float, sent_at: float) -> None:
        """A write was acknowledged at `version`: this tab owes us that version."""
        if self.version < version:
            heapq.heappush(self.pending, (version, acked_at, sent_at))
            return
        # The push beat the HTTP answer: the tab had it when the writer learnt of it.
        received_at = acked_at
        for seen, at in reversed(self.received):
            if seen < version:
                break
            received_at = at
        self.push.early += 1
        self.push.latency.record(0.0)
        self.push.from_send.record(received_at - sent_at)

    def until_settled(self) -> asyncio.Future[None] | None:
        if not self.pending:
            return None
        self.settled = asyncio.get_running_loop().create_future()
        return self.settled
