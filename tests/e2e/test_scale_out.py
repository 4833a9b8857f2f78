"""Several daphne processes over Redis and PostgreSQL: pushes cross, writes survive outages."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.sync_api import Browser, expect
from redis import Redis
from yarl import URL

from live.sessions.keys import digest
from live.sessions.redis import session_keys
from tests.conftest import ROOT, RedisServer, Server, free_port, migrate, server_env
from tests.helpers import WAIT_MS, BrowserTab, open_page, shown

pytestmark = pytest.mark.services

Start = Callable[..., list[Server]]
# An answer that took longer than this would be a hang to a person at the page.
PROMPT = 5.0
# Tabs come back on their own within this long after Redis does.
RECOVERY = 20.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Start]:
    """Start N daphne processes sharing one environment (database, Redis, session store)."""
    started: list[Server] = []

    def start(count: int, **env: str) -> list[Server]:
        environment = server_env(tmp_path, **env)
        migrate(environment)
        for _ in range(count):
            server = Server(free_port(), environment, tmp_path / f"daphne-{len(started)}.log")
            server.start()
            started.append(server)
        return started[-count:]

    yield start
    for server in started:
        server.stop()


class Visitor:
    """One person's browser: a cookie jar shared by every process, as on one site."""

    def __init__(self) -> None:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            # The default jar ignores cookies from IP addresses such as 127.0.0.1.
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def open(self, server: Server) -> None:
        """Load the page: it creates the session and sets the CSRF cookie."""
        self.http.headers.update(await open_page(self.http, server))

    def _origin(self, server: Server) -> dict[str, str]:
        return {"Origin": server.url, "Referer": server.url + "/"}

    async def put(self, server: Server, key: str, value: Any) -> tuple[int, float]:
        started = time.monotonic()
        async with self.http.put(
            f"{server.url}/api/session/keys/{key}",
            data=json.dumps(value),
            headers=self._origin(server),
        ) as response:
            await response.read()
            return response.status, time.monotonic() - started

    async def session(self, server: Server) -> dict[str, Any]:
        async with self.http.get(server.url + "/api/session") as response:
            assert response.status == 200, await response.text()
            return await response.json()  # type: ignore[no-any-return]

    async def tab(
        self, server: Server, json_mode: bool = True, label: str = ""
    ) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(
            server.ws_url + (f"?tab={label}" if label else ""),
            protocols=["session.json"] if json_mode else (),
            headers={"Origin": server.url},
        )

    async def close(self) -> None:
        await self.http.close()


async def until(
    tab: aiohttp.ClientWebSocketResponse, wanted: Callable[[Any], bool], timeout: float = 5.0
) -> Any:
    """The first message that `wanted` accepts, skipping others, within the timeout."""
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await tab.receive(timeout=left)
        except TimeoutError:
            break
        if message.type != aiohttp.WSMsgType.TEXT:
            pytest.fail(f"the tab was closed ({message.type}, {message.data}) after {seen}")
        data = json.loads(message.data) if message.data.startswith("{") else message.data
        if wanted(data):
            return data
        seen.append(data)
    pytest.fail(f"no wanted message within {timeout}s; got {seen}")


def snapshot_with(keys: set[str]) -> Callable[[Any], bool]:
    return lambda m: (
        isinstance(m, dict) and m["type"] == "session.snapshot" and keys <= m["data"].keys()
    )


def test_scale_out_tab_on_one_process_sees_an_edit_through_the_other(
    fresh_postgres: str, redis_url: str, cluster: Start
):
    first, second = cluster(2, DATABASE_URL=fresh_postgres, REDIS_URL=redis_url)

    async def run() -> None:
        visitor = Visitor()
        try:
            await visitor.open(first)
            tab = await visitor.tab(second)
            snapshot = await until(tab, lambda m: m["type"] == "session.snapshot")
            assert (await visitor.put(first, "color", "green"))[0] == 200
            pushed = await until(tab, lambda m: m["type"] == "session.changed")
            assert pushed["changes"] == [{"op": "set", "key": "color", "value": "green"}]
            assert pushed["version"] == snapshot["version"] + 1
            assert (await visitor.session(second))["data"] == {"color": "green"}
            await tab.close()
        finally:
            await visitor.close()

    asyncio.run(run())


@pytest.mark.parametrize("store", ["db", "redis"])
def test_scale_out_keeps_every_concurrent_write_to_one_session(
    store: str, fresh_postgres: str, redis_url: str, cluster: Start
):
    servers = cluster(2, DATABASE_URL=fresh_postgres, REDIS_URL=redis_url, SESSION_STORE=store)
    writes = 400

    async def run() -> tuple[list[int], dict[str, Any]]:
        visitor = Visitor()
        try:
            await visitor.open(servers[0])
            # Half to each process, all at once, each a key of its own.
            answers = await asyncio.gather(
                *(visitor.put(servers[n % 2], f"key{n}", n) for n in range(writes))
            )
            return [status for status, _ in answers], await visitor.session(servers[1])
        finally:
            if store == "redis":
                # Leave no two-week session behind in the shared Redis.
                key = visitor.http.cookie_jar.filter_cookies(URL(servers[0].url))["sessionid"]
                Redis.from_url(redis_url).delete(*session_keys(digest(key.value)))
            await visitor.close()

    statuses, final = asyncio.run(run())
    assert statuses == [200] * writes
    lost = {f"key{n}" for n in range(writes)} - final["data"].keys()
    print(f"\n{store}: {writes} writes over 2 processes, lost {len(lost)}")
    assert not lost
    assert final["version"] >= writes


