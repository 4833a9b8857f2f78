"""The ASGI write gate: a session's writes take turns before Django sees them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.conf import settings as django_settings

from live.http.gate import BUSY, SessionWriteGate


class Counting:
    """An ASGI app that holds each request until released and counts how many it holds."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        await self.release.wait()
        self.inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def request(method: str, key: str | None) -> dict[str, Any]:
    headers = []
    if key is not None:
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={key}".encode()))
    return {"type": "http", "method": method, "path": "/api/session/keys/a", "headers": headers}


async def call(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.fixture(autouse=True)
def small_gate(settings: Any) -> None:
    settings.LIVE_SESSIONS = {"WRITES_IN_FLIGHT": 2, "WRITES_QUEUED": 3}


async def test_gate_lets_a_few_writes_of_a_session_in_and_refuses_beyond_the_queue() -> None:
    inner = Counting()
    gate = SessionWriteGate(inner)
    writes = [asyncio.ensure_future(call(gate, request("PUT", "k" * 32))) for _ in range(5)]
    await asyncio.sleep(0)
    assert inner.inside == 2
    refused = await call(gate, request("POST", "k" * 32))
    assert refused[0]["status"] == 429
    assert json.loads(refused[1]["body"]) == {"error": BUSY}
    # Reads, other sessions and cookie-less requests pass straight through.
    others = [
        asyncio.ensure_future(call(gate, scope))
        for scope in (request("GET", "k" * 32), request("PUT", "o" * 32), request("PUT", None))
    ]
    await asyncio.sleep(0)
    assert inner.inside == 5
    inner.release.set()
    answers = await asyncio.gather(*writes, *others)
    assert all(sent[0]["status"] == 200 for sent in answers)
    assert inner.most == 5


@pytest.mark.parametrize("before", ["a b=c", 'x="unterminated', "{=1"])
async def test_gate_reads_the_session_as_django_does_past_a_cookie_it_cannot_parse(
    before: str,
) -> None:
    # Python's SimpleCookie gives up on such a header; Django's parser, which
    # the session middleware uses, still finds the session, so its turn counts.
    inner = Counting()
    gate = SessionWriteGate(inner)
    name = django_settings.SESSION_COOKIE_NAME
    scope = request("PUT", None)
    scope["headers"] = [(b"cookie", f"{before}; {name}={'k' * 32}".encode())]
    writes = [asyncio.ensure_future(call(gate, dict(scope))) for _ in range(5)]
    await asyncio.sleep(0)
    assert inner.inside == 2
    refused = await call(gate, scope)
    assert refused[0]["status"] == 429
    inner.release.set()
    assert all(sent[0]["status"] == 200 for sent in await asyncio.gather(*writes))
