"""The system checks: each misconfiguration reported once, with its ID."""

from __future__ import annotations

import sys
from typing import Any

import django
import pytest
from django.core.checks import run_checks

from live.checks import DJANGO_MIDDLEWARE, LIVE_MIDDLEWARE


def ids(tag: str = "live") -> list[str]:
    return [message.id for message in run_checks(tags=[tag]) if message.id]


def without(settings: Any, app: str) -> None:
    settings.INSTALLED_APPS = [name for name in settings.INSTALLED_APPS if name != app]


def test_checks_pass_on_the_projects_settings() -> None:
    assert ids() == []
    assert ids("dashboard") == []


def test_checks_report_an_unsupported_database_url(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(settings.DATABASES["default"], "UNSUPPORTED_URL", "mysql")
    assert ids("dashboard") == ["dashboard.E001"]
    assert ids() == []


def test_checks_report_an_unknown_session_store(settings: Any) -> None:
    settings.SESSION_STORE = "mongo"
    assert ids("dashboard") == ["dashboard.E002"]


def test_checks_report_a_redis_cluster_url_with_a_database_other_than_0(settings: Any) -> None:
    settings.REDIS_URL = "redis+cluster://127.0.0.1:7000/2"
    assert ids() == ["live.E016"]
    for fine in ("redis+cluster://127.0.0.1:7000", "rediss+cluster://c:7000/0", "redis://r/2"):
        settings.REDIS_URL = fine
        assert ids() == []


def test_checks_report_a_redis_cluster_without_a_redis_for_the_channel_layer(
    settings: Any,
) -> None:
    settings.REDIS_URL = "redis+cluster://127.0.0.1:7000"
    settings.CHANNELS_REDIS_URL = None
    assert ids("dashboard") == ["dashboard.E003"]
    settings.CHANNELS_REDIS_URL = "redis://127.0.0.1:6379/0"
    assert ids("dashboard") == []


def test_checks_report_a_missing_session_middleware(settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "Session" not in m]
    assert ids() == ["live.E002"]


def test_checks_accept_djangos_session_middleware(settings: Any) -> None:
    settings.MIDDLEWARE = [DJANGO_MIDDLEWARE if "Session" in m else m for m in settings.MIDDLEWARE]
    assert ids() == []


def test_checks_report_djangos_session_middleware_beside_the_live_one(settings: Any) -> None:
    settings.MIDDLEWARE = [DJANGO_MIDDLEWARE, *settings.MIDDLEWARE]
    assert LIVE_MIDDLEWARE in settings.MIDDLEWARE
    assert ids() == ["live.E007"]


def test_checks_report_a_missing_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}
    assert ids() == ["live.E003"]


def test_checks_name_the_layer_to_set_not_redis_url(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}
    (message,) = run_checks(tags=["live"])
    hint = message.hint or ""
    assert "live.layers.LocalChannelLayer" in hint and "REDIS_URL" not in hint


def test_checks_report_the_redis_engine_without_redis_url(settings: Any) -> None:
    settings.SESSION_ENGINE = "live.redis_engine"
    settings.REDIS_URL = None
    assert ids() == ["live.E004"]


@pytest.mark.parametrize("previous", ["live.engine", "no.such.engine", "django.contrib"])
def test_checks_report_a_previous_engine_that_cannot_serve(settings: Any, previous: str) -> None:
    settings.LIVE_SESSIONS = {"PREVIOUS_ENGINE": previous}
    assert ids() == ["live.E006"]


def test_checks_accept_a_previous_django_engine(settings: Any) -> None:
    settings.LIVE_SESSIONS = {"PREVIOUS_ENGINE": "django.contrib.sessions.backends.db"}
    assert ids() == []


@pytest.mark.parametrize(
    "engine",
    [
        "live.engine",
        "live.redis_engine",
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cached_db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.file",
        "django.contrib.sessions.backends.signed_cookies",
    ],
)
def test_checks_accept_the_engines_the_app_follows(settings: Any, engine: str) -> None:
    settings.SESSION_ENGINE = engine
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert ids() == []


@pytest.mark.parametrize("engine", ["no.such.engine", "django.contrib.sessions", "tests.settings"])
def test_checks_report_an_engine_the_app_cannot_follow(settings: Any, engine: str) -> None:
    settings.SESSION_ENGINE = engine
    assert ids() == ["live.E008"]


@pytest.mark.parametrize("name", ["RENDERER", "METRICS_RENDERER", "STAFF_RENDERER"])
@pytest.mark.parametrize(
    "path", ["live.web.rendering.no_such_renderer", "nodots", "live.checks.TAG"]
)
def test_checks_report_a_renderer_that_cannot_be_imported(
    settings: Any, name: str, path: str
) -> None:
    settings.LIVE_SESSIONS = {name: path}
    assert ids() == ["live.E009"]


@pytest.mark.parametrize("pattern", ["(unclosed", 42])
def test_checks_report_a_mask_that_is_not_a_regex(settings: Any, pattern: object) -> None:
    settings.LIVE_SESSIONS = {"MASK_KEYS": pattern}
    assert ids() == ["live.E015"]


def test_checks_report_socket_routes_that_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the next import of that name fail.
    monkeypatch.setitem(sys.modules, "live.realtime.routing", None)
    assert ids() == ["live.E010"]


def test_checks_warn_without_daphne(settings: Any) -> None:
    without(settings, "daphne")
    assert ids() == ["live.W001"]


def test_checks_report_a_missing_asgi_application(settings: Any) -> None:
    del settings.ASGI_APPLICATION
    assert ids() == ["live.E011"]
    (message,) = run_checks(tags=["live"])
    assert 'ASGI_APPLICATION = "asgi_config.asgi.application"' in (message.hint or "")


@pytest.mark.parametrize(
    ("app", "check_id"),
    [
        ("channels", "live.E012"),
        ("django_htmx", "live.E013"),
        pytest.param(
            "template_partials",
            "live.E014",
            marks=pytest.mark.skipif(django.VERSION >= (6, 0), reason="partials are built in"),
        ),
    ],
)
def test_checks_report_a_missing_app(settings: Any, app: str, check_id: str) -> None:
    without(settings, app)
    assert ids() == [check_id]