def test_scale_out_redis_outage_with_sessions_in_the_database(
    fresh_postgres: str, own_redis: Callable[..., RedisServer], cluster: Start
):
    redis = own_redis()
    first, second = cluster(2, DATABASE_URL=fresh_postgres, REDIS_URL=redis.url)

    async def run() -> None:
        visitor = Visitor()
        try:
            await visitor.open(first)
            tab = await visitor.tab(second)
            await until(tab, lambda m: m["type"] == "session.snapshot")
            redis.stop()
            # Edits keep working through either process; their pushes are skipped.
            for n, server in enumerate([first, second, first, second]):
                status, took = await visitor.put(server, f"during{n}", n)
                assert status == 200 and took < PROMPT
            redis.start()
            # Nobody edits: the tab resyncs by itself once pushes flow again.
            during = {f"during{n}" for n in range(4)}
            await until(tab, snapshot_with(during), timeout=RECOVERY)
            # And pushes reach it again.
            assert (await visitor.put(first, "after", 1))[0] == 200
            pushed = await until(tab, lambda m: m["type"] == "session.changed")
            assert pushed["changes"] == [{"op": "set", "key": "after", "value": 1}]
            await tab.close()
        finally:
            await visitor.close()

    asyncio.run(run())


def test_scale_out_redis_outage_with_sessions_in_redis(
    own_redis: Callable[..., RedisServer], cluster: Start
):
    # Durable like a production Redis holding sessions: every write is on disk
    # before Redis answers it, so a crash keeps what was acknowledged.
    redis = own_redis("--save", "", "--appendonly", "yes", "--appendfsync", "always")
    servers = cluster(2, REDIS_URL=redis.url, SESSION_STORE="redis")
    answers: list[tuple[str, int, float]] = []

    async def write_until(stop: asyncio.Event, visitor: Visitor) -> None:
        n = 0
        while not stop.is_set():
            key = f"key{n}"
            status, took = await visitor.put(servers[n % 2], key, n)
            answers.append((key, status, took))
            n += 1
            await asyncio.sleep(0.01)

    def count(status: int) -> int:
        return sum(1 for _, s, _ in answers if s == status)

    async def wait_for(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + RECOVERY
        while not condition():
            assert time.monotonic() < deadline, f"gave up; answers so far: {answers[-5:]}"
            await asyncio.sleep(0.05)

    async def run() -> dict[str, Any]:
        visitor = Visitor()
        stop = asyncio.Event()
        try:
            await visitor.open(servers[0])
            writer = asyncio.ensure_future(write_until(stop, visitor))
            await wait_for(lambda: count(200) >= 30)
            redis.kill()
            await wait_for(lambda: count(503) >= 10)
            redis.start()
            acked_before = count(200)
            await wait_for(lambda: count(200) >= acked_before + 30)
            stop.set()
            await writer
            return await visitor.session(servers[1])
        finally:
            await visitor.close()

    final = asyncio.run(run())
    statuses = {status for _, status, _ in answers}
    assert statuses == {200, 503}, statuses
    assert all(took < PROMPT for _, status, took in answers if status == 503)
    acked = {key: int(key[3:]) for key, status, _ in answers if status == 200}
    lost = {key for key, value in acked.items() if final["data"].get(key) != value}
    print(f"\nacknowledged {len(acked)}, refused with 503 {count(503)}, lost {len(lost)}")
    assert not lost


def test_scale_out_tab_count_and_labels_span_processes_and_dead_ones_stop_counting_on_open_tabs(
    fresh_postgres: str, redis_url: str, cluster: Start
):
    first, second = cluster(2, DATABASE_URL=fresh_postgres, REDIS_URL=redis_url)

    def tabs(html: str) -> int:
        found = re.search(r"data-live-tabs>(\d+)<", html)
        assert found, html[:200]
        return int(found.group(1))

    async def page_tabs(visitor: Visitor, server: Server) -> int:
        async with visitor.http.get(server.url + "/") as response:
            return tabs(await response.text())

    async def run() -> None:
        visitor = Visitor()
        try:
            await visitor.open(first)
            here = await visitor.tab(first, json_mode=False, label="here1")
            there = await visitor.tab(second, json_mode=False, label="there2")
            # Each process lists the labels of the other's tabs too.
            both = "<code>here1</code>, <code>there2</code>"
            await until(here, lambda m: "data-live-tabs>2<" in m and both in m)
            await until(there, lambda m: "data-live-tabs>2<" in m and both in m)
            assert await page_tabs(visitor, first) == 2
            second.kill()
            # The tab still open sees the dead process's tab leave its count,
            # although nobody announced it: its heartbeat reads the totals again.
            await until(here, lambda m: "data-live-tabs>1<" in m, timeout=RECOVERY)
            # The dead process's tabs stop counting once its heartbeat lapses.
            deadline = time.monotonic() + RECOVERY
            while await page_tabs(visitor, first) != 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.5)
            await here.close()
            await there.close()
        finally:
            await visitor.close()

    asyncio.run(run())


