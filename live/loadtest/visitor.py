"""A virtual user that runs a scenario: any URL of the site, as named steps.

It is a `User` (its own cookie jar, CSRF token and tabs) whose requests come
from a `Scenario` instead of the built-in mix. It runs one task at a time,
as a person does, so its answers come in the order the server applied them,
which is what the declared-write check (`DeclaredModel`) relies on.
"""

from __future__ import annotations

import asyncio
import json
import random
import traceback
from bisect import bisect
from itertools import accumulate
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from live.loadtest.client import User
from live.loadtest.config import Config
from live.loadtest.http import HttpError
from live.loadtest.model import Consistency, DeclaredModel
from live.loadtest.scenario import Response, Scenario, current_step
from live.loadtest.schedule import Schedule
from live.loadtest.stats import Stats
from live.loadtest.tab import Tab


def _reason(exc: BaseException) -> str:
    """One line: the exception and the scenario line that raised it."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" ({Path(last.filename).name}:{last.lineno})"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}{where}".replace(": (", " (")


def _refusal(method: str, path: str, status: int, body: bytes) -> tuple[str, str]:
    """The kind of a 4xx or 5xx answer, and its reason in one line."""
    if status == 403 and b"CSRF" in body:
        return "csrf", f"{method} {path} was refused for its CSRF token (403)"
    phrase = {404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests"}.get(status)
    return str(status), f"{method} {path} answered {status}" + (f" {phrase}" if phrase else "")


class ScenarioClient:
    """What a scenario calls: HTTP to the site under test, each request a named step."""

    def __init__(self, user: ScenarioUser) -> None:
        self.user = user

    async def get(self, path: str, **options: Any) -> Response:
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Any) -> Response:
        return await self.request("POST", path, **options)

    async def put(self, path: str, **options: Any) -> Response:
        return await self.request("PUT", path, **options)

    async def delete(self, path: str, **options: Any) -> Response:
        return await self.request("DELETE", path, **options)

    async def request(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        data: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        writes: dict[str, Any] | None = None,
        clears: bool = False,
    ) -> Response:
        """Send one request as the step `name` (default: method and path).

        `data` is sent as a form, `json` as a JSON body. `writes` declares the session
        keys and values the step stores, `clears` that it empties the session (a logout):
        the user's tabs must receive them and the final session must hold them.
        """
        return await self.user.send(
            method.upper(),
            path,
            name=name,
            data=data,
            body=json,
            headers=headers,
            writes=writes,
            clears=clears,
        )


class ScenarioUser(User):
    def __init__(
        self,
        index: int,
        config: Config,
        connector: aiohttp.BaseConnector,
        stats: Stats,
        consistency: Consistency,
        schedule: Schedule,
        scenario: type[Scenario],
    ) -> None:
        super().__init__(index, config, connector, stats, consistency, schedule)
        self.declared = DeclaredModel(index, consistency)
        # The scenario's own generator: its choices and think times are the same every run.
        rng = random.Random(config.seed * 1_000_003 + index + 2)
        self.scenario = scenario(ScenarioClient(self), index, rng)
        self.names = [name for name, _ in scenario.tasks]
        self.weights = list(accumulate(weight for _, weight in scenario.tasks))
        # Every request carries these, as a browser's would; a body adds its own type.
        del self.headers["Content-Type"]

    async def start(self) -> None:
        await super().start()
        for tab in self.tabs:
            tab.reopen = True

    async def run(self) -> None:
        scenario, schedule = self.scenario, self.schedule
        await self._guarded("on_start", scenario.on_start)
        while (due := schedule.claim(self.index, self.slot)) is not None:
            self.slot += 1
            delay = due - perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.one_task()
            think = min(scenario.think_time(), schedule.end - perf_counter())
            if think > 0:
                await asyncio.sleep(think)
        await self._guarded("on_stop", scenario.on_stop)

    async def one_task(self) -> None:
        """Run one task, picked by weight."""
        name = self.names[bisect(self.weights, self.rng.random() * self.weights[-1])]
        await self._guarded(name, getattr(self.scenario, name))

    async def _guarded(self, task: str, call: Any) -> None:
        """Run a task; what it raises is an error of its step, and the user goes on."""
        try:
            await call()
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:
            name = getattr(exc, "loadtest_step", None) or task
            reason = _reason(exc)
            self.stats.step(name).error(type(exc).__name__, reason)
            self.answered(name, "TASK", 0.0, 0, type(exc).__name__, reason)

    def answered(
        self, step: str, method: str, seconds: float, size: int, kind: str, reason: str
    ) -> None:
        """A request of `step` was answered (`kind` empty) or failed; or the step raised
        (`method` TASK). The report reads the statistics; a runner with its own, Locust,
        hears of each one here."""

    async def send(
        self,
        method: str,
        path: str,
        *,
        name: str | None,
        data: dict[str, Any] | None,
        body: Any,
        headers: dict[str, str] | None,
        writes: dict[str, Any] | None,
        clears: bool,
    ) -> Response:
        bare_path = urlsplit(path).path if "?" in path else path
        step_name = name or current_step() or f"{method} {bare_path}"
        step = self.stats.step(step_name)
        declared = writes is not None or clears
        # Tabs that already hold the declared values get no push for them.
        owed = [tab for tab in self.tabs if writes is None or not tab.holds(writes)]
        seen = [tab.seen for tab in owed]
        request_headers = self.headers
        if headers or body is not None:
            request_headers = {**self.headers, **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            request_headers.setdefault("Content-Type", "application/json")
        elif data is not None:
            payload = urlencode(data, doseq=True).encode()
            request_headers = {
                **request_headers,
                "Content-Type": "application/x-www-form-urlencoded",
            }
        sent = perf_counter()
        response, kind, reason = None, "", ""
        try:
            # A redirect is an answer, not followed: a login's 302 is its success.
            answer = await self.request(method, self.prefix + path, request_headers, payload)
            response = Response(answer.status, answer.headers, answer.body)
        except HttpError as exc:
            kind = exc.kind
            reason = f"{method} {bare_path} failed: {kind}"
        except asyncio.CancelledError:
            # The run stopped under this request, which may have landed all the same.
            if declared:
                self.declared.failed(writes or {}, clears)
            raise
        at = perf_counter()
        step.latency.record(at - sent)
        # The previous step's event, if it caused one, came before this answer.
        for tab in self.tabs:
            tab.watches.clear()
        if response is not None and response.status >= 400:
            kind, reason = _refusal(method, bare_path, response.status, response.body)
        self.answered(
            step_name, method, at - sent, len(response.body) if response else 0, kind, reason
        )
        if kind:
            step.error(kind, reason)
            if declared and not (kind.startswith("4") or kind in ("csrf", "connect")):
                # No usable answer: the write may have landed.
                self.declared.failed(writes or {}, clears)
            return response or Response(0)
        if declared:
            self.declared.acked(writes or {}, clears, step_name)
        for tab, before in zip(owed, seen, strict=True):
            tab.expect_step(step, writes, before, at, sent)
        return response or Response(0)

    async def verify(self) -> None:
        for tab in self.tabs:
            tab.watches.clear()
        try:
            version, data = await self._final_state()
        except (TimeoutError, OSError, ValueError, KeyError):
            self.declared.unread()
            return
        self.declared.final(data)
        # Tabs are compared as the built-in mix's are, once they caught up.
        await self._compare_tabs(version, data)


def missed(tabs: list[Tab]) -> int:
    """Count the declared writes that tabs never received, into their steps."""
    total = 0
    for tab in tabs:
        for _, _, _, step in tab.states:
            step.missed += 1
            total += 1
    return total
