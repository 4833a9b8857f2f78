"""System checks for a misconfigured live engine: an ID and a hint each, never a crash."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register()
def check_configuration(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    problems: list[Error] = []
    db = settings.DATABASES.get("default", {})
    if "UNSUPPORTED_URL" in db:
        problems.append(
            Error(
                f"DATABASE_URL has the unsupported scheme {db['UNSUPPORTED_URL']!r}.",
                hint="Use postgres://user:password@host:port/name, sqlite:///path, or unset it.",
                id="live.E001",
            )
        )
    if settings.SESSION_ENGINE.startswith("live.") and (
        "live.middleware.LiveSessionMiddleware" not in settings.MIDDLEWARE
        and "django.contrib.sessions.middleware.SessionMiddleware" not in settings.MIDDLEWARE
    ):
        problems.append(
            Error(
                "No session middleware is installed.",
                hint="Add 'live.middleware.LiveSessionMiddleware' to MIDDLEWARE.",
                id="live.E002",
            )
        )
    store = getattr(settings, "SESSION_STORE", "db")
    if store not in ("db", "redis"):
        problems.append(
            Error(
                f"SESSION_STORE has the unknown value {store!r}.",
                hint="Use SESSION_STORE=db (the database) or SESSION_STORE=redis, or unset it.",
                id="live.E005",
            )
        )
    uses_redis = store == "redis" or settings.SESSION_ENGINE == "live.redis_engine"
    if uses_redis and not getattr(settings, "REDIS_URL", None):
        problems.append(
            Error(
                "Sessions are to be kept in Redis, but REDIS_URL is not set.",
                hint="Set REDIS_URL=redis://host:6379/0, or unset SESSION_STORE to keep "
                "sessions in the database.",
                id="live.E004",
            )
        )
    layers = getattr(settings, "CHANNEL_LAYERS", {})
    if "default" not in layers:
        problems.append(
            Error(
                "CHANNEL_LAYERS has no 'default' layer, so changes cannot be pushed.",
                hint="Set REDIS_URL, or configure live.layers.LocalChannelLayer.",
                id="live.E003",
            )
        )
    problems.extend(_previous_engine())
    return problems


def _previous_engine() -> list[Error]:
    previous = (getattr(settings, "LIVE_SESSIONS", None) or {}).get("PREVIOUS_ENGINE")
    if not previous:
        return []
    if previous.startswith("live."):
        return [
            Error(
                f"LIVE_SESSIONS['PREVIOUS_ENGINE'] names a live engine ({previous!r}).",
                hint="Name the engine the project used before, such as "
                "'django.contrib.sessions.backends.db', or remove the setting.",
                id="live.E006",
            )
        ]
    try:
        import_module(previous).SessionStore  # noqa: B018
    except (ImportError, AttributeError) as exc:
        return [
            Error(
                f"LIVE_SESSIONS['PREVIOUS_ENGINE'] cannot be imported: {exc}.",
                hint="Name a session engine module, such as "
                "'django.contrib.sessions.backends.db', or remove the setting.",
                id="live.E006",
            )
        ]
    return []