def test_scale_out_no_tab_goes_deaf_when_many_connect_at_once_to_fresh_processes(
    fresh_postgres: str, redis_url: str, cluster: Start
):
    # Many tabs of many sessions opening at once on processes that have none
    # yet all start at the hub: it must listen on one channel, and every tab
    # hear its session's change.
    servers = cluster(2, DATABASE_URL=fresh_postgres, REDIS_URL=redis_url)

    async def run() -> int:
        visitors = [Visitor() for _ in range(10)]
        try:
            await asyncio.gather(*(visitor.open(servers[0]) for visitor in visitors))
            opening = [visitors[n % 10].tab(servers[n % 2]) for n in range(100)]
            tabs = await asyncio.gather(*opening)
            snapshots = await asyncio.gather(
                *(until(tab, lambda m: m["type"] == "session.snapshot") for tab in tabs)
            )
            for visitor in visitors:
                assert (await visitor.put(servers[1], "heard", True))[0] == 200

            async def hears(tab: aiohttp.ClientWebSocketResponse, version: int) -> bool:
                try:
                    await until(tab, lambda m: m.get("version") == version, timeout=PROMPT)
                except pytest.fail.Exception:
                    return False
                return True

            heard = await asyncio.gather(
                *(
                    hears(tab, snap["version"] + 1)
                    for tab, snap in zip(tabs, snapshots, strict=True)
                )
            )
            await asyncio.gather(*(tab.close() for tab in tabs))
            return heard.count(False)
        finally:
            await asyncio.gather(*(visitor.close() for visitor in visitors))

    deaf = asyncio.run(run())
    print(f"\n100 tabs of 10 sessions connecting at once to 2 fresh processes: {deaf} deaf")
    assert deaf == 0


@pytest.mark.browser
def test_scale_out_a_planted_cookies_socket_never_follows_the_victims_login(
    fresh_postgres: str, redis_url: str, cluster: Start
):
    # The attacker made a session, planted its cookie in the victim's browser
    # and keeps a socket open on it through the other process. The victim logs
    # in: the attacker's socket is told and closed, and the planted cookie
    # leads nowhere; it never sees the victim's session.
    first, second = cluster(2, DATABASE_URL=fresh_postgres, REDIS_URL=redis_url)
    env = {**first.env, "DJANGO_SETTINGS_MODULE": "asgi_config.settings"}
    subprocess.run([sys.executable, "manage.py", "demo_user"], cwd=ROOT, env=env, check=True)

    async def run() -> None:
        victim = Visitor()
        try:
            await victim.open(first)
            planted = victim.http.cookie_jar.filter_cookies(URL(first.url))["sessionid"].value
            async with aiohttp.ClientSession() as attacker:
                headers = {"Origin": second.url, "Cookie": f"sessionid={planted}"}
                url, json_mode = second.ws_url, ["session.json"]
                tab = await attacker.ws_connect(url, protocols=json_mode, headers=headers)
                await until(tab, lambda m: m["type"] == "session.snapshot")
                async with victim.http.post(
                    first.url + "/login/submit/",
                    data={"username": "demo", "password": "demo"},
                    headers={"Origin": first.url, "Referer": first.url + "/"},
                    allow_redirects=False,
                ) as response:
                    assert response.status == 302
                # The login rotated the CSRF token, as a browser's cookie shows.
                token = victim.http.cookie_jar.filter_cookies(URL(first.url))["csrftoken"].value
                victim.http.headers["X-CSRFToken"] = token  # type: ignore[index]
                assert (await victim.put(first, "pin", "1234"))[0] == 200
                heard = [json.loads((await tab.receive(timeout=PROMPT)).data)]
                closed = await tab.receive(timeout=PROMPT)
                assert heard == [{"type": "session.rotated"}]
                assert closed.type == aiohttp.WSMsgType.CLOSE and tab.close_code == 4307
                again = await attacker.ws_connect(url, protocols=json_mode, headers=headers)
                assert json.loads((await again.receive(timeout=PROMPT)).data) == {
                    "type": "session.ended"
                }
                await again.receive(timeout=PROMPT)
                assert again.close_code == 4404
        finally:
            await victim.close()

    asyncio.run(run())


def test_scale_out_browser_tab_on_one_process_sees_an_edit_through_the_other(
    fresh_postgres: str, redis_url: str, cluster: Start, browser: Browser
):
    first, second = cluster(2, DATABASE_URL=fresh_postgres, REDIS_URL=redis_url)
    context = browser.new_context()
    try:
        # Cookies belong to the host, not the port: both tabs share one session.
        editor = BrowserTab(context.new_page(), first)
        watcher = BrowserTab(context.new_page(), second)
        editor.add("color", "green")
        expect(watcher.value("color")).to_have_text(shown("green"), timeout=WAIT_MS)
    finally:
        context.close()
