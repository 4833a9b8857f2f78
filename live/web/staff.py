"""Staff pages: every live session, and one of them watched read-only."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from live.realtime import presence
from live.realtime.routing import socket_url
from live.sessions import watched
from live.web import accounts
from live.web.listing import staff_filters, staff_list
from live.web.masking import watcher_mask
from live.web.rendering import PAGE, STAFF_PAGE, session_context, staff_rows
from live.web.views import is_htmx

FORBIDDEN = "live/forbidden.html"

logger = logging.getLogger(__name__)


async def _refused(request: HttpRequest) -> HttpResponse | None:
    """A 403 page that says why and how to sign in, unless the user is staff.

    Answered rather than raised: a raised PermissionDenied would render Django's
    bare 403 page, and Django logs the refusal in one line either way.
    """
    user = await request.auser()
    if user.is_staff:
        return None
    reason = "Only staff users may see other sessions."
    return render(request, FORBIDDEN, {"reason": reason, "user": user}, status=403)


@require_safe
@never_cache
async def sessions(request: HttpRequest) -> HttpResponse:
    if refusal := await _refused(request):
        return refusal
    filters = staff_filters(request.META.get("QUERY_STRING", ""))
    return render(request, STAFF_PAGE, await _list_context(filters))


async def _list_context(filters: dict[str, str], notice: str = "") -> dict[str, Any]:
    rows, tabs = await staff_list(filters)
    query = urlencode({name: value for name, value in filters.items() if value})
    return {
        "sessions": staff_rows(rows, tabs),
        # The socket keeps the filters, so its refreshes list what the page does.
        "ws_url": socket_url("staff-list") + (f"?{query}" if query else ""),
        "listable": watched.engine_is_live(),
        "filters": filters,
        "notice": notice,
    }


@require_POST
async def end(request: HttpRequest, digest: str) -> HttpResponse:
    """End anyone's session: deleted, and its tabs in every process told, as by a logout."""
    if refusal := await _refused(request):
        return refusal
    snapshot = await watched.read(digest, None)
    if snapshot is not None and await watched.end(digest):
        # One line, without the key: the masked form tells sessions apart.
        staff = (await request.auser()).get_username()
        logger.info("Session %s ended by staff user %s.", snapshot.masked_key, staff)
        notice, status = f"Session {snapshot.masked_key} ended.", 200
    else:
        notice, status = "No live session has that id; it may have ended already.", 404
    context = await _list_context(staff_filters(request.POST.urlencode()), notice)
    if not is_htmx(request):
        return render(request, STAFF_PAGE, context, status=status)
    # The list updated in place, and the sentence beside it; 422 as htmx's refusal.
    html = "".join(
        render(request, f"{STAFF_PAGE}#{name}", {**context, "oob": True}).content.decode()
        for name in ("session-list", "staff-notice")
    )
    return HttpResponse(html, status=422 if status == 404 else status)


@require_safe
@never_cache
async def watch(request: HttpRequest, digest: str) -> HttpResponse:
    if refusal := await _refused(request):
        return refusal
    # Through the configured engine, as the watching socket reads it. Django's
    # own engines are read by key, which staff do not hold: nothing to watch.
    snapshot = await watched.read(digest, None)
    if snapshot is None:
        raise Http404("No live session has that id.")
    history = await watched.history(digest)
    # Someone else's session: the values of secret-looking keys stay masked.
    # The owner's name, from the session itself, never the watcher's.
    name = await accounts.username(snapshot)
    context = session_context(snapshot, await presence.count(digest), history, watcher_mask(), name)
    context.update(read_only=True, ws_url=socket_url("staff-watch", digest=digest))
    return render(request, PAGE, context)
