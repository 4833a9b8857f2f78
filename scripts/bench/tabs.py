"""Tabs without a browser: sessions, CSRF-checked writes and `session.json` sockets.

These speak the project's public contract (docs/design.md) as a browser would, so
they import nothing from the server's code.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp

JSON_PROTOCOL = "session.json"
CHANGED = "session.changed"
SNAPSHOT = "session.snapshot"


def client() -> aiohttp.ClientSession:
    # No connection limit (aiohttp's default of 100 would queue tabs behind
    # each other), and cookies sent by hand: one client plays many sessions.
    connector = aiohttp.TCPConnector(limit=0)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


@dataclass
class Site:
    """The project server as one client sees it."""

    url: str
    http: aiohttp.ClientSession
    csrf: str = ""

    async def start(self) -> None:
        """GET / for the CSRF cookie that unsafe API calls must echo."""
        async with self.http.get(f"{self.url}/") as resp:
            resp.raise_for_status()
            self.csrf = resp.cookies["csrftoken"].value

    async def new_session(self) -> str:
        async with self.http.get(f"{self.url}/api/session") as resp:
            resp.raise_for_status()
            return resp.cookies["sessionid"].value

    async def state(self, key: str) -> dict[str, Any]:
        headers = {"Cookie": f"sessionid={key}"}
        async with self.http.get(f"{self.url}/api/session", headers=headers) as resp:
            resp.raise_for_status()
            return dict(await resp.json())

    async def put(self, key: str, name: str, value: Any) -> int:
        """PUT /api/session/keys/<name>; return the session's new version."""
        headers = {
            "Cookie": f"sessionid={key}; csrftoken={self.csrf}",
            "X-CSRFToken": self.csrf,
            "Origin": self.url,
            "Referer": f"{self.url}/",
            "Content-Type": "application/json",
        }
        target = f"{self.url}/api/session/keys/{name}"
        async with self.http.put(target, data=json.dumps(value), headers=headers) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"PUT {name}: {resp.status} {body}")
            return int(body["version"])


@dataclass
class Tabs:
    """Open sockets, each following one session and stamping every change it receives."""

    site: Site
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    listeners: list[asyncio.Task[None]] = field(default_factory=list)
    per_session: Counter[str] = field(default_factory=Counter)
    versions: dict[str, int] = field(default_factory=dict)
    # (session, version) -> (when received, the event's ts) per tab, wall clock.
    receipts: defaultdict[tuple[str, int], list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    failed: int = 0

    async def open(self, keys: list[str], per_session: int, concurrency: int = 50) -> None:
        gate = asyncio.Semaphore(concurrency)
        ws_url = self.site.url.replace("http", "ws", 1) + "/ws/session/"

        async def one(key: str) -> None:
            async with gate:
                try:
                    ws = await self.site.http.ws_connect(
                        ws_url,
                        protocols=(JSON_PROTOCOL,),
                        origin=self.site.url,
                        headers={"Cookie": f"sessionid={key}"},
                    )
                    first = await ws.receive(timeout=30)
                except (aiohttp.ClientError, TimeoutError):
                    self.failed += 1
                    return
            if first.type != aiohttp.WSMsgType.TEXT or json.loads(first.data)["type"] != SNAPSHOT:
                self.failed += 1
                await ws.close()
                return
            self.versions[key] = json.loads(first.data)["version"]
            self.per_session[key] += 1
            self.sockets.append(ws)
            self.listeners.append(asyncio.create_task(self._listen(ws, key)))

        await asyncio.gather(*(one(key) for key in keys for _ in range(per_session)))

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse, key: str) -> None:
        while True:
            message = await ws.receive()
            now = time.time()
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            event = json.loads(message.data)
            if event["type"] == CHANGED:
                self.receipts[(key, event["version"])].append((now, event["ts"]))

    async def close(self) -> None:
        for task in self.listeners:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        self.sockets, self.listeners = [], []


