"""One WebSocket tab of a virtual user: it follows the session and dates every push.

A tab applies `session.changed` events to its own copy of the session, asks
for a resync when it sees a version gap (as the page does), and settles the
acknowledged versions it owes: each settles when the tab holds that version
or a later one, which gives the push latency of that write to that tab.

When its socket drops (a server restart, a proxy's 1001, a refused connection
while the server is down) the tab reconnects as the page does, after a delay
doubling from 250 ms to 2 s with jitter, and takes the new socket's snapshot
as the truth. The server's own endings are not faults: 4307 (the session left
the key the cookie named) reconnects, as the page does, once the user's own
requests have their answers, with the cookie they leave (the answer that
rotated or ended the session carries the new one, and may arrive after the
close), and 4404 (no session for the cookie, after
`session.ended`) leaves the tab closed, as the page stays closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import random
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any, Protocol

import aiohttp
from yarl import URL

from live.loadtest.model import ABSENT
from live.loadtest.stats import PushStats, StepStats
from live.realtime import events
from live.realtime.consumers import (
    CLOSE_FORBIDDEN,
    CLOSE_MOVED,
    CLOSE_NO_SESSION,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY_TABS,
)

FIRST_DELAY, MAX_DELAY = 0.25, 2.0
# After these the page stays closed: the server refused this tab for good.
_REFUSED = frozenset({CLOSE_FORBIDDEN, CLOSE_TOO_MANY_TABS, CLOSE_TOO_BIG})
_RESYNC = json.dumps({"type": events.RESYNC})


class Cookies(Protocol):
    """What a tab needs of its user's cookies."""

    def cookie_header(self) -> str: ...

    async def cookie_change(self, since: str) -> None:
        """Return once the Cookie header differs from `since`."""
        ...

    async def settled(self) -> None:
        """Return once none of the user's requests is in flight: the cookie is the last set."""
        ...


class SetupError(Exception):
    """A user could not get a session, a token or a tab; the test cannot start."""


def retry_delay(attempt: int, rng: random.Random) -> float:
    """Seconds before retry number `attempt` (from 0): doubling to a cap, with jitter so
    that the tabs of a restarted server do not all come back in the same instant."""
    ceiling = min(FIRST_DELAY * 2.0 ** min(attempt, 16), MAX_DELAY)
    return ceiling / 2 + rng.random() * ceiling / 2


