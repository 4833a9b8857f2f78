"""ASGI middleware: a session's writes take turns before Django sees them.

A client that opens many connections to one session gets as many turns of
the event loop as it has requests in progress, so its flood would slow every
other session's requests. Here each unsafe request of a session (by its
cookie) takes one of the session's write slots (see live.limits.writing)
before any of Django's work: a few run at once, the rest wait without using
the loop, and beyond the queue the request is refused with 429 at once.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http.cookie import parse_cookie

from live import limits
from live.sessions.keys import digest

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
BUSY = "Too many writes to this session are waiting; slow down and try again."


def _session_key(scope: dict[str, Any]) -> str | None:
    # Django's own cookie parser, as request.COOKIES uses: the session whose
    # turn is taken is the one the session middleware then loads.
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return (
                parse_cookie(bytes(value).decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
                or None
            )
    return None


class SessionWriteGate:
    """Wrap an ASGI HTTP application so that one session's writes take turns."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "http" or scope.get("method") in SAFE_METHODS:
            return await self.application(scope, receive, send)
        key = _session_key(scope)
        if key is None:
            return await self.application(scope, receive, send)
        try:
            async with limits.writing(digest(key)):
                return await self.application(scope, receive, send)
        except limits.Busy:
            # Raised only on the way in: the application never ran.
            return await _refuse(send)


async def _refuse(send: Any) -> None:
    body = json.dumps({"error": BUSY}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
