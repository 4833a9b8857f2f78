"""The load tester through a server restart: its tabs come back and its verdict stays truthful."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from time import perf_counter
from typing import Any

import aiohttp
from rich.console import Console

from live.loadtest import report, worker
from live.loadtest.client import User
from live.loadtest.config import SESSION_PATH, Config, parse_mix
from live.loadtest.model import Consistency
from live.loadtest.schedule import Schedule
from live.loadtest.stats import Stats
from live.loadtest.tab import Tab
from live.loadtest.worker import Phase
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
