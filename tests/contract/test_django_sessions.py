"""Django's own session tests (SessionTestsMixin, SessionMiddlewareTests) on the live engines.

They come from the source distribution of the installed Django (see
django_source.py), run unchanged, one TestCase per engine, exactly as Django
runs them against its own backends.
"""

from __future__ import annotations

import os

import redis
from django.conf import settings
from django.test import TestCase, override_settings

from live.sessions.db import SessionStore as DatabaseStore
from live.sessions.redis import SessionStore as RedisStore
from tests.conftest import skip_or_fail

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "")


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

    class TestDatabaseEngine(django.SessionTestsMixin, TestCase):  # type: ignore[misc]
        backend = DatabaseStore

    @override_settings(SESSION_ENGINE="live.engine")
    class TestMiddlewareOnDatabaseEngine(django.SessionMiddlewareTests):  # type: ignore[misc]
        pass

    @override_settings(REDIS_URL=REDIS_TEST_URL)
    class TestRedisEngine(django.SessionTestsMixin, TestCase):  # type: ignore[misc]
        backend = RedisStore

        @classmethod
        def setUpClass(cls) -> None:
            if not _redis_answers():
                skip_or_fail("Redis is not reachable at REDIS_TEST_URL")
            super().setUpClass()

    @override_settings(REDIS_URL=REDIS_TEST_URL, SESSION_ENGINE="live.redis_engine")
    class TestMiddlewareOnRedisEngine(django.SessionMiddlewareTests):  # type: ignore[misc]
        @classmethod
        def setUpClass(cls) -> None:
            if not _redis_answers():
                skip_or_fail("Redis is not reachable at REDIS_TEST_URL")
            super().setUpClass()
