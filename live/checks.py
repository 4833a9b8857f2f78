"""System checks for a project that installs the app: an ID and a hint each, never a crash.

Each concern is one small function, registered under the tag "live", so that
`manage.py check --tag live` runs them alone.
"""

from __future__ import annotations

import re
from importlib import import_module
from typing import Any
from urllib.parse import urlparse

import django
from django.apps import apps
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from live.conf import DEFAULTS, setting

TAG = "live"
LIVE_MIDDLEWARE = "live.middleware.LiveSessionMiddleware"
DJANGO_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
RENDERERS = ("RENDERER", "METRICS_RENDERER", "STAFF_RENDERER")
# A SessionStore that is, or subclasses, one of these is an engine the app can follow.
FOLLOWED = {
    "live.sessions.base.LiveSessionBase",
    *(
        f"django.contrib.sessions.backends.{name}.SessionStore"
        for name in ("db", "cached_db", "cache", "file", "signed_cookies")
    ),
}
ENGINE_HINT = (
    'Set SESSION_ENGINE = "live.engine" (or "live.redis_engine"), or one of Django\'s: '
    '"django.contrib.sessions.backends.db", ".cached_db", ".cache", ".file" or ".signed_cookies".'
)
# The apps the app needs installed: (app, why, hint, check ID).
REQUIRED_APPS = [
    ("channels", "the live sockets run on it", 'Add "channels" to INSTALLED_APPS.', "live.E012"),
    (
        "django_htmx",
        "the page loads htmx with its {% htmx_script %} tag",
        'Add "django_htmx" to INSTALLED_APPS.',
        "live.E013",
    ),
]
if django.VERSION < (6, 0):
    REQUIRED_APPS.append(
        (
            "template_partials",
            "the page's fragments are its {% partialdef %} blocks",
            'Add "template_partials" to INSTALLED_APPS, or use Django 6, which has partials '
            "built in.",
            "live.E014",
        )
    )


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@register(TAG)
def check_apps(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if not apps.is_installed("daphne"):
        problems.append(
            Warning(
                '"daphne" is not in INSTALLED_APPS, so runserver serves no WebSockets: '
                "pages load, but their live updates never arrive.",
                hint='Add "daphne" first in INSTALLED_APPS, or serve the project with '
                "daphne <project>.asgi:application.",
                id="live.W001",
            )
        )
    if not getattr(settings, "ASGI_APPLICATION", None):
        project = getattr(settings, "ROOT_URLCONF", "").rpartition(".")[0] or "<project>"
        problems.append(
            Error(
                "ASGI_APPLICATION is not set, so the live sockets are not served.",
                hint=f'Set ASGI_APPLICATION = "{project}.asgi.application", and in '
                f"{project}/asgi.py: application = live_application(get_asgi_application()), "
                "with live_application from live.asgi.",
                id="live.E011",
            )
        )
    for app, why, hint, check_id in REQUIRED_APPS:
        if not apps.is_installed(app):
            message = f'"{app}" is not in INSTALLED_APPS: {why}.'
            problems.append(Error(message, hint=hint, id=check_id))
    return problems


def _session_middlewares() -> tuple[bool, bool]:
    """Whether MIDDLEWARE holds the live session middleware, and Django's own (or subclasses)."""
    from live.http.middleware import LiveSessionMiddleware

    live = django_own = False
    for path in settings.MIDDLEWARE:
        try:
            found = import_string(path)
        except Exception:  # Django reports a middleware it cannot load; not this check's to say.
            continue
        if not isinstance(found, type) or not issubclass(found, SessionMiddleware):
            continue
        if issubclass(found, LiveSessionMiddleware):
            live = True
        else:
            django_own = True
    return live, django_own


@register(TAG)
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    live, django_own = _session_middlewares()
    if not live and not django_own:
        return [
            Error(
                "No session middleware is installed.",
                hint=f"Add '{LIVE_MIDDLEWARE}' to MIDDLEWARE.",
                id="live.E002",
            )
        ]
    if live and django_own:
        return [
            Error(
                "MIDDLEWARE holds both Django's SessionMiddleware and the live one, so each "
                "request loads and saves its session twice.",
                hint=f"Remove '{DJANGO_MIDDLEWARE}' from MIDDLEWARE; '{LIVE_MIDDLEWARE}' "
                "takes its place.",
                id="live.E007",
            )
        ]
    return []


@register(TAG)
def check_engine(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    engine = settings.SESSION_ENGINE
    try:
        store = import_module(engine).SessionStore
    except Exception as exc:  # reported, whatever the engine's module raised
        return [
            Error(
                f"SESSION_ENGINE {engine!r} cannot be imported: {exc}.",
                hint=ENGINE_HINT,
                id="live.E008",
            )
        ]
    lineage = {_dotted(cls) for cls in store.__mro__} if isinstance(store, type) else set()
    if not lineage & FOLLOWED:
        return [
            Error(
                f"SESSION_ENGINE {engine!r} is not an engine the live dashboard can follow.",
                hint=ENGINE_HINT,
                id="live.E008",
            )
        ]
    # The Redis engine, and the tab counts shared between processes, read REDIS_URL.
    if "live.sessions.redis.SessionStore" in lineage and not getattr(settings, "REDIS_URL", None):
        return [
            Error(
                "Sessions are to be kept in Redis, but REDIS_URL is not set.",
                hint='Set REDIS_URL = "redis://host:6379/0", or SESSION_ENGINE = "live.engine" '
                "to keep sessions in the database.",
                id="live.E004",
            )
        ]
    return _previous_engine()


def _previous_engine() -> list[CheckMessage]:
    previous = setting("PREVIOUS_ENGINE")
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


@register(TAG)
def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if "default" in getattr(settings, "CHANNEL_LAYERS", {}):
        return []
    return [
        Error(
            "CHANNEL_LAYERS has no 'default' layer, so changes cannot be pushed.",
            hint='For one process, set CHANNEL_LAYERS = {"default": {"BACKEND": '
            '"live.layers.LocalChannelLayer"}}; for several, use channels_redis\'s '
            '"channels_redis.pubsub.RedisPubSubChannelLayer" with your Redis in its CONFIG.',
            id="live.E003",
        )
    ]


@register(TAG)
def check_renderers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    for name in RENDERERS:
        path = setting(name)
        try:
            found = import_string(path)
        except Exception as exc:  # a bad path, or a module that fails as it loads
            reason = f"cannot be imported: {exc}"
        else:
            if callable(found):
                continue
            reason = "is not callable"
        problems.append(
            Error(
                f"LIVE_SESSIONS[{name!r}] ({path!r}) {reason}.",
                hint=f"Set it to the dotted path of a callable, such as {DEFAULTS[name]!r}, "
                "or remove it to use that default.",
                id="live.E009",
            )
        )
    return problems


@register(TAG)
def check_mask(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        re.compile(setting("MASK_KEYS") or "")
    except (re.error, TypeError) as exc:
        return [
            Error(
                f"LIVE_SESSIONS['MASK_KEYS'] is not a regular expression: {exc}.",
                hint=f"Set it to a regex searched in key names, such as {DEFAULTS['MASK_KEYS']!r}.",
                id="live.E015",
            )
        ]
    return []


@register(TAG)
def check_redis_cluster(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # A cluster has database 0 only; redis-py refuses to make a client for another.
    parsed = urlparse(str(getattr(settings, "REDIS_URL", None) or ""))
    if parsed.scheme.endswith("+cluster") and parsed.path.strip("/") not in ("", "0"):
        return [
            Error(
                f"REDIS_URL names a Redis Cluster with the database {parsed.path.strip('/')!r}.",
                hint="A Redis Cluster has only database 0: end REDIS_URL with /0 or the port.",
                id="live.E016",
            )
        ]
    return []


@register(TAG)
def check_routes(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        import_module("live.realtime.routing")
    except Exception as exc:  # whatever stops the routes from loading stops every socket
        return [
            Error(
                f"The socket routes (live.realtime.routing) cannot be imported: {exc!r}.",
                hint="Install the app with its dependencies (pip install django-live-sessions), "
                'then run python -c "import live.realtime.routing" for the full traceback.',
                id="live.E010",
            )
        ]
    return []
