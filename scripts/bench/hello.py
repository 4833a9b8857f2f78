"""The ceiling: the smallest ASGI app daphne can serve, with no framework at all.

It also accepts WebSockets and then only waits for them to close: the idle
tabs' baseline, what daphne itself spends on open sockets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]

BODY = b"Hello, world"


async def application(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "websocket":
        await _idle_socket(receive, send)
        return
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"12")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


async def _idle_socket(
    receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.disconnect":
            return
