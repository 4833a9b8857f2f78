"""Hostile input against a real daphne: raw paths, chunked bodies and real sockets.

The tally prints when the module ends (pytest -s shows it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote_from_bytes

import aiohttp
import pytest

from live.realtime.consumers import CLOSE_TOO_BIG
from tests.conftest import Server
from tests.helpers import COOKIE, HUGE_INT, HUGE_MESSAGES, IGNORED_MESSAGES, TALLY, one_sentence

pytestmark = pytest.mark.usefixtures("hostile_tally")


async def raw_request(
    port: int, head: bytes, body: bytes = b"", chunk: int = 0
) -> tuple[int, bytes]:
    """Send one request over a plain socket; chunk > 0 sends the body chunked, no length."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    if chunk:
        for start in range(0, len(body), chunk):
            part = body[start : start + chunk]
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    else:
        writer.write(body)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    headers, _, payload = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in headers.lower():
        decoded = b""
        while payload:
            size_line, _, payload = payload.partition(b"\r\n")
            size = int(size_line, 16)
            decoded, payload = decoded + payload[:size], payload[size + 2 :]
        payload = decoded
    return int(status_line.split(b" ")[1]), payload


def request_head(
    server: Server, method: str, path: bytes, cookies: str, token: str, extra: str = ""
) -> bytes:
    return (
        f"{method} ".encode()
        + path
        + (
            f" HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nCookie: {cookies}\r\n"
            f"X-CSRFToken: {token}\r\nContent-Type: application/json\r\n{extra}"
            "Connection: close\r\n\r\n"
        ).encode()
    )


async def test_real_daphne_raw_paths_chunked_bodies_and_sockets(live_server: Server):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(live_server.url + "/") as response:
            assert response.status == 200
        jar = {c.key: c.value for c in http.cookie_jar}
        cookies = f"{COOKIE}={jar[COOKIE]}; csrftoken={jar['csrftoken']}"

        async def state() -> dict[str, Any]:
            async with http.get(live_server.url + "/api/session") as answer:
                assert answer.status == 200
                body = await answer.json()
                return {"version": body["version"], "data": body["data"]}

        problems: list[str] = []

        async def case(
            name: str, method: str, path: bytes, body: bytes, status: int, chunk: int = 0
        ) -> bytes:
            TALLY.cases += 1
            before = await state()
            length = "" if chunk else f"Content-Length: {len(body)}\r\n"
            te = "Transfer-Encoding: chunked\r\n" if chunk else ""
            head = request_head(live_server, method, path, cookies, jar["csrftoken"], length + te)
            got, payload = await raw_request(live_server.port, head, body, chunk)
            if got >= 500:
                TALLY.server_errors += 1
            if got != status:
                problems.append(f"{name}: {got} {payload[:200]!r}")
            if status >= 400 and await state() != before:
                TALLY.refused_but_changed += 1
                problems.append(f"{name}: refused, yet the session changed")
            # Django's refusals say why in JSON; daphne refuses raw non-ASCII paths itself.
            if status >= 400 and path.isascii():
                reason = json.loads(payload).get("error", "")
                if not one_sentence(reason):
                    problems.append(f"{name}: no one-sentence reason: {payload[:200]!r}")
            return payload

        emoji = "🎨".encode()
        await case("raw UTF-8 path", "PUT", b"/api/session/keys/" + emoji, b"1", 400)
        await case("raw 0xFF path", "PUT", b"/api/session/keys/\xff", b"1", 400)
        await case("encoded 0xFF", "PUT", b"/api/session/keys/%FF", b"1", 400)
        await case("encoded RTL override", "PUT", b"/api/session/keys/%E2%80%AE", b"1", 400)
        await case("encoded NUL", "DELETE", b"/api/session/keys/a%00", b"", 400)
        payload = await case(
            "encoded emoji",
            "PUT",
            b"/api/session/keys/" + quote_from_bytes(emoji).encode(),
            b'"ok"',
            200,
        )
        assert json.loads(payload)["key"] == "🎨"
        await case("chunked small", "PUT", b"/api/session/keys/chunked", b'"chunks"', 200, chunk=3)
        big = b'"' + b"x" * (2 * 1024 * 1024) + b'"'
        await case("2 MiB body", "PUT", b"/api/session/keys/big", big, 413)
        await case(
            "2 MiB chunked, no length", "PUT", b"/api/session/keys/big", big, 413, chunk=65536
        )
        bigger = b'"' + b"x" * (3 * 1024 * 1024) + b'"'
        await case(
            "3 MiB chunked, no length", "PUT", b"/api/session/keys/big", bigger, 413, chunk=65536
        )
        await case("huge integer", "PUT", b"/api/session/keys/n", HUGE_INT.encode(), 400)
        await case("100000 levels", "PUT", b"/api/session/keys/n", b"[" * 100_000, 413)
        assert (await state())["data"] == {"🎨": "ok", "chunked": "chunks"}

        # Sockets: hostile messages change nothing and leave the socket (and server) up.
        before = await state()
        url = live_server.ws_url
        headers = {"Origin": live_server.url}
        async with http.ws_connect(url, protocols=["session.json"], headers=headers) as ws:
            assert (await ws.receive_json(timeout=3))["version"] == before["version"]
            for name, message in IGNORED_MESSAGES.items():
                if name == "lone surrogate":
                    continue  # a real client cannot send it: UTF-8 only
                TALLY.cases += 1
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message)
                await ws.send_str('{"type": "resync"}')
                answer = await ws.receive(timeout=3)
                if answer.type != aiohttp.WSMsgType.TEXT:
                    TALLY.server_errors += 1
                    problems.append(f"daphne ws {name}: {answer.type} {answer.data}")
                    break
                if json.loads(answer.data)["data"] != before["data"]:
                    problems.append(f"daphne ws {name}: {answer.data[:200]}")
        for name, message in HUGE_MESSAGES.items():
            TALLY.cases += 1
            async with http.ws_connect(url, protocols=["session.json"], headers=headers) as ws:
                await ws.receive_json(timeout=3)
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message)
                answer = await ws.receive(timeout=3)
                if answer.type != aiohttp.WSMsgType.CLOSE or answer.data != CLOSE_TOO_BIG:
                    problems.append(f"daphne ws {name}: {answer.type} {answer.data}")
        assert await state() == before
    assert not problems, "\n".join(problems)
