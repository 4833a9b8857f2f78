"""The benchmark's ASGI app: Django, plus a count of the writes it acknowledged.

A write counts once its response starts with status 200: the session
middleware has saved by then. GET /bench/stats answers the count without
touching Django, so reading it costs the measured stack nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.core.asgi import get_asgi_application

Message = Mapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scripts.bench.settings")
# The table runs on Django's own handler; BENCH_HANDLER=project serves the
# same views through the project's (asgi_config.handler), as its server does.
django_app = get_asgi_application()
if os.environ.get("BENCH_HANDLER") == "project":
    from live.http.handler import OnLoopASGIHandler

    django_app = OnLoopASGIHandler()

WRITE_PATHS = frozenset({"/bench/write", "/bench/write-distinct"})
STATS_PATH = "/bench/stats"
stats = {"acked": 0}


async def _stats(send: Send) -> None:
    body = json.dumps(stats).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def application(
    scope: dict[str, Any], receive: Callable[[], Awaitable[Message]], send: Send
) -> None:
    path = scope.get("path") if scope["type"] == "http" else None
    if path == STATS_PATH:
        await _stats(send)
        return
    if path not in WRITE_PATHS:
        await django_app(scope, receive, send)
        return

    async def counting(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 200:
            stats["acked"] += 1
        await send(message)

    await django_app(scope, receive, counting)