class Tab:
    """One WebSocket following the user's session, and the acked versions it still owes."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: URL,
        origin: str,
        cookies: Cookies,
        push: PushStats,
        rng: random.Random,
        patience: float,
    ) -> None:
        self.http, self.url, self.origin, self.cookies = http, url, origin, cookies
        self.push = push
        self.rng = rng
        # How long a 4307 waits for the user's answers: the bound of the one bringing a cookie.
        self.patience = patience
        self.cookie = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.version = -1
        self.data: dict[str, Any] = {}
        # (version, when its write was answered, when it was sent): a heap, oldest first.
        self.pending: list[tuple[int, float, float]] = []
        # (version, time) of recent receipts, to date a push that beat the HTTP answer.
        self.received: deque[tuple[int, float]] = deque(maxlen=64)
        self.settled: asyncio.Future[None] | None = None
        self.updated = asyncio.Event()
        self.closing = False
        # The session is gone (4404): the tab stays closed and is not compared.
        self.ended = False
        # No snapshot yet on the current socket; and whether that socket replaces a dropped one.
        self._fresh = True
        self._dropped = False
        # Scenario users log out and in again: after a 4404 the tab waits for a new cookie
        # and reconnects, as a person who signs in again opens the page again.
        self.reopen = False
        # Session events received (changes, snapshots, rotations, endings), and when the last came.
        self.seen = 0
        self.seen_at = 0.0
        # Declared writes of scenario steps this tab must come to hold:
        # (writes, when answered, when sent, step).
        self.states: list[tuple[dict[str, Any], float, float, StepStats]] = []
        # Steps that declared nothing, dated by the next event if one comes.
        self.watches: list[tuple[float, float, StepStats]] = []
        # Told of each push dated for a step (the step, seconds from its answer): a runner
        # that keeps its own statistics, Locust's, hears of each one as it happens.
        self.pushed: Callable[[StepStats, float], None] | None = None

    # --- the socket ---------------------------------------------------------------

    @property
    def following(self) -> bool:
        """A socket is open and has delivered its snapshot."""
        return self.ws is not None and not self._fresh

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        # The user's cookie now: after a rotation it names the session's new key.
        self.cookie = self.cookies.cookie_header()
        ws = await self.http.ws_connect(
            self.url,
            protocols=(events.JSON_SUBPROTOCOL,),
            origin=self.origin,
            headers={"Cookie": self.cookie},
            max_msg_size=0,
        )
        if ws.protocol != events.JSON_SUBPROTOCOL:
            await ws.close()
            raise SetupError(f"{self.url} did not accept the {events.JSON_SUBPROTOCOL} protocol")
        self._fresh = True
        return ws

    async def open(self) -> None:
        """The first socket and its snapshot; without them the test cannot start."""
        self.ws = ws = await self._connect()
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise SetupError(f"the tab got {message.type.name} instead of a snapshot")
        event = json.loads(message.data)
        if event.get("type") == events.ENDED:
            raise SetupError("the server has no session for the user's cookie")
        if event.get("type") != events.SNAPSHOT:
            raise SetupError(f"the tab's first message was {event.get('type')!r}, not a snapshot")
        self._handle(event, perf_counter())

    async def follow(self) -> None:
        """Read pushes until the run ends, opening a new socket whenever one drops."""
        attempt, push = 0, self.push
        while not self.closing:
            if self.ws is None:
                try:
                    self.ws = await self._connect()
                except (aiohttp.ClientError, OSError, TimeoutError, SetupError):
                    push.refused += 1
                    await asyncio.sleep(retry_delay(attempt, self.rng))
                    attempt += 1
                    continue
            ws = self.ws
            await self._read(ws)
            self.ws = None
            if self.closing:
                return
            if not self._fresh:
                attempt = 0  # the socket worked: the next failure starts from the short delay
            code = ws.close_code
            if code == CLOSE_MOVED:
                push.moved += 1
                if not self._fresh:
                    # The session left this cookie's key. As the page does, the tab comes
                    # back once the user's own requests are answered, with the cookie they
                    # leave: a login's new key, or this one if the move was not theirs.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.patience):
                            await self.cookies.settled()
                    continue
            elif code == CLOSE_NO_SESSION:
                push.ended += 1
                self.ended = True
                self.updated.set()
                if not self.reopen:
                    return
                await self.cookies.cookie_change(self.cookie)
                self.ended = False
                continue
            else:
                push.drops[str(code)] += 1
                if code in _REFUSED:
                    return
                self._dropped = True
            await asyncio.sleep(retry_delay(attempt, self.rng))
            attempt += 1

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        push = self.push
        with contextlib.suppress(aiohttp.ClientError, OSError):
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
                    await ws.send_str(_RESYNC)

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            await self.ws.close()

    # --- the session as this tab sees it ----------------------------------------------

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
            if not self._fresh:
                if version < self.version:
                    # As the page's version guard: one socket never takes the tab back.
                    self.push.unexpected["older snapshot"] += 1
                    return False
                self.push.resyncs += 1
            elif self._dropped:
                self.push.reconnects += 1
                self._dropped = False
            self._fresh = False
            # A new socket's first snapshot is the truth even if older than what the tab
            # holds: a server that lost writes in a restart shows it, and the check sees it.
            self.data, self.version = dict(event["data"]), version
        elif kind in (events.ROTATED, events.ENDED):
            # The close that follows says what to do: 4307 reconnect, 4404 stay closed.
            self._seen(now)
            return False
        else:
            self.push.unexpected[str(kind)] += 1
            return False
        self.received.append((self.version, now))
        self.updated.set()
        pending, push = self.pending, self.push
        while pending and pending[0][0] <= self.version:
            _, acked_at, sent_at = heapq.heappop(pending)
            push.latency.record(now - acked_at)
            push.from_send.record(now - sent_at)
        self._seen(now)
        settled = self.settled
        if not pending and not self.states and settled is not None and not settled.done():
            settled.set_result(None)
        return False

    # --- scenario steps -----------------------------------------------------------------

    def holds(self, writes: dict[str, Any]) -> bool:
        data = self.data
        return all(
            key not in data if value is ABSENT else key in data and data[key] == value
            for key, value in writes.items()
        )

    def _seen(self, now: float) -> None:
        self.seen += 1
        self.seen_at = now
        push = self.push
        for acked_at, sent_at, step in self.watches:
            self._record(step, now - acked_at, now - sent_at)
        self.watches.clear()
        if self.states:
            kept = []
            for state in self.states:
                writes, acked_at, sent_at, step = state
                if self.holds(writes):
                    self._record(step, now - acked_at, now - sent_at)
                    push.latency.record(now - acked_at)
                    push.from_send.record(now - sent_at)
                else:
                    kept.append(state)
            self.states = kept

    def _record(self, step: StepStats, latency: float, from_send: float) -> None:
        step.push.record(latency)
        step.push_from_send.record(from_send)
        if self.pushed is not None:
            self.pushed(step, latency)

    def expect_step(
        self,
        step: StepStats,
        writes: dict[str, Any] | None,
        seen_before: int,
        acked_at: float,
        sent_at: float,
    ) -> None:
        """A step was answered. With declared writes the tab owes their values; without,
        the next event it receives, if any comes before the user's next step, is the step's."""
        if writes is not None:
            if not self.holds(writes):
                self.states.append((writes, acked_at, sent_at, step))
                return
            self.push.early += 1
            self.push.latency.record(0.0)
            self.push.from_send.record(max(self.seen_at - sent_at, 0.0))
        elif self.seen == seen_before:
            self.watches.append((acked_at, sent_at, step))
            return
        step.early += 1
        self._record(step, 0.0, max(self.seen_at - sent_at, 0.0))

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
        if not self.pending and not self.states:
            return None
        self.settled = asyncio.get_running_loop().create_future()
        return self.settled

    async def reach(self, version: int, data: dict[str, Any] | None = None) -> None:
        """Await pushes (or a new socket's snapshot) until this tab holds `version` or ends.

        Given `data`, until it holds that data: Django's own engines version a
        snapshot by the time it was read, which is not the same in two reads.
        Only a socket that delivered its snapshot counts: between sockets the tab
        holds what its last one showed, perhaps a session its cookie no longer
        names, whose versions say nothing of the new one's (after a logout and a
        login, the new session's versions can be lower).
        """
        while not self.ended and not (
            self.following and (self.version >= version if data is None else self.data == data)
        ):
            self.updated.clear()
            await self.updated.wait()
