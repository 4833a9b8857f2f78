"""No write is lost: real concurrent requests against a running daphne."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import aiohttp
import pytest

from tests.conftest import Server
from tests.helpers import open_page

TABS = 10
WRITES_PER_TAB = 100


async def csrf_session(server: Server) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        # The default jar ignores cookies from IP addresses such as 127.0.0.1.
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"Origin": server.url, "Referer": server.url + "/"},
    )
    http.headers.update(await open_page(http, server))
    return http


async def put(http: aiohttp.ClientSession, url: str, key: str, value: object) -> dict:
    async with http.put(f"{url}/api/session/keys/{key}", data=json.dumps(value)) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def test_concurrent_writes_of_distinct_keys_all_survive(live_server: Server):
    async def run() -> tuple[dict, list[int]]:
        http = await csrf_session(live_server)
        try:
            # Every tab shares the cookie jar: one session, many writers at once.
            writes = [
                put(http, live_server.url, f"tab{tab}-key{n}", {"tab": tab, "n": n})
                for tab in range(TABS)
                for n in range(WRITES_PER_TAB)
            ]
            answers = await asyncio.gather(*writes)
            async with http.get(live_server.url + "/api/session") as response:
                final = await response.json()
        finally:
            await http.close()
        return final, [a["version"] for a in answers]

    final, versions = asyncio.run(run())
    expected = {f"tab{t}-key{n}" for t in range(TABS) for n in range(WRITES_PER_TAB)}
    kept = expected & set(final["data"])
    print(f"\nwrites attempted {len(expected)}, kept {len(kept)}")
    assert kept == expected
    # Each write got its own version: no two merges saw the same base.
    assert Counter(versions).most_common(1)[0][1] == 1
    assert final["version"] >= max(versions)
    assert "database is locked" not in live_server.log.read_text()


def test_concurrent_plain_views_and_api_writes_all_survive(live_server: Server):
    async def run() -> dict:
        http = await csrf_session(live_server)
        try:
            api_writes = [put(http, live_server.url, f"k{n}", n) for n in range(200)]

            async def visit_color() -> None:
                async with http.get(live_server.url + "/color/") as response:
                    assert response.status == 200

            await asyncio.gather(*api_writes, *(visit_color() for _ in range(20)))
            async with http.get(live_server.url + "/api/session") as response:
                return await response.json()
        finally:
            await http.close()

    data = asyncio.run(run())["data"]
    assert {f"k{n}" for n in range(200)} <= set(data)
    assert data["favorite_color"] == "green"


@pytest.mark.parametrize("writers", [20])
def test_if_match_detects_same_key_conflicts(live_server: Server, writers: int):
    async def run() -> Counter[int]:
        http = await csrf_session(live_server)
        try:
            base = await put(http, live_server.url, "shared", 0)

            async def guarded(n: int) -> int:
                async with http.put(
                    f"{live_server.url}/api/session/keys/shared",
                    data=json.dumps(n),
                    headers={"If-Match": str(base["version"])},
                ) as response:
                    return response.status

            # Values differ from the stored 0: rewriting the same value is no conflict.
            return Counter(await asyncio.gather(*(guarded(n) for n in range(1, writers + 1))))
        finally:
            await http.close()

    statuses = asyncio.run(run())
    print(f"\nsame-key writes {writers}: kept {statuses[200]}, conflicts {statuses[409]}")
    # All saw the same version: exactly one wins, every other one is told.
    assert statuses == Counter({200: 1, 409: writers - 1})
