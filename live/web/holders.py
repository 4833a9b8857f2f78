"""Who holds which session: a user's own sessions, and the staff list's users.

Ending a session by its digest deletes it and publishes `session.ended`, as a
logout does, so its tabs in every process say so at once; the browser that
held it keeps a cookie that names nothing. Nobody needs the key: the owner's
other browsers and staff name a session by its digest.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from live.realtime import presence
from live.realtime.routing import socket_url
from live.sessions import watched
from live.sessions.client import device
from live.sessions.keys import digest as digest_of
from live.sessions.keys import mask
from live.types import Summary
from live.web.views import is_htmx

logger = logging.getLogger(__name__)

MINE = "live/my_sessions.html"


# --- My sessions ------------------------------------------------------------------


def _own_digest(request: HttpRequest) -> str:
    key = request.session.session_key
    return digest_of(key) if key else ""


async def _mine(own_key: str | None, user_id: str) -> dict[str, Any]:
    """The context of the list: the user's sessions, this one first, or what cannot be seen."""
    own = digest_of(own_key) if own_key else ""
    rows = await watched.owned(user_id)
    listable = rows is not None
    if rows is None:
        # Django's own engines are read by key: this session is all there is to see.
        snapshot = await watched.read(own, own_key) if own else None
        rows = [Summary.of(snapshot, time.time())] if snapshot else []
    rows.sort(key=lambda row: row.digest != own)
    tabs = await presence.counts(row.digest for row in rows)
    return {
        "listable": listable,
        "engine": settings.SESSION_ENGINE,
        "sessions": [
            {
                **_row(row, tabs),
                "this": row.digest == own,
                "ip": row.ip,
            }
            for row in rows
        ],
        "others": sum(row.digest != own for row in rows),
    }


def _row(row: Summary, tabs: dict[str, int]) -> dict[str, Any]:
    return {
        "digest": row.digest,
        "masked_key": row.masked_key,
        "started": _when(row.started),
        "updated_at": _when(row.updated_at),
        "device": device(row.agent),
        "tabs": tabs.get(row.digest, 0),
    }


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, tz=UTC) if epoch else None


async def _answer(
    request: HttpRequest, user_id: str | None, notice: str = "", status: int = 200
) -> HttpResponse:
    context: dict[str, Any] = {"signed_in": user_id is not None, "notice": notice}
    if user_id is not None:
        context.update(await _mine(request.session.session_key, user_id))
        context["ws_url"] = socket_url("my-sessions")
    if is_htmx(request):
        # htmx's "refused, here is why" is 422: django-htmx's debug helper replaces the page on 404.
        status = 422 if status == 404 else status
        return render(request, f"{MINE}#my-session-list", context, status=status)
    return render(request, MINE, context, status=status)


async def render_my_sessions(own_key: str | None, user_id: str) -> str:
    """The list as pushed to an open "My sessions" page whenever a session changes."""
    context = {"signed_in": True, "notice": "", **await _mine(own_key, user_id)}
    return render_to_string(f"{MINE}#my-session-list", context)


async def _user_id(request: HttpRequest) -> str | None:
    user = await request.auser()
    return str(user.pk) if user.is_authenticated else None


@require_safe
@never_cache
async def my_sessions(request: HttpRequest) -> HttpResponse:
    return await _answer(request, await _user_id(request))


async def _end(session_digest: str, masked_key: str, by: str) -> bool:
    ended = await watched.end(session_digest)
    if ended:
        # One line, and no key: the masked form tells sessions apart.
        logger.info("Session %s ended by %s.", masked_key, by)
    return ended


@require_POST
async def end_mine(request: HttpRequest, digest: str) -> HttpResponse:
    """End one of the user's sessions; this one ends as a logout does."""
    user_id = await _user_id(request)
    if user_id is None:
        return await _answer(request, None, "Sign in to end your sessions.", 403)
    if digest == _own_digest(request):
        masked = mask(request.session.session_key or "")
        await request.session.aflush()
        logger.info("Session %s ended by its owner, from itself.", masked)
        return await _answer(request, None, "This session ended: you are signed out.")
    snapshot = await watched.read(digest, None)
    owner = snapshot.data.get(SESSION_KEY) if snapshot else None
    if snapshot is None or owner is None or str(owner) != user_id:
        return await _answer(request, user_id, "No session of yours has that id.", 404)
    if not await _end(digest, snapshot.masked_key, "its owner"):
        return await _answer(request, user_id, "That session had already ended.", 404)
    return await _answer(request, user_id, f"Session {snapshot.masked_key} ended.")


@require_POST
async def end_others(request: HttpRequest) -> HttpResponse:
    """End every session of the user but this one."""
    user_id = await _user_id(request)
    if user_id is None:
        return await _answer(request, None, "Sign in to end your sessions.", 403)
    own = _own_digest(request)
    rows = await watched.owned(user_id) or []
    ended = 0
    for row in rows:
        if row.digest != own and await _end(row.digest, row.masked_key, "its owner"):
            ended += 1
    notice = (
        f"Ended {ended} other session{'s' if ended != 1 else ''}."
        if ended
        else "There were no other sessions to end."
    )
    return await _answer(request, user_id, notice)
