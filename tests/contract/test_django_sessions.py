"""Django's own session tests (SessionTestsMixin, SessionMiddlewareTests) on the live engines.

They come from the source distribution of the installed Django (see
django_source.py), run unchanged, one TestCase per engine, exactly as Django
runs them against its own backends.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import TestCase, override_settings

from live.sessions.db import SessionStore as DatabaseStore
from live.sessions.redis import SessionStore as RedisStore
from tests.conftest import skip_or_fail

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "")
# The engine's defaults, as a project that installs it has them.
DEFAULTS: dict[str, Any] = {"LIVE_SESSIONS": {}}


def _redis_answers() -> bool:
    if not REDIS_TEST_URL:
        return False
    try:
        return bool(redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


if getattr(settings, "DJANGO_TESTS", None) is None:

    def test_django_session_tests_can_be_fetched() -> None:
        skip_or_fail("Django's source distribution could not be fetched")

else:
    from sessions_tests import tests as django

    def empty_session_saved(test: Any, store: type[Any]) -> None:
        """Django's test_empty_session_saved reads its own table; this checks the engine."""

        def response_set_session(request: HttpRequest) -> HttpResponse:
            request.session["foo"] = "bar"
            return HttpResponse("Session test")

        request = test.request_factory.get("/")
        middleware = django.SessionMiddleware(response_set_session)
        response = middleware(request)
        assert tuple(request.session.items()) == (("foo", "bar"),)
        assert f"Set-Cookie: sessionid={request.session.session_key}" in str(response.cookies)
        del request.session["foo"]
        response = middleware.process_response(request, HttpResponse("Session test"))
        assert store(request.session.session_key).load() == {}
        assert store().exists(request.session.session_key)
        assert f"Set-Cookie: sessionid={request.session.session_key}" in str(response.cookies)
        assert response.headers["Vary"] == "Cookie"

    @override_settings(**DEFAULTS)
    class TestDatabaseEngine(django.SessionTestsMixin, TestCase):  # type: ignore[misc]
        backend = DatabaseStore

    @override_settings(SESSION_ENGINE="live.engine", **DEFAULTS)
    class TestMiddlewareOnDatabaseEngine(django.SessionMiddlewareTests):  # type: ignore[misc]
        def test_empty_session_saved(self) -> None:
            empty_session_saved(self, DatabaseStore)

    @override_settings(REDIS_URL=REDIS_TEST_URL, **DEFAULTS)
    class TestRedisEngine(django.SessionTestsMixin, TestCase):  # type: ignore[misc]
        backend = RedisStore

        @classmethod
        def setUpClass(cls) -> None:
            if not _redis_answers():
                skip_or_fail("Redis is not reachable at REDIS_TEST_URL")
            super().setUpClass()

    @override_settings(REDIS_URL=REDIS_TEST_URL, SESSION_ENGINE="live.redis_engine", **DEFAULTS)
    class TestMiddlewareOnRedisEngine(django.SessionMiddlewareTests):  # type: ignore[misc]
        def test_empty_session_saved(self) -> None:
            empty_session_saved(self, RedisStore)

        @classmethod
        def setUpClass(cls) -> None:
            if not _redis_answers():
                skip_or_fail("Redis is not reachable at REDIS_TEST_URL")
            super().setUpClass()
