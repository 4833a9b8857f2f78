"""System checks for this site's own settings: the environment asgi_config/settings.py reads."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

TAG = "dashboard"


@register(TAG)
def check_environment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    db = settings.DATABASES.get("default", {})
    if "UNSUPPORTED_URL" in db:
        problems.append(
            Error(
                f"DATABASE_URL has the unsupported scheme {db['UNSUPPORTED_URL']!r}.",
                hint="Use postgres://user:password@host:port/name, sqlite:///path, or unset it.",
                id="dashboard.E001",
            )
        )
    store = getattr(settings, "SESSION_STORE", "db")
    stores = settings.SESSION_STORES
    if store not in stores:
        problems.append(
            Error(
                f"SESSION_STORE has the unknown value {store!r}.",
                hint=f"Use one of {', '.join(stores)}, or unset it.",
                id="dashboard.E002",
            )
        )
    redis_url = getattr(settings, "REDIS_URL", None) or ""
    if "+cluster://" in redis_url and not getattr(settings, "CHANNELS_REDIS_URL", None):
        problems.append(
            Error(
                "REDIS_URL names a Redis Cluster, which the channel layer (channels-redis) "
                "cannot use.",
                hint="Set CHANNELS_REDIS_URL=redis://host:6379/0 as well: a single Redis for "
                "the pushes between processes.",
                id="dashboard.E003",
            )
        )
    # SESSION_STORE=redis picks live.redis_engine, so a missing REDIS_URL is the
    # app's check live.E004, reported once, there.
    return problems
