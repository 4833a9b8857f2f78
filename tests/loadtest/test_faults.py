"""The load tester through a server restart: its tabs come back and its verdict stays truthful."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Callable
from time import perf_counter
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from rich.console import Console
from yarl import URL

from live.loadtest import report, worker
from live.loadtest.client import User
from live.loadtest.config import SESSION_PATH, Config, parse_mix
from live.loadtest.model import Consistency
from live.loadtest.schedule import Schedule
from live.loadtest.stats import PushStats, Stats
from live.loadtest.tab import Tab
from live.loadtest.worker import Phase
from live.realtime import events
from live.realtime.consumers import CLOSE_MOVED
from tests.conftest import Server

# Every operation, clears included: an unanswered clear touches every key of its session.
MIX = "set=50,get=20,delete=15,clear=15"


async def test_loadtest_tabs_reconnect_and_verdict_stays_truthful_across_a_kill(
    live_server: Server,
):
    config = Config(
        url=live_server.url,
        users=4,
        tabs=2,
        concurrency=2,
        duration=8.0,
        mix=parse_mix(MIX),
        # The outage's failed requests are expected; the verdict on writes is what counts.
        max_error_rate=1.0,
    )
    loaded = asyncio.Event()

    def progress(phase: Phase, requests: int, errors: int) -> None:
        if phase == Phase.RUNNING and requests >= 200:
            loaded.set()

    # In this process, so that the kill comes while writes and pushes are in flight.
    run = asyncio.create_task(worker.run(config, worker.split(config)[0], progress))
    await asyncio.wait_for(loaded.wait(), 30)
    await asyncio.to_thread(live_server.kill)
    # The same port and database file, as a restarted deployment.
    await asyncio.to_thread(live_server.start)
    outcome = await asyncio.wait_for(run, 60)

    push, consistency = outcome.stats.push, outcome.consistency
    assert outcome.stats.errors > 0  # the outage was seen
    # Every tab's socket dropped with the server, and every tab came back.
    assert sum(push.drops.values()) >= outcome.tabs
    assert push.reconnects >= outcome.tabs
    assert push.missed == 0
    assert consistency.tabs_diverged == consistency.tabs_ended == 0
    assert consistency.sessions == config.users and consistency.unread_sessions == 0

    built = report.build(config, outcome)
    checked = built["consistency"]
    assert checked["acked_writes"] > 0 and checked["verified_keys"] > 0
    assert checked["lost_writes"] == 0
    assert checked["stale_reads"] == checked["inconsistent_reads"] == 0
    unverifiable = checked["unverifiable_keys"]
    if unverifiable:
        # Truthful either way: a key the model cannot decide fails the run, by name.
        assert built["passed"] is False
        assert built["failures"][0].startswith(f"{unverifiable} keys could not be verified")
        assert {s["kind"] for s in checked["samples"]} == {"unverifiable"}
    else:
        assert built["passed"] is True, built["failures"]
    assert built["push"]["reconnects"] == push.reconnects

    text = render(built)
    assert (
        f"{checked['lost_writes']} of {checked['verified_keys']} keys checked; "
        f"{unverifiable} keys could not be verified" in text
    )
    assert f"{push.reconnects} after {sum(push.drops.values())} dropped sockets" in text
    print(
        f"\nkill and restart: {push.reconnects} reconnects after {dict(push.drops)}, "
        f"{push.refused} attempts refused, {push.missed} pushes missed; keys "
        f"{checked['verified_keys']} verified, {unverifiable} unverifiable, "
        f"{checked['lost_writes']} lost; errors {dict(outcome.stats.operations['set'].errors)}"
    )


def render(built: dict[str, Any]) -> str:
    out = io.StringIO()
    report.render(built, Console(file=out, width=200, no_color=True))
    return out.getvalue()


async def until(tab: Tab, condition: Callable[[], bool]) -> None:
    """Await the tab's updates until `condition` holds (5 s at most)."""
    async with asyncio.timeout(5):
        while not condition():
            tab.updated.clear()
            await tab.updated.wait()


async def post(user: User, path: str) -> dict[str, Any]:
    response = await user.request("POST", path, user.headers)
    assert response.status == 200, response.body
    return dict(json.loads(response.body))


async def test_loadtest_tab_follows_a_rotation_and_stays_closed_after_a_flush(
    live_server: Server,
):
    config = Config(url=live_server.url, users=1, tabs=1)
    stats = Stats()
    connector = aiohttp.TCPConnector()
    user = User(0, config, connector, stats, Consistency(), Schedule(config, None))
    try:
        await user.start()
        [tab] = user.tabs
        user.model.write_started()
        assert await user._set(0, perf_counter())
        await until(tab, lambda: "k0" in tab.data)
        cookie = user.cookie_header()

        # The key changes (4307 after session.rotated): the tab comes back with the new cookie.
        await post(user, SESSION_PATH + "/cycle")
        assert user.cookie_header() != cookie
        await until(tab, lambda: stats.push.moved == 1 and tab.following)
        assert tab.cookie == user.cookie_header()
        assert tab.data.keys() == {"k0"}

        # The session ends (session.ended, 4307), and no session answers the cookie (4404).
        await post(user, SESSION_PATH + "/flush")
        await until(tab, lambda: tab.ended)
        push = stats.push
        assert (push.moved, push.ended) == (2, 1)
        assert push.drops == {} and push.reconnects == push.refused == 0
        assert push.unexpected == {}
    finally:
        await user.close()
        await connector.close()


class SignedIn:
    """A user's cookies after a login: they name the new session and nothing is in flight."""

    def cookie_header(self) -> str:
        return "sessionid=new"

    async def cookie_change(self, since: str) -> None:
        await asyncio.Event().wait()

    async def settled(self) -> None:
        return None


async def test_loadtest_tab_reaches_a_version_only_on_a_socket_that_showed_it():
    # After a logout and a login the new session's versions start again, below the
    # old one's: a tab still holding the old session's version 5, on its way to the
    # new one, has not reached the new session's version 2.
    sockets: asyncio.Queue[web.WebSocketResponse] = asyncio.Queue()

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=(events.JSON_SUBPROTOCOL,))
        await ws.prepare(request)
        await sockets.put(ws)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws/session/", socket)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    http = aiohttp.ClientSession()
    url = URL(f"ws://127.0.0.1:{server.port}/ws/session/")
    tab = Tab(http, url, "http://127.0.0.1", SignedIn(), PushStats(), random.Random(0), 5.0)
    following = asyncio.create_task(tab.follow())
    try:
        old = await sockets.get()
        await old.send_json({"type": events.SNAPSHOT, "version": 5, "data": {"note": 1}})
        await until(tab, lambda: tab.following)
        await old.send_json({"type": events.ENDED})
        await old.close(code=CLOSE_MOVED)
        new = await sockets.get()

        async def reached() -> tuple[int, dict[str, Any]]:
            await tab.reach(2)
            return tab.version, tab.data

        reaching = asyncio.create_task(reached())
        await new.send_json({"type": events.SNAPSHOT, "version": 2, "data": {}})
        assert await asyncio.wait_for(reaching, 5) == (2, {})
        assert tab.push.moved == 1
    finally:
        await tab.close()
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await http.close()
        await server.close()
