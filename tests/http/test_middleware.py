"""The session middleware's cookie and Vary header, against Django's."""

from __future__ import annotations

import json
import pickle
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.test import AsyncRequestFactory
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date, parse_http_date

from live.http.middleware import LiveSessionMiddleware, set_cookie, vary_on_cookie
from live.sessions import outage
from live.types import Unavailable

SETTINGS = [
    {},
    {"SESSION_COOKIE_DOMAIN": ".example.com", "SESSION_COOKIE_SECURE": True},
    {"SESSION_COOKIE_HTTPONLY": False, "SESSION_COOKIE_SAMESITE": None},
    {"SESSION_COOKIE_SAMESITE": "Strict", "SESSION_COOKIE_PATH": "/app"},
    {"SESSION_COOKIE_NAME": "sid", "SESSION_COOKIE_AGE": 60},
    {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": True},
]


def header(response: HttpResponse) -> list[str]:
    # What Django's ASGI handler sends for the response's cookies.
    return [c.output(header="").strip() for c in response.cookies.values()]


@pytest.mark.parametrize("overrides", SETTINGS)
@pytest.mark.parametrize("max_age", [None, 1209600, 5])
def test_session_cookie_is_the_one_django_would_set(settings, monkeypatch, overrides, max_age):
    # One clock for both cookies, so that their expiry dates cannot fall a second apart.
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.5)
    for name, value in overrides.items():
        setattr(settings, name, value)
    django_way = HttpResponse()
    django_way.set_cookie(
        settings.SESSION_COOKIE_NAME,
        "k3y0f32characters0000000000abcde",
        max_age=max_age,
        expires=None if max_age is None else http_date(time.time() + max_age),
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=settings.SESSION_COOKIE_HTTPONLY,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )
    ours = HttpResponse()
    set_cookie(ours, "k3y0f32characters0000000000abcde", max_age)
    assert header(ours) == header(django_way)
    assert ours.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == (
        "" if max_age is None else max_age
    )


def test_session_cookie_is_its_own_and_survives_pickling(settings):
    # Changing one response's cookie shows in it alone, and a cached response
    # (pickled, as Django's cache middleware stores it) renders the same.
    first, second = HttpResponse(), HttpResponse()
    set_cookie(first, "first0000000000000000000000000000", 60)
    first.cookies[settings.SESSION_COOKIE_NAME]["path"] = "/elsewhere"
    set_cookie(second, "second000000000000000000000000000", 60)
    assert second.cookies[settings.SESSION_COOKIE_NAME]["path"] == settings.SESSION_COOKIE_PATH
    assert "; Path=/elsewhere;" in header(first)[0]
    assert "; Path=/;" in header(second)[0]
    assert header(pickle.loads(pickle.dumps(second))) == header(second)


def test_session_cookie_refuses_an_unknown_samesite(settings):
    settings.SESSION_COOKIE_SAMESITE = "Sometimes"
    with pytest.raises(ValueError, match="samesite"):
        set_cookie(HttpResponse(), "k3y", 60)


@pytest.mark.django_db(transaction=True)
async def test_an_unknown_samesite_fails_the_request_without_a_cookie(settings):
    settings.SESSION_COOKIE_SAMESITE = "Sometimes"

    async def view(request: HttpRequest) -> HttpResponse:
        await request.session.aset("a", 1)
        return HttpResponse()

    # The error reaches Django's handler, which answers 500: no cookie goes out.
    with pytest.raises(ValueError, match="samesite"):
        await LiveSessionMiddleware(view)(AsyncRequestFactory().get("/"))


@pytest.mark.parametrize("vary", [None, "Accept-Encoding", "cookie", "Accept, Cookie", "*"])
def test_vary_on_cookie_is_django_patch_vary_headers(vary):
    django_way, ours = HttpResponse(), HttpResponse()
    if vary is not None:
        django_way.headers["Vary"] = ours.headers["Vary"] = vary
    patch_vary_headers(django_way, ("Cookie",))
    vary_on_cookie(ours)
    assert ours.headers["Vary"] == django_way.headers["Vary"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "expiry",
    [None, 0, 300, "in an hour"],
    ids=["default", "browser", "seconds", "datetime"],
)
@pytest.mark.parametrize("at_close", [False, True])
async def test_cookie_lifetime_follows_the_session_expiry(settings, expiry, at_close):
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = at_close
    settings.SESSION_COOKIE_AGE = 1000
    if expiry == "in an hour":
        expiry = datetime.now(UTC) + timedelta(hours=1)

    async def view(request: HttpRequest) -> HttpResponse:
        await request.session.aset("a", 1)
        if expiry is not None:
            await request.session.aset_expiry(expiry)
        return HttpResponse()

    request = AsyncRequestFactory().get("/")
    response = await LiveSessionMiddleware(view)(request)
    morsel = response.cookies[settings.SESSION_COOKIE_NAME]
    # What Django's getters say: a cookie for the browser's life, or for the expiry's.
    if expiry == 0 or (expiry is None and at_close):
        assert morsel["max-age"] == "" and morsel["expires"] == ""
    else:
        expected = 3600 if isinstance(expiry, datetime) else expiry or 1000
        assert morsel["max-age"] == pytest.approx(expected, abs=2)
        expires = parse_http_date(morsel["expires"])
        assert expires == pytest.approx(time.time() + morsel["max-age"], abs=2)


async def _view(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


@pytest.mark.parametrize(
    ("method", "error", "sentence"),
    [
        ("get", OperationalError("server closed the connection"), outage.CANNOT_READ),
        ("post", InterfaceError("connection already closed"), outage.MAYBE_SAVED),
        ("put", Unavailable(outage.NOT_SAVED), outage.NOT_SAVED),
    ],
)
def test_a_database_out_of_reach_in_a_view_answers_503_in_one_sentence(method, error, sentence):
    request = getattr(AsyncRequestFactory(), method)("/")
    response = LiveSessionMiddleware(_view).process_exception(request, error)
    assert response is not None and response.status_code == 503
    assert response["Retry-After"] == "1"
    assert json.loads(response.content) == {"error": sentence}


def test_other_errors_in_a_view_are_left_to_django():
    request = AsyncRequestFactory().get("/")
    middleware = LiveSessionMiddleware(_view)
    assert middleware.process_exception(request, ValueError("bug")) is None
    # A setup's error on SQLite (no such table) is not an outage.
    setup = OperationalError("no such table: live_session")
    setup.__cause__ = sqlite3.OperationalError("no such table: live_session")
    assert middleware.process_exception(request, setup) is None
