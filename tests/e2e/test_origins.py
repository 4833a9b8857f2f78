"""A real server accepts sockets only from its own origin: scheme, host and port."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import Server


def test_server_refuses_sockets_from_other_ports_schemes_and_hosts(live_server: Server) -> None:
    port = live_server.port
    foreign = [
        "http://127.0.0.1:9999",
        f"https://127.0.0.1:{port}",
        f"http://localhost:{port}",
    ]

    async def run() -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.get(live_server.url + "/") as response:
                assert response.status == 200
            for path in ("/ws/session/", "/ws/staff/sessions/"):
                url = live_server.ws_url.replace("/ws/session/", path)
                for origin in foreign:
                    with pytest.raises(aiohttp.WSServerHandshakeError):
                        await http.ws_connect(url, headers={"Origin": origin})
            own = await http.ws_connect(
                live_server.ws_url, protocols=["session.json"], headers={"Origin": live_server.url}
            )
            assert (await own.receive_json(timeout=5))["type"] == "session.snapshot"
            await own.close()

    asyncio.run(run())
