"""The system checks: each misconfiguration reported once, with its ID."""

from __future__ import annotations

from typing import Any

import pytest

from live.checks import check_configuration


def ids() -> list[str]:
    return [error.id for error in check_configuration() if error.id]


def test_checks_pass_on_the_projects_settings() -> None:
    assert ids() == []


def test_checks_report_an_unsupported_database_url(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(settings.DATABASES["default"], "UNSUPPORTED_URL", "mysql")
    assert ids() == ["live.E001"]


def test_checks_report_a_live_engine_without_session_middleware(settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "Session" not in m]
    assert ids() == ["live.E002"]


def test_checks_accept_djangos_session_middleware(settings: Any) -> None:
    settings.MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware" if "Session" in m else m
        for m in settings.MIDDLEWARE
    ]
    assert ids() == []


def test_checks_report_a_missing_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}
    assert ids() == ["live.E003"]


def test_checks_report_the_redis_engine_without_redis_url(settings: Any) -> None:
    settings.SESSION_ENGINE = "live.redis_engine"
    settings.REDIS_URL = None
    assert ids() == ["live.E004"]


def test_checks_report_an_unknown_session_store(settings: Any) -> None:
    settings.SESSION_STORE = "mongo"
    assert ids() == ["live.E005"]


@pytest.mark.parametrize("previous", ["live.engine", "no.such.engine", "django.contrib"])
def test_checks_report_a_previous_engine_that_cannot_serve(settings: Any, previous: str) -> None:
    settings.LIVE_SESSIONS = {"PREVIOUS_ENGINE": previous}
    assert ids() == ["live.E006"]


def test_checks_accept_a_previous_django_engine(settings: Any) -> None:
    settings.LIVE_SESSIONS = {"PREVIOUS_ENGINE": "django.contrib.sessions.backends.db"}
    assert ids() == []
