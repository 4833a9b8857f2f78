"""Tabs say when live updates pause (the channel layer's Redis is stopped or frozen) and resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import RedisServer, Server, free_port, migrate, server_env

pytestmark = pytest.mark.services

# The heartbeat probes the layer every second; a pause shows within a few.
NOTICE = 15.0


async def wait_for(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[str]:
    """Messages up to and including the first of `kind` (its type, or text it contains)."""
    seen: list[str] = []
    async with asyncio.timeout(NOTICE):
        while True:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, (message, seen)
            seen.append(message.data)
            if kind in message.data:
                return seen


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_tabs_say_when_pushes_pause_and_when_they_resume(
    outage: str, tmp_path: Path, own_redis: Callable[..., RedisServer]
) -> None:
    redis = own_redis()
    env = server_env(tmp_path, REDIS_URL=redis.url)
    migrate(env)
    server = Server(port=free_port(), env=env, log=tmp_path / "daphne.log")
    server.start()

    async def run() -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.get(server.url + "/") as response:
                assert response.status == 200
            origin: dict[str, Any] = {"Origin": server.url}
            tab = await http.ws_connect(server.ws_url, protocols=["session.json"], headers=origin)
            page = await http.ws_connect(server.ws_url, headers=origin)
            assert json.loads((await tab.receive()).data)["type"] == "session.snapshot"
            await page.receive()
            assert redis.process is not None
            if outage == "stopped":
                redis.stop()
            else:
                os.kill(redis.process.pid, signal.SIGSTOP)
            await wait_for(tab, '"session.paused"')
            html = await wait_for(page, 'id="live-status"')
            assert 'data-state="paused"' in html[-1] and "live updates paused" in html[-1]
            if outage == "stopped":
                redis.start()
            else:
                os.kill(redis.process.pid, signal.SIGCONT)
            await wait_for(tab, '"session.resumed"')
            html = await wait_for(page, 'id="live-status"')
            assert 'data-state="open"' in html[-1]
            await tab.close()
            await page.close()

    try:
        asyncio.run(run())
    finally:
        if redis.process is not None and redis.process.poll() is None:
            os.kill(redis.process.pid, signal.SIGCONT)
        server.stop()
