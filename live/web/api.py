"""The JSON API over the visitor's own session (the contract is docs/design.md, section 3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.csrf import csrf_failure as default_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from live.conf import is_reserved, setting, visible
from live.sessions import watched
from live.types import Conflict
from live.web import actions
from live.web.rendering import PAGE
from live.web.validation import (
    Invalid,
    body_too_large,
    check_key,
    key_from_raw_path,
    missing_key,
    parse_if_match,
    parse_json,
)
from live.web.views import is_htmx


def _error(message: str, status: int, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _path_key(request: HttpRequest, key: str) -> str:
    """The key in the URL, checked; Django's own keys may be read, not written."""
    raw_path = request.scope.get("raw_path") if hasattr(request, "scope") else None
    return check_key(key_from_raw_path(raw_path, key), reading=request.method == "GET")


def _body(request: HttpRequest) -> bytes:
    """The request's body, refused by its length before it is read or parsed."""
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > setting("MAX_VALUE_BYTES"):
        raise body_too_large()
    try:
        return request.body
    except RequestDataTooBig:
        # A chunked body states no length; Django stops reading it past
        # DATA_UPLOAD_MAX_MEMORY_SIZE, which would otherwise answer in HTML.
        raise body_too_large() from None


def _version(session: SessionBase) -> int:
    # The engine's version after the last read or write; 0 for no session.
    return getattr(session, "version", 0)


View = TypeVar("View", bound=Callable[[HttpRequest], Awaitable[JsonResponse]])


def _refusals(view: View) -> View:
    """Answer an action's refusal (429, 409, ...) in JSON with its sentence."""

    @wraps(view)
    async def answered(request: HttpRequest) -> JsonResponse:
        try:
            return await view(request)
        except Invalid as exc:
            return _error(exc.message, exc.status)
        except Conflict as exc:
            return _error(str(exc), 409, current=exc.current)

    return cast(View, answered)


@never_cache
@require_http_methods(["GET", "DELETE"])
@_refusals
async def session(request: HttpRequest) -> JsonResponse:
    if request.method == "DELETE":
        await actions.clear_editable(request.session)
    await actions.ensure(request.session)
    snapshot = await watched.snapshot(request.session)
    expiry = snapshot.data.get("_session_expiry")
    return JsonResponse(
        {
            "version": snapshot.version,
            "data": visible(snapshot.data),
            "reserved": sorted(filter(is_reserved, snapshot.data)),
            "meta": {
                "expires_at": None if expiry == 0 else snapshot.expire_date.isoformat(),
                "expire_at_browser_close": await request.session.aget_expire_at_browser_close(),
                "size_bytes": snapshot.size_bytes,
                "engine": settings.SESSION_ENGINE,
                # Whether versions count changes (the live engines) or are the
                # time of a read (Django's own engines), which only order pushes.
                "versioned": watched.engine_is_live(),
            },
        }
    )


@never_cache
@require_http_methods(["GET", "PUT", "DELETE"])
async def key(request: HttpRequest, key: str) -> JsonResponse:
    session = request.session
    try:
        key = _path_key(request, key)
        if request.method == "GET":
            if not await session.ahas_key(key):
                raise missing_key(key)
            return JsonResponse(
                {"key": key, "value": await session.aget(key), "version": _version(session)}
            )
        seen = parse_if_match(request.headers.get("If-Match"))
        if request.method == "PUT":
            value = parse_json(_body(request))
            await actions.set_key(session, key, value, seen)
            return JsonResponse({"key": key, "value": value, "version": _version(session)})
        await actions.delete_key(session, key, seen)
        return JsonResponse({"key": key, "version": _version(session)})
    except Invalid as exc:
        if exc.status == 404:
            # The version lets a client tell "missing now" from "missing then".
            return _error(exc.message, 404, version=_version(session))
        return _error(exc.message, exc.status)
    except Conflict as exc:
        return _error(str(exc), 409, current=exc.current)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF refusals: JSON for the API, the editor for htmx, Django's page for the rest."""
    if request.path.startswith("/api/"):
        return _error(
            "The CSRF token is missing or wrong; send the csrftoken cookie's value in X-CSRFToken.",
            403,
        )
    if is_htmx(request):
        # In place, as every refusal of the page: Django's page is a whole
        # document, with inline styles that the page's policy refuses.
        error = (
            "The form's security token is missing or out of date; reload the page and try again."
        )
        context = {"error": error, "form": {"key": "", "value": ""}}
        response = render(request, f"{PAGE}#editor", context, status=403)
        response["HX-Retarget"] = "#editor"
        response["HX-Reswap"] = "outerHTML"
        return response
    return default_csrf_failure(request, reason)


@never_cache
@require_POST
@_refusals
async def flush(request: HttpRequest) -> JsonResponse:
    await actions.flush(request.session)
    # Nothing is stored any more; the middleware deletes the cookie.
    return JsonResponse({"ended": True})


@never_cache
@require_POST
@_refusals
async def cycle(request: HttpRequest) -> JsonResponse:
    await actions.cycle(request.session)
    return JsonResponse({"version": _version(request.session)})