async def open_plain(
    http: aiohttp.ClientSession, url: str, n: int, concurrency: int = 50
) -> list[aiohttp.ClientWebSocketResponse]:
    """n WebSockets that say nothing, for the idle baseline on the raw ASGI app."""
    gate = asyncio.Semaphore(concurrency)
    ws_url = url.replace("http", "ws", 1) + "/"

    async def one() -> aiohttp.ClientWebSocketResponse:
        async with gate:
            return await http.ws_connect(ws_url, origin=url)

    return list(await asyncio.gather(*(one() for _ in range(n))))


@dataclass
class Latency:
    """How late the pushes of a series of writes reached the tabs, three ways.

    From the write's HTTP response (the issue's definition; a push that comes
    first counts as 0 ms), from the engine's commit (the event's `ts`, stamped
    by the server right after the write) and from the start of the request.
    A push that never came counts as infinitely late.
    """

    writes: int
    samples: int
    missed: int
    early: int  # pushes that came before the HTTP response
    p50_ms: float
    p99_ms: float
    max_ms: float
    commit_p50_ms: float
    commit_p99_ms: float
    commit_max_ms: float
    commit_first_p50_ms: float  # median over writes of the first tab's push: the fan-out's start
    request_p50_ms: float
    request_p99_ms: float
    lost_writes: int  # acknowledged writes missing from the versions read back
    # How late this client's own event loop ran (a busy client inflates the figures).
    client_lag_p99_ms: float


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, in ms and never below 0, of sorted seconds."""
    if not values:
        return math.nan
    rank = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))
    return max(0.0, values[rank] * 1000)


async def push_latency(
    site: Site, tabs: Tabs, keys: list[str], writes: int, rate: float
) -> Latency:
    """Write at `rate` per second round-robin over `keys`, and time every tab's push."""
    asked: dict[tuple[str, int], tuple[float, float]] = {}  # (request start, response)
    per_key: Counter[str] = Counter()
    lags: list[float] = []
    watch = asyncio.create_task(_watch_lag(lags))
    start = time.time()
    for i in range(writes):
        key = keys[i % len(keys)]
        began = time.time()
        version = await site.put(key, "bench", i)
        asked[(key, version)] = (began, time.time())
        per_key[key] += 1
        await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.time()))
    expected = sum(tabs.per_session[key] for key, _ in asked)
    deadline = time.time() + 3
    while time.time() < deadline:
        if sum(len(tabs.receipts.get(k, ())) for k in asked) >= expected:
            break
        await asyncio.sleep(0.05)
    watch.cancel()
    response: list[float] = []
    commit: list[float] = []
    request: list[float] = []
    first: list[float] = []
    for (key, version), (began, answered) in asked.items():
        got = tabs.receipts.get((key, version), [])
        missing = [math.inf] * (tabs.per_session[key] - len(got))
        response += [t - answered for t, _ in got] + missing
        commit += [t - ts for t, ts in got] + missing
        request += [t - began for t, _ in got] + missing
        first.append(min((t - ts for t, ts in got), default=math.inf))
    for series in (response, commit, request, first, lags):
        series.sort()
    # Every acknowledged write must show in the version read back.
    lost = 0
    for key, n in per_key.items():
        lost += max(0, tabs.versions[key] + n - (await site.state(key))["version"])
    return Latency(
        writes=writes,
        samples=len(response),
        missed=response.count(math.inf),
        early=sum(1 for v in response if v < 0),
        p50_ms=percentile(response, 50),
        p99_ms=percentile(response, 99),
        max_ms=percentile(response, 100),
        commit_p50_ms=percentile(commit, 50),
        commit_p99_ms=percentile(commit, 99),
        commit_max_ms=percentile(commit, 100),
        commit_first_p50_ms=percentile(first, 50),
        request_p50_ms=percentile(request, 50),
        request_p99_ms=percentile(request, 99),
        lost_writes=lost,
        client_lag_p99_ms=percentile(lags, 99),
    )


async def _watch_lag(lags: list[float], every: float = 0.005) -> None:
    while True:
        due = time.perf_counter() + every
        await asyncio.sleep(every)
        lags.append(time.perf_counter() - due)
