"""The benchmark's views: async, each making exactly the session calls it is named after."""

from __future__ import annotations

import itertools

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path

from live.http.middleware import set_cookie, vary_on_cookie

# A write sets one of a few keys to a new number: the session stays small
# however long the run, and every write really changes something (the live
# engine bumps its version once per write, which the lost-write check counts).
SLOTS = 16
_writes = itertools.count()


async def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, world", content_type="text/plain")


async def cookie(request: HttpRequest) -> HttpResponse:
    """The bare view plus what every saved session's response carries: its cookie and Vary."""
    response = await hello(request)
    set_cookie(response, "x" * 32, settings.SESSION_COOKIE_AGE)
    vary_on_cookie(response)
    return response


async def new(request: HttpRequest) -> HttpResponse:
    """Start a session holding k0; the middleware saves it and sets the cookie."""
    await request.session.aset("k0", "v0")
    return HttpResponse(b"created", content_type="text/plain")


async def read(request: HttpRequest) -> HttpResponse:
    value = await request.session.aget("k0")
    return HttpResponse(str(value), content_type="text/plain")


async def _write(request: HttpRequest, key: str, n: int) -> HttpResponse:
    await request.session.aget(key)
    await request.session.aset(key, n)
    return HttpResponse(key, content_type="text/plain")


async def write(request: HttpRequest) -> HttpResponse:
    """aget + aset of one of SLOTS keys; nothing else, so the ratio is the session's alone."""
    n = next(_writes)
    return await _write(request, f"w{n % SLOTS}", n)


async def write_distinct(request: HttpRequest) -> HttpResponse:
    """aget + aset of a key of its own: the lost-write probe."""
    n = next(_writes)
    return await _write(request, f"d{n}", n)


async def dump(request: HttpRequest) -> JsonResponse:
    data = dict(await request.session.aitems())
    return JsonResponse({"version": getattr(request.session, "version", None), "data": data})


urlpatterns = [
    path("bench/hello", hello),
    path("bench/cookie", cookie),
    path("bench/new", new),
    path("bench/read", read),
    path("bench/write", write),
    path("bench/write-distinct", write_distinct),
    path("bench/dump", dump),
    # The project's own API, for reading a live session back (GET /api/session).
    path("", include("dashboard.urls")),
]
