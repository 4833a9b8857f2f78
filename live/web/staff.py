"""Staff pages: every live session, and one of them watched read-only."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from live.realtime import presence
from live.realtime.routing import socket_url
from live.sessions import watched
from live.web.masking import watcher_mask
from live.web.rendering import PAGE, STAFF_PAGE, session_context, staff_rows

FORBIDDEN = "live/forbidden.html"


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
    rows = await watched.summaries()
    tabs = await presence.counts(row.digest for row in rows)
    context = {
        "sessions": staff_rows(rows, tabs),
        "ws_url": socket_url("staff-list"),
        "listable": watched.engine_is_live(),
    }
    return render(request, STAFF_PAGE, context)


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
    context = session_context(snapshot, await presence.count(digest), history, watcher_mask())
    context.update(read_only=True, ws_url=socket_url("staff-watch", digest=digest))
    return render(request, PAGE, context)
