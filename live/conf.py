"""One place for the live engine's defaults, read through `setting()`."""

from __future__ import annotations

import re
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Validation limits shared by every write path.
    "MAX_KEY_LENGTH": 128,
    "MAX_VALUE_BYTES": 64 * 1024,
    "MAX_SESSION_BYTES": 1024 * 1024,
    "MAX_DEPTH": 32,
    # Per-key versions of deleted keys are kept so that If-Match can still
    # detect "deleted after the version you saw"; this bounds them.
    "MAX_TOMBSTONES": 256,
    # Writes per second to one session, and the burst allowed above that rate.
    "WRITE_RATE": 500,
    "WRITE_BURST": 2000,
    # Writes to one session that run at once in a process, and how many more
    # may wait their turn before the next is refused (see live.limits).
    "WRITES_IN_FLIGHT": 4,
    "WRITES_QUEUED": 2000,
    # Seconds a write may wait for its turn before it is refused with 429: as
    # long as a burst of writes to one session takes to be served in turn.
    "WRITE_WAIT": 10.0,
    # Open sockets (tabs) per session, and the largest message a socket may send.
    "MAX_TABS": 200,
    "MAX_MESSAGE_BYTES": 4096,
    # Timeline entries kept per session, and how many the page shows.
    "HISTORY_LENGTH": 50,
    "TIMELINE_SHOWN": 20,
    # Run SQLite statements on the event loop when no other process holds the lock.
    "SQLITE_ON_LOOP": True,
    # Threads (each with one connection) for async database work; SQLite uses one.
    "DB_THREADS": 8,
    # PostgreSQL connections of the event loop's own, for reading sessions
    # (live.sessions.pg_loop); 0 sends those reads to the threads too.
    "PG_LOOP_CONNECTIONS": 8,
    # Which connections async database work uses: "own" (the engine's threads,
    # SQLite on the loop, PostgreSQL reads on the loop's own connections),
    # "django" (Django's connection, thread-sensitive, as Django's engines do),
    # or "auto": "django" while Django's test environment is set up, so
    # django.test.TestCase's transaction is seen.
    "CONNECTIONS": "auto",
    # Dotted path of the engine the project used before (say
    # "django.contrib.sessions.backends.db"): a cookie the live engine does not
    # know is looked up there once and its session adopted under the same key.
    "PREVIOUS_ENGINE": None,
    # URL names of the site's own login and logout views: the page's account
    # box then posts to them, so logins can be watched from the page itself.
    "LOGIN_VIEW": None,
    "LOGOUT_VIEW": None,
    # Dotted path of a callable(snapshot, tabs, scope, only, history, labels=...)
    # -> str that renders the HTML fragments pushed to htmx tabs. For a staff
    # watcher scope["live_read_only"] is True, and values are masked as below
    # (live.web.rendering.session_context with live.web.masking.watcher_mask()).
    "RENDERER": "live.web.rendering.render_live_fragments",
    # Dotted path of a callable(live.metrics.Snapshot) -> str for the /metrics/ charts.
    "METRICS_RENDERER": "live.web.charts.render_metrics",
    # Dotted path of a callable(summaries, tabs) -> str for the staff list.
    "STAFF_RENDERER": "live.web.rendering.render_staff_list",
    # Staff who watch someone else's session see the values of these keys as
    # "••••••" (type and size kept), in the page and in its pushes: a regex
    # searched in each key name, case-insensitively by default. The default
    # catches passwords, secrets, tokens, keys, hashes (Django's _auth_user_hash
    # is masked whatever this says), CSRF values, one-time codes, credentials,
    # signatures and cookies. A session's own page always shows every value.
    "MASK_KEYS": r"(?i)(pass|pwd|secret|token|key|hash|csrf|otp|credential|signature|cookie)",
    # False shows staff every value, for local development.
    "MASK_VALUES": True,
    # Keep each session's user agent and IP address (personal data) in its
    # reserved keys _live_agent and _live_ip, for "My sessions" and the staff
    # list (live.sessions.client). Off: neither is stored, and a session loses
    # them at its next request.
    "RECORD_CLIENT": False,
    # The META name of a header the site's own proxy sets to the client's
    # address, such as "HTTP_X_FORWARDED_FOR" (its last entry counts); None
    # trusts no header and records REMOTE_ADDR.
    "CLIENT_IP_HEADER": None,
}


# Read on every write, several times: reading Django's settings object each
# time showed up in profiles. Tests that override LIVE_SESSIONS empty it.
_resolved: dict[str, Any] = {}


def setting(name: str) -> Any:
    """Return LIVE_SESSIONS[name] from the project settings, or its default."""
    try:
        return _resolved[name]
    except KeyError:
        overrides = getattr(settings, "LIVE_SESSIONS", {}) or {}
        value = _resolved[name] = overrides.get(name, DEFAULTS[name])
        return value


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == "LIVE_SESSIONS":
        _resolved.clear()


setting_changed.connect(_forget)


def session_store() -> Any:
    """The configured engine's SessionStore class: live.engine, live.redis_engine or alike.

    Code that holds no request (the hub, the staff list, the metrics sampler)
    reads sessions through it, so it sees what requests see.
    """
    return import_module(settings.SESSION_ENGINE).SessionStore


def is_reserved(key: str) -> bool:
    """Keys starting with an underscore belong to Django (auth, expiry, messages)."""
    return key.startswith("_")


def visible(data: dict[str, Any]) -> dict[str, Any]:
    """The keys a user may see and edit: every key but Django's own."""
    return {key: value for key, value in data.items() if not is_reserved(key)}


TAB_LABEL = re.compile(r"^[A-Za-z0-9-]{1,16}$")


def tab_label(text: str | None) -> str:
    """The short name a tab gives itself (?tab=x1wq or X-Live-Tab), if it is a plain one."""
    return text if text and TAB_LABEL.match(text) else ""
