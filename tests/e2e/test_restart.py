"""A real daphne under open tabs: killed and started again mid-write, and a tab that stops reading.

The tabs here do what the page does: they follow a session over the
session.json socket, ask for a resync on a version gap, and when the socket
drops they reconnect with a short backoff and take the snapshot they are sent.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from typing import Any

import aiohttp
import pytest

from live.realtime import events
from tests.conftest import Server
from tests.helpers import open_page


class Tab:
    """One browser tab's socket: follows the session, resyncs on gaps, reconnects when dropped."""

    def __init__(self, http: aiohttp.ClientSession, server: Server, name: str) -> None:
        self.http, self.server, self.name = http, server, name
        self.version, self.data = -1, dict[str, Any]()
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.snapshot_at: list[float] = []
        self.drops = 0
        self.snapshot = asyncio.Event()
        self.updated = asyncio.Event()
        self.rng = random.Random(name)

    async def run(self) -> None:
        retries = 0
        while True:
            try:
                async with self.http.ws_connect(
                    self.server.ws_url,
                    protocols=["session.json"],
                    headers={"Origin": self.server.url},
                ) as ws:
                    retries = 0
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            await self.apply(ws, json.loads(message.data))
            except (aiohttp.ClientError, OSError):
                pass
            self.drops += 1
            # live.js: 250 ms doubling to at most 2 s, with jitter.
            base = min(0.25 * 2**retries, 2.0)
            await asyncio.sleep(base / 2 + self.rng.random() * base / 2)
            retries += 1

    async def reaches(self, version: int, timeout: float) -> bool:
        """Await pushes until this tab shows `version`; False if it does not in time."""
        try:
            async with asyncio.timeout(timeout):
                while self.version < version:
                    self.updated.clear()
                    await self.updated.wait()
        except TimeoutError:
            return False
        return True

    async def apply(self, ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> None:
        self.received.append((time.monotonic(), message))
        self.updated.set()
        if message["type"] == "session.snapshot":
            self.version, self.data = message["version"], dict(message["data"])
            self.snapshot_at.append(time.monotonic())
            self.snapshot.set()
        elif message["type"] == "session.changed":
            if message["version"] <= self.version:
                return
            if message["version"] != self.version + 1:
                await ws.send_str('{"type": "resync"}')
                return
            events.apply_change(self.data, message)
            self.version = message["version"]


async def server_state(http: aiohttp.ClientSession, server: Server) -> dict[str, Any]:
    async with http.get(server.url + "/api/session") as response:
        assert response.status == 200
        body = await response.json()
        return {"version": body["version"], "data": body["data"]}


def fresh_client() -> aiohttp.ClientSession:
    # No pooled connections: after a kill a pooled one is dead and would fail a request.
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(force_close=True, limit=0),
    )


async def test_tabs_reconnect_after_kill_and_acknowledged_writes_survive(live_server: Server):
    async with fresh_client() as http:
        csrf = await open_page(http, live_server)
        tabs = [Tab(http, live_server, f"tab{n}") for n in range(4)]
        tasks = [asyncio.create_task(tab.run()) for tab in tabs]
        for tab in tabs:
            await asyncio.wait_for(tab.snapshot.wait(), 5)
        acknowledged: dict[str, int] = {}
        enough = asyncio.Event()

        async def writer(n: int) -> None:
            for i in range(10_000):
                # A key per write: a later write's unknown fate never hides an earlier one.
                key = f"w{n}-{i}"
                try:
                    async with http.put(
                        f"{live_server.url}/api/session/keys/{key}", data=str(i), headers=csrf
                    ) as response:
                        if response.status == 200 and (await response.json())["value"] == i:
                            acknowledged[key] = i
                            if len(acknowledged) >= 40:
                                enough.set()
                except (aiohttp.ClientError, OSError, json.JSONDecodeError):
                    return  # the server is gone: this write's fate is unknown

        writers = [asyncio.create_task(writer(n)) for n in range(3)]
        await asyncio.wait_for(enough.wait(), 10)
        # Writes are in flight right now: three writers never wait for one another.
        killed_at = time.monotonic()
        live_server.kill()
        await asyncio.wait_for(asyncio.gather(*writers), 10)
        for tab in tabs:
            tab.snapshot.clear()
        await asyncio.to_thread(live_server.start)
        up_at = time.monotonic()
        for tab in tabs:
            try:
                await asyncio.wait_for(tab.snapshot.wait(), up_at + 5 - time.monotonic())
            except TimeoutError:
                pytest.fail(f"{tab.name} did not reconnect in 5 s")
        reconnect = [max(tab.snapshot_at) - up_at for tab in tabs]
        state = await server_state(http, live_server)
        for tab in tabs:
            assert tab.drops >= 1
            assert (tab.version, tab.data) == (state["version"], state["data"]), tab.name
        lost = {k: v for k, v in acknowledged.items() if state["data"].get(k) != v}
        assert not lost
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(
        f"\nrestart: {len(tabs)} tabs back {max(reconnect) * 1000:.0f} ms (max) after the server"
        f" listened again, {(up_at - killed_at) * 1000:.0f} ms after the kill;"
        f" {len(acknowledged)} acknowledged writes, {len(lost)} lost"
    )


