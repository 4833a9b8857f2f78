"""PostgreSQL out of reach, for real: a daphne serves through a proxy that cuts every line.

The machine's PostgreSQL keeps running for the other tests; only the server
under test loses it, through tests.proxy. Each step polls for its condition
with a timeout: nothing waits a fixed time for something to happen.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest

from live.conf import DEFAULTS
from live.sessions import outage
from tests.conftest import ROOT, Server, free_port, migrate, server_env
from tests.helpers import one_sentence, open_page
from tests.proxy import Proxy

pytestmark = pytest.mark.services

THREADS = int(DEFAULTS["DB_THREADS"])
# A process's lines to PostgreSQL: its threads', and its loop's own for reads.
LINES = THREADS + int(DEFAULTS["PG_LOOP_CONNECTIONS"])
# Requests at once: enough to keep every thread of the server's pool busy.
BURST = 3 * THREADS
# An answer later than this would be a hang to a person at the page.
PROMPT = 10.0


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[Proxy]:
    target = urlparse(postgres_url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def env(tmp_path: Path, fresh_postgres: str, proxy: Proxy) -> dict[str, str]:
    """The site's environment with DATABASE_URL through the proxy, migrated."""
    url = urlparse(fresh_postgres)
    through = url._replace(netloc=f"{url.username or 'postgres'}@127.0.0.1:{proxy.port}")
    environment = server_env(tmp_path, DATABASE_URL=through.geturl())
    migrate(environment)
    return environment


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str]) -> Iterator[Server]:
    """A daphne whose DATABASE_URL goes through the proxy."""
    started = Server(free_port(), env, tmp_path / "daphne.log")
    started.start()
    yield started
    started.stop()


class Visitor:
    """One browser: its cookies, its CSRF header, and the answers it gets."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=PROMPT),
            headers={"Origin": server.url, "Referer": server.url + "/"},
        )

    async def open(self) -> None:
        self.http.headers.update(await open_page(self.http, self.server))

    def forget_session(self) -> None:
        """Drop the session cookie and keep the CSRF one: the next write starts a session."""
        self.http.cookie_jar.clear(lambda cookie: cookie.key == "sessionid")

    async def sign_in(self, username: str) -> None:
        """Sign in as the demo user of that name; the login rotates the CSRF token."""
        form = {"username": username, "password": username}
        async with self.http.post(self.server.url + "/login/submit/", data=form) as response:
            assert response.status == 200, await response.text()
        csrf = next(c.value for c in self.http.cookie_jar if c.key == "csrftoken")
        self.http.headers["X-CSRFToken"] = csrf

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        async with self.http.request(method, self.server.url + path, data=data) as response:
            text = await response.text()
            if response.status == 503:
                assert response.headers["Retry-After"] == "1"
            if response.content_type == "application/json":
                return response.status, json.loads(text)
            return response.status, text

    async def put(self, key: str, value: Any) -> tuple[int, Any]:
        return await self.request("PUT", f"/api/session/keys/{key}", value)

    async def put_burst(self, prefix: str, value: Any = None) -> set[int]:
        """BURST writes at once, `<prefix><n>` set to `value` (or n): the statuses they got."""
        answers = await burst(lambda n: self.put(f"{prefix}{n}", n if value is None else value))
        return {status for status, _ in answers}

    async def get_burst(self) -> set[int]:
        """BURST reads of the session at once: the statuses they got."""
        answers = await burst(lambda n: self.request("GET", "/api/session"))
        return {status for status, _ in answers}

    async def data(self) -> dict[str, Any]:
        status, body = await self.request("GET", "/api/session")
        assert status == 200, body
        return body["data"]  # type: ignore[no-any-return]

    async def tab(self) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(
            self.server.ws_url, protocols=["session.json"], headers={"Origin": self.server.url}
        )

    async def close(self) -> None:
        await self.http.close()


async def burst(make: Callable[[int], Awaitable[tuple[int, Any]]]) -> list[tuple[int, Any]]:
    """BURST requests at once, so that every thread of the server's pool takes some."""
    return await asyncio.gather(*(make(n) for n in range(BURST)))


