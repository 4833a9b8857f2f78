"""What the page's partials need, built once for the HTTP views and the consumer alike."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.shortcuts import resolve_url
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from live.conf import is_reserved, setting, visible
from live.sessions import watched
from live.sessions.client import device
from live.sessions.codec import dumps
from live.types import Snapshot, Summary
from live.web import accounts
from live.web.durations import spoken
from live.web.masking import MASKED, Mask, watcher_mask

PAGE = "live/page.html"
STAFF_PAGE = "live/staff.html"
# Values longer than this are folded behind a <details> toggle.
FOLD_AT = 160

# The tab a change's source names: "POST /keys/ (tab x1wq)".
_TAB = re.compile(r"\(tab ([A-Za-z0-9-]+)\)$")

_JSON_TYPES = {
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    list: "list",
    dict: "object",
    type(None): "null",
}


@dataclass
class Row:
    key: str
    value: Any
    type: str
    pretty: str
    size: int
    masked: bool = False

    @property
    def folded(self) -> bool:
        return len(self.pretty) > FOLD_AT or "\n" in self.pretty

    @property
    def preview(self) -> str:
        if self.masked:
            return MASKED
        return json.dumps(self.value, ensure_ascii=False)[:FOLD_AT]

    @property
    def form_value(self) -> str:
        # What to put back in the form so that saving it stores the same value.
        if self.masked:
            return ""
        if isinstance(self.value, str) and self.value == _plain(self.value):
            return self.value
        return json.dumps(self.value, ensure_ascii=False)


def _plain(text: str) -> str:
    """The text itself if typing it would store this same string, else ''."""
    stripped = text.strip()
    if stripped != text or stripped[:1] in ('"', "[", "{"):
        return ""
    try:
        json.loads(stripped)
    except ValueError:
        return text
    return ""


def row(key: str, value: Any, mask: Mask | None = None) -> Row:
    """A key as the page shows it; with `mask`, a hidden key's value never reaches the row."""
    kind = _JSON_TYPES.get(type(value), type(value).__name__)
    size = len(dumps(value).encode())
    if mask is not None and mask.hides(key):
        return Row(key=key, value=MASKED, type=kind, pretty=MASKED, size=size, masked=True)
    return Row(
        key=key,
        value=value,
        type=kind,
        pretty=json.dumps(value, indent=2, ensure_ascii=False),
        size=size,
    )


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:59] + "…"


def timeline(history: list[dict[str, Any]], mask: Mask | None = None) -> list[dict[str, Any]]:
    """History entries as the page lists them: old -> new per key, and whether undo applies."""
    entries = []
    for item in history:
        lines = []
        for change in item["changes"]:
            if change["op"] == "cycle":
                lines.append({"key": "", "text": "session key cycled"})
                continue
            hidden = mask is not None and mask.hides(change["key"])
            old = (MASKED if hidden else _short(change["old"])) if "old" in change else "(none)"
            new = (
                (MASKED if hidden else _short(change["value"]))
                if change["op"] == "set"
                else "(deleted)"
            )
            lines.append({"key": change["key"], "text": f"{old} → {new}", "new": new})
        entries.append(
            {
                "version": item["version"],
                "at": datetime.fromtimestamp(item["ts"], tz=UTC),
                "source": item["source"],
                "lines": lines,
                "announce": announcement(lines, item["source"]),
                "undoable": any(
                    c["op"] != "cycle" and not is_reserved(c["key"]) for c in item["changes"]
                ),
            }
        )
    return entries


def announcement(lines: list[dict[str, str]], source: str) -> str:
    """One short sentence for a screen reader: "fruit set to "pear" by tab x1wq"."""
    if len(lines) == 1:
        line = lines[0]
        if not line["key"]:
            what = line["text"]
        elif line["new"] == "(deleted)":
            what = f"{line['key']} deleted"
        else:
            what = f"{line['key']} set to {line['new']}"
    else:
        what = f"{len(lines)} keys changed"
    tab = _TAB.search(source)
    return f"{what} by tab {tab.group(1)}" if tab else f"{what} by {source}"


