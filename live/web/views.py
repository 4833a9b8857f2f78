"""The page and its forms. htmx requests get partials; plain posts redirect back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from live.realtime import presence
from live.realtime.routing import socket_url
from live.sessions import watched
from live.types import Conflict
from live.web import accounts, actions
from live.web.rendering import LIVE_FRAGMENTS, PAGE, session_context
from live.web.validation import (
    Invalid,
    check_key,
    parse_expiry,
    parse_form_value,
    parse_undo,
    parse_version,
)


def is_htmx(request: HttpRequest) -> bool:
    """Whether htmx sent the request: read from its header, so no middleware is needed."""
    return request.headers.get("HX-Request") == "true"


async def _context(request: HttpRequest, create: bool = False, **extra: Any) -> dict[str, Any]:
    # Only the page itself starts a session: after a flush or a logout the
    # answer shows the empty state and, as Django's, stores nothing.
    if create:
        await actions.ensure(request.session)
    snapshot = await watched.snapshot(request.session)
    history = await watched.history(snapshot.digest)
    # The name comes from the session, as in its pushes: the page and every
    # push agree on who is signed in.
    name = await accounts.username(snapshot)
    context = session_context(snapshot, await presence.count(snapshot.digest), history, None, name)
    context["ws_url"] = socket_url("session")
    context.update(extra)
    return context


@require_safe
@never_cache
async def page(request: HttpRequest) -> HttpResponse:
    edit = request.GET.get("edit")
    form = {"key": "", "value": ""}
    context = await _context(request, create=True)
    if edit is not None:
        found = next((r for r in context["rows"] if r.key == edit), None)
        if found:
            form = {"key": found.key, "value": found.form_value}
    context["form"] = form
    context["form_version"] = context["version"]
    if is_htmx(request) and edit is not None:
        return render(request, f"{PAGE}#editor", context)
    return render(request, PAGE, context)


def _literal_of(raw: str) -> str:
    """What the form's text stores, spelled as the other side of a conflict is."""
    try:
        return actions.literal(parse_form_value(raw))
    except Invalid:
        return raw


async def respond(
    request: HttpRequest,
    run: Callable[[], Awaitable[str]],
    form: dict[str, str] | None = None,
) -> HttpResponse:
    """Parse and act through `run`; answer htmx with partials, others with a redirect or a page."""
    status, call, error, conflict = 200, "", "", None
    try:
        call = await run()
    except Invalid as exc:
        status, error = exc.status, exc.message
    except Conflict as exc:
        status, error = 409, str(exc)
        conflict = {
            "key": exc.key,
            "theirs": actions.literal(exc.current),
            "mine": _literal_of(form["value"]) if form else "",
        }
    context = await _context(
        request,
        call=call,
        error=error,
        conflict=conflict,
        form=form if error else {"key": "", "value": ""},
    )
    context["form_version"] = context["version"]
    if is_htmx(request):
        # htmx's convention for "refused, here is why": 422, which django-htmx's
        # debug helper leaves alone (it replaces the page on 400 and 404).
        if status in (400, 404):
            status = 422
        context["oob"] = True
        parts = ("editor", *LIVE_FRAGMENTS)
        html = "".join(render(request, f"{PAGE}#{n}", context).content.decode() for n in parts)
        return HttpResponse(html, status=status)
    if error:
        return render(request, PAGE, context, status=status)
    messages.success(request, call)
    return HttpResponseRedirect("/")


@require_POST
async def set_key(request: HttpRequest) -> HttpResponse:
    key, raw = request.POST.get("key", ""), request.POST.get("value", "")
    seen = parse_version(request.POST.get("version"))

    async def run() -> str:
        value = parse_form_value(raw)
        return await actions.set_key(request.session, check_key(key), value, seen)

    return await respond(request, run, form={"key": key, "value": raw})


@require_POST
async def delete_key(request: HttpRequest) -> HttpResponse:
    key = request.POST.get("key", "")

    async def run() -> str:
        return await actions.delete_key(request.session, check_key(key))

    return await respond(request, run)


@require_POST
async def clear(request: HttpRequest) -> HttpResponse:
    return await respond(request, lambda: actions.clear_editable(request.session))


@require_POST
async def flush(request: HttpRequest) -> HttpResponse:
    return await respond(request, lambda: actions.flush(request.session))


@require_POST
async def cycle(request: HttpRequest) -> HttpResponse:
    return await respond(request, lambda: actions.cycle(request.session))


@require_POST
async def expiry(request: HttpRequest) -> HttpResponse:
    raw = request.POST.get("expiry", "")

    async def run() -> str:
        return await actions.set_expiry(request.session, parse_expiry(raw))

    return await respond(request, run)


@require_POST
async def undo(request: HttpRequest) -> HttpResponse:
    raw = request.POST.get("version")

    async def run() -> str:
        return await actions.undo(request.session, parse_undo(raw))

    return await respond(request, run)
