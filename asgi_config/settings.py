"""Settings for the live session dashboard, read from the environment once."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import django
from csp.constants import NONCE, NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _sqlite(path: Path | str) -> dict[str, object]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # WAL lets readers run beside the one writer; IMMEDIATE takes the
        # write lock at BEGIN, so the merge never upgrades a read lock and
        # deadlocks into "database is locked".
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # A file, not :memory:, so that servers started by tests can share it.
        "TEST": {"NAME": str(path) + "-test"},
    }


def _database(url: str | None) -> dict[str, object]:
    """Turn DATABASE_URL into a DATABASES entry; SQLite when unset."""
    if not url:
        return _sqlite(BASE_DIR / "db.sqlite3")
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 0,
            "TEST": {"NAME": "test_live_sessions"},
        }
    if parsed.scheme == "sqlite":
        return _sqlite(unquote(parsed.path))
    # Left for the system check dashboard.E001 to report with a hint.
    return {"ENGINE": "django.db.backends.dummy", "UNSUPPORTED_URL": parsed.scheme}


DEBUG = _env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    # Only for local use: the deploy check (security.W009) flags it.
    "django-insecure-local-dashboard-only-change-me-in-production",
)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if h.strip()
]
REDIS_URL = os.environ.get("REDIS_URL") or None
# The channel layer's Redis: REDIS_URL, unless that names a Redis Cluster
# (redis+cluster://), which channels-redis cannot use; then CHANNELS_REDIS_URL,
# a single Redis (the system check dashboard.E003 asks for it).
CHANNELS_REDIS_URL = os.environ.get("CHANNELS_REDIS_URL") or (
    REDIS_URL if REDIS_URL and "+cluster://" not in REDIS_URL else None
)
DATABASE_URL = os.environ.get("DATABASE_URL") or None
# Where sessions live: "db" (DATABASE_URL, live.engine) or "redis" (REDIS_URL,
# live.redis_engine); "django-db" and the like pick one of Django's own engines,
# which the app watches. The system checks report a value they cannot honour.
SESSION_STORE = (os.environ.get("SESSION_STORE") or "db").strip().lower()
SESSION_STORES = {
    "db": "live.engine",
    "redis": "live.redis_engine",
    **{
        f"django-{name}": f"django.contrib.sessions.backends.{name}"
        for name in ("db", "cached_db", "cache", "file", "signed_cookies")
    },
}

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    # Partials: built into Django 6; django-template-partials on 5.2.
    *(["template_partials"] if django.VERSION < (6, 0) else []),
    "csp",
    "live",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "dashboard.security.ContentSecurityPolicyMiddleware",
    "live.middleware.LiveSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "asgi_config.urls"
ASGI_APPLICATION = "asgi_config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.security.csp_nonce",
            ],
        },
    },
]

DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_ENGINE = SESSION_STORES.get(SESSION_STORE, "live.engine")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

if CHANNELS_REDIS_URL:
    from redis.maint_notifications import MaintNotificationsConfig

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Short waits when Redis hangs or is unreachable (a stopped one
            # refuses at once): the push is skipped, the write goes on, and
            # tabs resync once pushes flow again (see live.realtime.probe).
            # Maintenance notifications off: with them on, redis-py skips its
            # check of pooled connections, and a restart's dead ones fail once.
            "CONFIG": {
                "hosts": [
                    {
                        "address": CHANNELS_REDIS_URL,
                        "socket_connect_timeout": 2,
                        "socket_timeout": 2,
                        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
                    }
                ]
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "live.layers.LocalChannelLayer",
            # Each process's hub listens on one channel for every session its
            # tabs follow; the in-memory layer's default of 100 queued events
            # drops pushes under a burst of writes, and a dropped push costs
            # that session's tabs a resync.
            "CONFIG": {"capacity": 1000, "expiry": 60},
        }
    }

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"live": {"handlers": ["console"], "level": "INFO"}},
}
# Scripts only from here and with this response's nonce; no inline styles,
# no plugins, no framing, forms and sockets to this origin only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_SSL_REDIRECT = _env_bool("DJANGO_SSL_REDIRECT", True)
# X-Forwarded-Proto is trusted only behind a proxy that sets it (and strips a
# client's own): any client could otherwise claim HTTPS for a plain request.
if _env_bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Origins trusted for CSRF and for sockets besides the site's own, as a proxy
# that serves the site under another origin needs (comma-separated).
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("DJANGO_TRUSTED_ORIGINS", "").split(",")
    if origin.strip()
]

CSRF_FAILURE_VIEW = "live.web.api.csrf_failure"

# Messages in a cookie, so that a redirect's notice is not a session write.
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"

# Limits and knobs of the live session engine; defaults live in live/conf.py.
LIVE_SESSIONS: dict[str, object] = {
    # The demo's own login and logout views, so the page's account box can log in and out.
    "LOGIN_VIEW": "login",
    "LOGOUT_VIEW": "logout",
}
