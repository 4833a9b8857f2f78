"""Benchmark settings: the project's own, with the session stack chosen by BENCH_STACK.

bare: no middleware at all; db and cache: Django's engine with its (sync)
SessionMiddleware; live: this project's engine with LiveSessionMiddleware only
(on SQLite, or on PostgreSQL by DATABASE_URL); live-redis: the Redis engine;
site: the project's own middleware (CSRF included), as its server runs.
Every stack serves scripts.bench.urls, so the views are the same in each.
"""

from __future__ import annotations

import os

from asgi_config import settings as _site
from asgi_config.settings import *  # noqa: F403

_STOCK = ["django.contrib.sessions.middleware.SessionMiddleware"]
STACKS: dict[str, tuple[list[str], str]] = {
    "bare": ([], "django.contrib.sessions.backends.db"),
    "db": (_STOCK, "django.contrib.sessions.backends.db"),
    "cache": (_STOCK, "django.contrib.sessions.backends.cache"),
    "live": (["live.middleware.LiveSessionMiddleware"], "live.engine"),
    # With REDIS_URL set, the project's settings also choose the Redis channel layer.
    "live-redis": (["live.middleware.LiveSessionMiddleware"], "live.redis_engine"),
    # For load generators that set up as a browser does: the page sets the CSRF cookie.
    "site": (_site.MIDDLEWARE, _site.SESSION_ENGINE),
}
BENCH_STACK = os.environ.get("BENCH_STACK", "bare")
MIDDLEWARE, SESSION_ENGINE = STACKS[BENCH_STACK]
ROOT_URLCONF = "scripts.bench.urls"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