def session_context(
    snapshot: Snapshot,
    tabs: int,
    history: list[dict[str, Any]] | None = None,
    mask: Mask | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    """The context of the page's live partials for one session at one version.

    The page and its pushes both come from here, so `mask` (someone else's
    session, as a staff watcher sees it) hides the same values in both.
    `username` is the signed-in user's name (live.web.accounts), looked up
    before, since rendering does no I/O.
    """
    data = snapshot.data
    rows = [row(key, data[key], mask) for key in sorted(visible(data))]
    reserved = [row(key, data[key], mask) for key in sorted(filter(is_reserved, data))]
    signed_in = snapshot.data.get("_auth_user_id")
    if signed_in is not None and mask is not None and mask.hides("_auth_user_id"):
        signed_in, username = MASKED, None
    expiry = snapshot.data.get("_session_expiry")
    browser_close = settings.SESSION_EXPIRE_AT_BROWSER_CLOSE if expiry is None else expiry == 0
    age = int((snapshot.expire_date - timezone.now()).total_seconds())
    return {
        "rows": rows,
        "reserved_rows": reserved,
        "timeline": timeline((history or [])[: setting("TIMELINE_SHOWN")], mask),
        "signed_in": signed_in,
        "username": username if signed_in is not None else None,
        "account": account_links(),
        "version": snapshot.version,
        "tabs": tabs,
        "meta": {
            "engine": settings.SESSION_ENGINE,
            # Django's own engines are watched, with their own guarantees (live.sessions.watched).
            "live_engine": watched.engine_is_live(),
            "guarantees": watched.guarantees(),
            "cookie_name": settings.SESSION_COOKIE_NAME,
            "masked_key": snapshot.masked_key,
            "expires_at": snapshot.expire_date,
            "expiry_age": max(age, 0),
            "expires_in": spoken(age),
            "browser_close": browser_close,
            "size_bytes": snapshot.size_bytes,
            "custom_expiry": expiry,
        },
    }


def account_links() -> dict[str, str]:
    """Where the account box points: the site's login and logout views, if it names them."""
    login, logout = setting("LOGIN_VIEW"), setting("LOGOUT_VIEW")
    return {
        "login": reverse(login) if login else "",
        "logout": reverse(logout) if logout else "",
        "login_page": resolve_url(settings.LOGIN_URL),
    }


# The partials that show a session's state: pushed on every change, and sent out
# of band with every write answer so that the acting tab is up to date even
# before (or without) its WebSocket push.
LIVE_FRAGMENTS = (
    "session-ended",
    "session-meta",
    "session-keys",
    "session-reserved",
    "session-history",
    "account",
)
_FRAGMENTS = {
    None: LIVE_FRAGMENTS,
    "tabs": ("live-tabs",),
    # The session ended and this browser holds no other: the notice, and the
    # page emptied, so nothing of the ended session stays on screen.
    "final": LIVE_FRAGMENTS,
}


async def render_live_fragments(
    snapshot: Snapshot | None,
    tabs: int,
    scope: dict[str, Any],
    only: str | None = None,
    history: list[dict[str, Any]] | None = None,
    labels: tuple[str, ...] = (),
) -> str:
    """Render the fragments pushed over the WebSocket: the page's own partials.

    `only` picks a subset: "tabs" (the tab count), "final" (the session
    ended, and the browser's cookie holds no other), or "paused" and "open"
    (the status line: pushes do not reach this process, or flow again).
    `labels` are the short names of the tabs open on this session, in every process.
    """
    shown = _Shown(
        snapshot.digest if snapshot else None,
        snapshot.version if snapshot else None,
        history[0]["version"] if history else None,
        snapshot,
        history,
    )
    read_only = bool(scope.get("live_read_only", False))
    # A read-only socket is a staff watcher's: someone else's session, masked.
    mask = watcher_mask() if read_only else None
    username = await accounts.username(snapshot) if snapshot and only is None else None
    return _render(shown, tabs, only, read_only, labels, mask, username)


@dataclass(frozen=True)
class _Shown:
    """A session at one version and timeline entry: equal for every tab that shows it."""

    digest: str | None
    version: int | None
    latest: int | None
    snapshot: Snapshot | None = field(compare=False)
    history: list[dict[str, Any]] | None = field(compare=False)


# A change reaches every tab of a session in this process one after the other,
# each with the same state at the same version, so it is rendered once and
# reused: a hundred tabs cost one render. The hub shows one event to all its
# tabs before the next, so a few entries cover every fan-out.
@lru_cache(maxsize=32)
def _render(
    shown: _Shown,
    tabs: int,
    only: str | None,
    read_only: bool,
    labels: tuple[str, ...],
    mask: Mask | None,
    username: str | None = None,
) -> str:
    if only in ("paused", "open"):
        return render_to_string("live/base.html#live-status", {"live_state": only})
    snapshot = shown.snapshot
    if snapshot is None and only == "final":
        snapshot = Snapshot(digest="", version=0, data={}, masked_key="", expires_at=time.time())
    context: dict[str, Any] = (
        session_context(snapshot, tabs, shown.history, mask, username)
        if snapshot
        else {"tabs": tabs}
    )
    if only == "final":
        context["ended"] = only
    context["tab_labels"] = labels
    context["read_only"] = read_only
    return "".join(render_to_string(f"{PAGE}#{name}", context) for name in _FRAGMENTS[only])


def staff_rows(rows: list[Summary], tabs: dict[str, int]) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "digest": row.digest,
            "masked_key": row.masked_key,
            "keys": row.keys,
            "size_bytes": row.size_bytes,
            "version": row.version,
            "tabs": tabs.get(row.digest, 0),
            "updated_at": datetime.fromtimestamp(row.updated_at, tz=UTC),
            "expires_in": int(row.expires_at - now),
            "user": row.username or ("(unknown user)" if row.user_id else ""),
            "device": device(row.agent),
            "expires_in_text": spoken(row.expires_at - now),
        }
        for row in rows
    ]


def render_staff_list(rows: list[Summary], tabs: dict[str, int]) -> str:
    """The staff list fragment, pushed whenever any session changes."""
    context = {"sessions": staff_rows(rows, tabs), "listable": watched.engine_is_live()}
    return render_to_string(f"{STAFF_PAGE}#session-list", context)
