"""One virtual user: its own session and CSRF token, its tabs, and its request loops.

A user is what one person with a browser would be: a cookie jar of its own
(so its own Django session), the CSRF token read from the `csrftoken` cookie
and sent back as X-CSRFToken with same-origin Origin and Referer headers, and
`tabs` WebSockets on the `session.json` subprotocol. It runs `concurrency`
request loops on that one session, like tabs that each edit.

A user keeps going through a server restart: a request refused at connect
is counted as an error of kind "connect" (and, in a closed loop, the next one
waits as a reconnecting tab does), its tabs reconnect by themselves, and the
final read is tried again until --timeout before the session's keys are
declared unverifiable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from bisect import bisect
from itertools import accumulate
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from live.loadtest.config import CSRF_COOKIE, KEY_PATH, SESSION_PATH, SOCKET_PATH, Config
from live.loadtest.http import Answer, Http, HttpError
from live.loadtest.model import ABSENT, Consistency, SessionModel
from live.loadtest.schedule import Schedule
from live.loadtest.stats import Stats
from live.loadtest.tab import SetupError, Tab, retry_delay


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, HttpError):
        return exc.kind
    if isinstance(exc, ValueError | KeyError | TypeError):
        return "bad answer"
    return type(exc).__name__


class User:
    def __init__(
        self,
        index: int,
        config: Config,
        connector: aiohttp.BaseConnector,
        stats: Stats,
        consistency: Consistency,
        schedule: Schedule,
    ) -> None:
        self.index = index
        self.config = config
        self.stats = stats
        self.consistency = consistency
        self.schedule = schedule
        self.model = SessionModel(index, consistency)
        base = config.base_url
        self.origin = str(URL(base).origin())
        # The user's cookies, kept by hand: aiohttp's CookieJar filtered and re-encoded
        # them for every request, a sixth of the generator's CPU. One origin needs no
        # domain or path matching; Secure cookies are sent over plain HTTP too, as
        # browsers do for localhost, so a server with DEBUG off can be tested locally.
        self.cookies: dict[str, str] = {}
        self._cookie_set = asyncio.Event()
        # The user's requests in flight, and an event set whenever none is.
        self.in_flight = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self.headers = {
            "Origin": self.origin,
            "Referer": base + "/",
            "Content-Type": "application/json",
        }
        # Requests; it never sends one again by itself, so a write the server may
        # have applied before a connection dropped is reported, not hidden.
        self.http = Http(base, config.timeout)
        # The tabs' WebSockets.
        self.sockets = aiohttp.ClientSession(
            connector=connector,
            connector_owner=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=config.timeout),
        )
        # The site's path, when it is served under one.
        self.prefix = urlsplit(base).path
        self.rng = random.Random(config.seed * 1_000_003 + index)
        # Retry jitter from its own generator: outages must not change the operations drawn.
        self.jitter = random.Random(config.seed * 1_000_003 + index + 1)
        # Requests in a row refused at connect (the server is down).
        self.refused = 0
        # False against Django's own engines: their versions only order pushes.
        self.versioned = True
        self.tabs: list[Tab] = []
        self.listeners: list[asyncio.Task[None]] = []
        self.slot = 0
        self.writes = 0
        self.keys = [f"k{i}" for i in range(config.keys)]
        self.key_paths = [self.prefix + KEY_PATH + key for key in self.keys]
        self.session_path = self.prefix + SESSION_PATH
        self.operations = [name for name, _ in config.mix]
        self.weights = list(accumulate(weight for _, weight in config.mix))

    # --- setting up ---------------------------------------------------------------

    async def start(self) -> None:
        base = self.config.base_url
        response = await self._setup_request(self.prefix + "/")
        if CSRF_COOKIE not in self.cookies:
            raise SetupError(f"GET {base}/ set no {CSRF_COOKIE} cookie (status {response.status})")
        version, data = await self._session_state()
        self.model.seed(version, data)
        if self.config.prefill:
            for index in range(self.config.keys):
                self.model.write_started()
                if not await self._set(index, perf_counter()):
                    raise SetupError(f"--prefill: PUT {KEY_PATH}{self.keys[index]} failed")
        ws_url = URL(base + SOCKET_PATH)
        ws_url = ws_url.with_scheme("wss" if ws_url.scheme == "https" else "ws")
        for _ in range(self.config.tabs):
            rng = random.Random(self.jitter.random())
            push, timeout = self.stats.push, self.config.timeout
            tab = Tab(self.sockets, ws_url, self.origin, self, push, rng, timeout)
            self.tabs.append(tab)
            async with asyncio.timeout(self.config.timeout):
                await tab.open()
            self.listeners.append(asyncio.create_task(tab.follow()))

    def cookie_header(self) -> str:
        return self.headers.get("Cookie", "")

    async def cookie_change(self, since: str) -> None:
        while self.cookie_header() == since:
            await self._cookie_set.wait()

    async def settled(self) -> None:
        await self._settled.wait()

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer:
        """Send one request of this user and take the cookies its answer sets."""
        self.in_flight += 1
        self._settled.clear()
        try:
            answer = await self.http.request(method, path, headers, body)
            if "Set-Cookie" in answer.headers:
                self._absorb(answer.headers)
            return answer
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._settled.set()

    async def _setup_request(self, path: str) -> Any:
        try:
            return await self.request("GET", path, self.headers)
        except HttpError as exc:
            raise SetupError(f"GET {path} failed: {exc.kind}") from exc

    async def _session_state(self) -> tuple[int, dict[str, Any]]:
        response = await self._setup_request(self.session_path)
        if response.status != 200:
            raise SetupError(f"GET {SESSION_PATH} answered {response.status}")
        state = json.loads(response.body)
        self.versioned = state.get("meta", {}).get("versioned", True)
        return state["version"], state["data"]

    # --- running ------------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.gather(*(self._loop() for _ in range(self.config.concurrency)))

    async def _loop(self) -> None:
        claim, stats, open_loop = self.schedule.claim, self.stats, self.config.open_loop
        while (due := claim(self.index, self.slot)) is not None:
            self.slot += 1
            delay = due - perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif open_loop and -delay > stats.max_lag:
                stats.max_lag = -delay
            await self._one(due)
            if self.refused and not open_loop:
                # The server is down: knock again as a reconnecting tab would, not in a spin.
                await asyncio.sleep(retry_delay(self.refused - 1, self.jitter))

    async def _one(self, due: float) -> None:
        name = self.operations[bisect(self.weights, self.rng.random() * self.weights[-1])]
        index = self.rng.randrange(len(self.keys))
        if name == "get":
            await self._get(index, due)
        else:
            self.model.write_started()
            if name == "set":
                await self._set(index, due)
            elif name == "delete":
                await self._delete(index, due)
            else:
                await self._clear(due)

    async def _call(
        self, name: str, method: str, path: str, due: float, body: bytes | None
    ) -> tuple[Any, float]:
        """Send one request; return the decoded 200 answer (or the status, or the error
        kind) and when it was sent."""
        stats = self.stats.operations[name]
        sent = perf_counter()
        try:
            # A redirect from the API means a misconfiguration: it is reported, not followed.
            response = await self.request(method, path, self.headers, body)
            status = response.status
            result: Any = json.loads(response.body) if status == 200 else status
        except (HttpError, ValueError) as exc:
            result = _error_kind(exc)
        stats.latency.record(perf_counter() - due)
        self.refused = self.refused + 1 if result == "connect" else 0
        if result.__class__ is int:
            if result == 404 and name in ("get", "delete"):
                stats.misses += 1
            else:
                stats.errors[str(result)] += 1
        elif result.__class__ is str:
            stats.errors[result] += 1
        return result, sent

    def _absorb(self, headers: CIMultiDictProxy[str]) -> None:
        """Take the cookies an answer sets (or deletes with Max-Age=0), as a browser would."""
        changed = False
        for line in headers.getall("Set-Cookie", ()):
            name, _, rest = line.partition("=")
            value, _, attributes = rest.partition(";")
            name = name.strip()
            if "max-age=0" in attributes.lower().replace(" ", ""):
                changed |= self.cookies.pop(name, None) is not None
            elif self.cookies.get(name) != value:
                self.cookies[name], changed = value, True
        if changed:
            self.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            self.headers["X-CSRFToken"] = self.cookies.get(CSRF_COOKIE, "")
            # Wake the tabs waiting for a new cookie; later waits take a fresh event.
            self._cookie_set.set()
            self._cookie_set = asyncio.Event()

    def _acked(self, version: int, sent: float, at: float) -> None:
        for tab in self.tabs:
            tab.expect(version, at, sent)

    def _failed(self, result: Any, key: str | None, value: Any, sent: float) -> None:
        # A 4xx changed nothing, nor did a request that found no server to connect to;
        # anything else (5xx, timeout, dropped connection, garbled answer) might have.
        if (result.__class__ is int and 400 <= result < 500) or result == "connect":
            self.model.write_refused()
        else:
            self.model.write_unknown(key, value, sent)

    async def _set(self, index: int, due: float) -> bool:
        self.writes += 1
        token = f"{self.index}.{self.writes}:"
        # The value's JSON, quotes included, is exactly --value-size bytes.
        value = token + "x" * (self.config.value_size - 2 - len(token))
        body = b'"' + value.encode() + b'"'
        result, sent = await self._call("set", "PUT", self.key_paths[index], due, body)
        at = perf_counter()
        try:
            version = result["version"]
            self.model.set_acked(self.keys[index], value, version, at)
        except (TypeError, KeyError):
            self._failed(result, self.keys[index], value, sent)
            return False
        self._acked(version, sent, at)
        return True

    async def _delete(self, index: int, due: float) -> None:
        result, sent = await self._call("delete", "DELETE", self.key_paths[index], due, None)
        at = perf_counter()
        try:
            version = result["version"]
            self.model.delete_acked(self.keys[index], version, at)
        except (TypeError, KeyError):
            self._failed(result, self.keys[index], ABSENT, sent)
            return
        self._acked(version, sent, at)

    async def _clear(self, due: float) -> None:
        result, sent = await self._call("clear", "DELETE", self.session_path, due, None)
        at = perf_counter()
        try:
            version = result["version"]
            self.model.clear_acked(version, result["data"], at)
        except (TypeError, KeyError):
            self._failed(result, None, ABSENT, sent)
            return
        self._acked(version, sent, at)

    async def _get(self, index: int, due: float) -> None:
        floor = self.model.read_started()
        result, _ = await self._call("get", "GET", self.key_paths[index], due, None)
        try:
            self.model.read_done(floor, self.keys[index], result["value"], result["version"])
        except (TypeError, KeyError):
            self.model.read_done(floor, None, None, None)

    # --- finishing ----------------------------------------------------------------

    async def verify(self) -> None:
        """Compare the server's final state with the model and with every tab."""
        try:
            version, data = await self._final_state()
        except (TimeoutError, OSError, SetupError, ValueError, KeyError):
            self.model.unread()
            return
        self.model.final(version, data)
        await self._compare_tabs(version, data)

    async def _compare_tabs(self, version: int, data: dict[str, Any]) -> None:
        # A tab whose socket dropped or moved near the end gets --drain to come back and catch up.
        target = None if self.versioned else data
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.drain):
                await asyncio.gather(*(tab.reach(version, target) for tab in self.tabs))
        for tab in self.tabs:
            if tab.ended:
                self.consistency.tabs_ended += 1
            elif tab.data != data or (self.versioned and tab.version != version):
                self.consistency.tabs_diverged += 1

    async def _final_state(self) -> tuple[int, dict[str, Any]]:
        """GET /api/session, tried again until --timeout while the server is away."""
        attempt = 0
        async with asyncio.timeout(self.config.timeout):
            while True:
                try:
                    return await self._session_state()
                except (TimeoutError, OSError, SetupError):
                    await asyncio.sleep(retry_delay(attempt, self.jitter))
                    attempt += 1

    async def close(self) -> None:
        for tab in self.tabs:
            tab.closing = True
        for listener in self.listeners:
            listener.cancel()
        await asyncio.gather(*self.listeners, return_exceptions=True)
        for tab in self.tabs:
            await tab.close()
        self.http.close()
        await self.sockets.close()