def _latencies(tab: Tab, sent: dict[int, float]) -> list[float]:
    return [
        at - sent[message["version"]]
        for at, message in tab.received
        if message["type"] == "session.changed" and message["version"] in sent
    ]


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def test_slow_tab_does_not_delay_a_reading_tab_and_catches_up(live_server: Server):
    writes = 300  # of 16 kB each: megabytes that the slow tab leaves unread
    async with fresh_client() as http:
        csrf = await open_page(http, live_server)
        reader = Tab(http, live_server, "reader")
        task = asyncio.create_task(reader.run())
        await asyncio.wait_for(reader.snapshot.wait(), 5)
        sent: dict[int, float] = {}
        value = "x" * 16_000

        async def write(n: int) -> None:
            started = time.monotonic()
            async with http.put(
                f"{live_server.url}/api/session/keys/k{n % 3}",
                data=json.dumps([n, value]),
                headers=csrf,
            ) as response:
                assert response.status == 200
                sent[(await response.json())["version"]] = started

        # Alone first: the reading tab's push latency with nobody slow beside it.
        for n in range(50):
            await write(n)
        assert await reader.reaches(max(sent), 5)
        alone = _latencies(reader, sent)
        sent.clear()

        slow = await http.ws_connect(
            live_server.ws_url, protocols=["session.json"], headers={"Origin": live_server.url}
        )
        first = await slow.receive_json(timeout=5)
        assert first["type"] == "session.snapshot"
        # Stop reading at the socket: the server's writes to it pile up unread.
        slow._conn.transport.pause_reading()  # type: ignore[union-attr]
        for n in range(50, 50 + writes):
            await write(n)
        assert await reader.reaches(max(sent), 5)
        beside = _latencies(reader, sent)
        versions = [m["version"] for _, m in reader.received if m["type"] == "session.changed"]
        # Every version, in order, each once: no gap, no resync needed.
        assert versions == sorted(set(versions))
        assert set(sent) <= set(versions)
        assert len(beside) == writes
        assert max(beside) < 2.0, f"a push took {max(beside):.3f} s"

        # The slow tab reads again and ends at the latest version, by changes or a snapshot.
        slow._conn.transport.resume_reading()  # type: ignore[union-attr]
        latest = await server_state(http, live_server)
        version, data, snapshots = first["version"], dict(first["data"]), 0
        while version < latest["version"]:
            message = await slow.receive_json(timeout=10)
            if message["type"] == "session.snapshot":
                version, data, snapshots = message["version"], dict(message["data"]), snapshots + 1
            elif message["type"] == "session.changed":
                if message["version"] != version + 1:
                    await slow.send_str('{"type": "resync"}')
                    continue
                for change in message["changes"]:
                    data[change["key"]] = change["value"]
                version = message["version"]
        assert (version, data) == (latest["version"], latest["data"])
        await slow.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    print(
        f"\nslow tab: reading tab's push latency alone p50 {_percentile(alone, 50) * 1000:.1f} ms"
        f" p99 {_percentile(alone, 99) * 1000:.1f} ms; beside a tab that stopped reading"
        f" p50 {_percentile(beside, 50) * 1000:.1f} ms p99 {_percentile(beside, 99) * 1000:.1f} ms"
        f" ({writes} pushes of {len(value) // 1000} kB); the slow tab caught up"
        f" with {snapshots} snapshot(s)"
    )