async def message(
    tab: aiohttp.ClientWebSocketResponse, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first message the tab gets that `wanted` accepts, within PROMPT."""
    async with asyncio.timeout(PROMPT):
        while True:
            received = await tab.receive()
            assert received.type == aiohttp.WSMsgType.TEXT, received
            data: dict[str, Any] = json.loads(received.data)
            if wanted(data):
                return data


def test_database_outage_sentences_are_one_sentence_each():
    for sentence in (outage.CANNOT_READ, outage.NOT_SAVED, outage.MAYBE_SAVED):
        assert one_sentence(sentence), sentence


def test_database_outage_answers_503_and_recovers_by_itself(server: Server, proxy: Proxy):
    asyncio.run(_outage_and_recovery(server, proxy))


async def _outage_and_recovery(server: Server, proxy: Proxy) -> None:
    visitor, other, newcomer = Visitor(server), Visitor(server), Visitor(server)
    try:
        await visitor.open()
        await other.open()
        await newcomer.open()
        newcomer.forget_session()
        assert (await other.put("theirs", 1))[0] == 200
        tab = await visitor.tab()
        assert (await message(tab, lambda m: True))["type"] == "session.snapshot"
        # Writes and reads before the outage, spread over the pool (a session's
        # writes take turns, its reads do not): each thread, and each of the
        # loop's connections, that takes some opens its line, and keeps it.
        assert await visitor.put_burst("before") == {200}
        assert await visitor.get_burst() == {200}
        assert (await visitor.data()).items() >= {f"before{n}": n for n in range(BURST)}.items()
        lines = proxy.open_lines
        assert 0 < lines <= LINES, lines

        proxy.cut()
        # A write that could not even read its session changed nothing; one
        # that would start a session could not connect to save it.
        assert await visitor.put("during", 1) == (503, {"error": outage.CANNOT_READ})
        assert await newcomer.put("during", 1) == (503, {"error": outage.NOT_SAVED})
        for path in ("/api/session", "/api/session/keys/before0", "/"):
            assert await visitor.request("GET", path) == (503, {"error": outage.CANNOT_READ})
        # A tab whose session no tab here follows yet cannot be shown it: it
        # is closed with 1011, after which the page reconnects by itself.
        late = await other.tab()
        closed = await late.receive(timeout=PROMPT)
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1011, closed

        proxy.restore()
        # The few requests above met a few threads of the pool; the others
        # still hold a line the cut left dead, and find out now: no request
        # may fail for it. Bursts go on until every thread that held a line
        # before the cut holds a new one.
        deadline = time.monotonic() + PROMPT
        turn = 0
        while turn < 3 or proxy.open_lines < lines:
            assert time.monotonic() < deadline, (proxy.open_lines, lines)
            turn += 1
            assert await visitor.put_burst("after", turn) == {200}
            assert await visitor.get_burst() == {200}
        data = await visitor.data()
        assert data.items() >= {f"before{n}": n for n in range(BURST)}.items()
        assert data.items() >= {f"after{n}": turn for n in range(BURST)}.items()
        assert not {key for key in data if key.startswith("during")}
        assert proxy.open_lines <= LINES

        # The tab open all along hears the writes again; a new one gets the session.
        await visitor.put("heard", True)
        heard = [{"op": "set", "key": "heard", "value": True}]
        await message(tab, lambda m: m.get("changes") == heard)
        again = await other.tab()
        snapshot = await message(again, lambda m: True)
        assert snapshot["type"] == "session.snapshot" and snapshot["data"] == {"theirs": 1}
    finally:
        for each in (visitor, other, newcomer):
            await each.close()


def test_database_outage_a_lost_commit_may_or_may_not_be_saved(server: Server, proxy: Proxy):
    asyncio.run(_lost_commit(server, proxy))


async def _lost_commit(server: Server, proxy: Proxy) -> None:
    visitor = Visitor(server)
    try:
        await visitor.open()
        assert (await visitor.put("a", 1))[0] == 200
        # Every thread of the pool opens its line: on a line not opened yet a
        # change takes a transaction, which the cut below would not meet.
        assert await visitor.put_burst("warm") == {200}
        # A change to a session is one statement that commits as it runs: the
        # line breaks as it leaves, and only its answer is known to be lost.
        proxy.cut_at(b"WITH u AS (UPDATE")
        assert await visitor.put("b", 2) == (503, {"error": outage.MAYBE_SAVED})
        proxy.restore()
        assert (await visitor.data()).items() >= {"a": 1}.items()
        assert (await visitor.put("c", 3))[0] == 200
        # A new session is written in a transaction: the line breaks as its COMMIT leaves.
        visitor.forget_session()
        proxy.cut_at(b"COMMIT")
        assert await visitor.put("d", 4) == (503, {"error": outage.MAYBE_SAVED})
        proxy.restore()
        assert (await visitor.put("e", 5))[0] == 200
    finally:
        await visitor.close()


# Sync code (a management command, a sync view) on the site's settings: one
# command a line in, one JSON answer a line out, all on the main thread's
# Django connection, so the test cuts the line between two steps.
SYNC_SESSION = """
import json, sys
import django
django.setup()
from live.sessions.db import SessionStore
from live.types import Unavailable

session = SessionStore()
for line in sys.stdin:
    try:
        if line.startswith("set "):
            name, value = line.split()[1:]
            session[name] = int(value)
            session.save()
            answer = {"data": dict(session.items())}
        else:
            # A fresh object: what is stored now.
            answer = {"data": dict(SessionStore(session.session_key).load())}
    except Unavailable as exc:
        answer = {"error": str(exc)}
    print(json.dumps(answer), flush=True)
"""


def test_database_outage_sync_code_raises_unavailable_and_recovers(
    env: dict[str, str], proxy: Proxy
):
    command = [sys.executable, "-c", SYNC_SESSION]
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as sync:
        assert sync.stdin is not None and sync.stdout is not None

        def step(command: str) -> dict[str, Any]:
            sync.stdin.write(command + "\n")
            sync.stdin.flush()
            return json.loads(sync.stdout.readline())  # type: ignore[no-any-return]

        try:
            assert step("set a 1") == {"data": {"a": 1}}
            proxy.cut()
            assert step("set b 2") == {"error": outage.NOT_SAVED}
            assert step("load") == {"error": outage.CANNOT_READ}
            proxy.restore()
            assert step("load") == {"data": {"a": 1}}
            assert step("set b 2") == {"data": {"a": 1, "b": 2}}
            # Cut and back before anyone noticed: the connection the cut left
            # dead is replaced at the next step, which succeeds.
            proxy.cut()
            proxy.restore()
            assert step("load") == {"data": {"a": 1, "b": 2}}
        finally:
            sync.stdin.close()


def test_database_outage_a_signed_in_tab_names_its_user_again(
    env: dict[str, str], server: Server, proxy: Proxy
):
    subprocess.run([sys.executable, "manage.py", "demo_user"], cwd=ROOT, env=env, check=True)
    asyncio.run(_signed_in(server, proxy))


async def _signed_in(server: Server, proxy: Proxy) -> None:
    visitor = Visitor(server)
    try:
        await visitor.open()
        await visitor.sign_in("demo")
        # An HTML tab: each push names the session's user, looked up once per version.
        async with visitor.http.ws_connect(server.ws_url, headers={"Origin": server.url}) as tab:
            await pushed(tab, "data-username>demo<")
            assert (await visitor.put("before", 1))[0] == 200
            await pushed(tab, 'data-session-key="before"')
            proxy.cut()
            assert (await visitor.put("during", 1))[0] == 503
            proxy.restore()
            assert (await visitor.put("after", 1))[0] == 200
            fragment = await pushed(tab, 'data-session-key="after"')
            assert "data-username>demo<" in fragment
    finally:
        await visitor.close()


async def pushed(tab: aiohttp.ClientWebSocketResponse, marker: str) -> str:
    """The first HTML push that holds the marker, within PROMPT."""
    async with asyncio.timeout(PROMPT):
        while True:
            received = await tab.receive()
            assert received.type == aiohttp.WSMsgType.TEXT, received
            if marker in received.data:
                return str(received.data)
