"""The JSON API over the visitor's own session (contract in DESIGN.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as default_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from dashboard import actions
from dashboard.validation import (
    Invalid,
    check_key,
    key_from_raw_path,
    missing_key,
    parse_json,
    whole_number,
)
from live.conf import is_reserved, setting
from live.types import Conflict


def _error(message: str, status: int, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _if_match(request: HttpRequest) -> int | None:
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        # "*" matches any version: the same as no condition for a key write.
        return None
    version = whole_number(raw.strip().removeprefix("W/").strip('"'), 18)
    if version is None:
        raise Invalid("If-Match must be a session version, a whole number.")
    return version


def _path_key(request: HttpRequest, key: str) -> str:
    raw_path = request.scope.get("raw_path") if hasattr(request, "scope") else None
    return key_from_raw_path(raw_path, key)


async def _body(request: HttpRequest) -> Any:
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > setting("MAX_VALUE_BYTES"):
        # Refuse by the stated length before parsing (daphne has read the body).
        raise Invalid(f"The value is over {setting('MAX_VALUE_BYTES')} bytes as JSON.", 413)
    try:
        body = request.body
    except RequestDataTooBig:
        # A chunked body states no length; Django stops reading it past
        # DATA_UPLOAD_MAX_MEMORY_SIZE, which would otherwise answer in HTML.
        limit = setting("MAX_VALUE_BYTES")
        raise Invalid(f"The value is over {limit} bytes as JSON.", 413) from None
    return parse_json(body)


@never_cache
@require_http_methods(["GET", "DELETE"])
async def session(request: HttpRequest) -> JsonResponse:
    if request.method == "DELETE":
        await actions.clear_editable(request.session)
    await actions.ensure(request.session)
    snapshot = await request.session.asnapshot()  # type: ignore[attr-defined]
    expiry = snapshot.data.get("_session_expiry")
    return JsonResponse(
        {
            "version": snapshot.version,
            "data": {k: v for k, v in snapshot.data.items() if not is_reserved(k)},
            "reserved": sorted(k for k in snapshot.data if is_reserved(k)),
            "meta": {
                "expires_at": None if expiry == 0 else snapshot.expire_date.isoformat(),
                "expire_at_browser_close": await request.session.aget_expire_at_browser_close(),
                "size_bytes": snapshot.size_bytes,
                "engine": settings.SESSION_ENGINE,
            },
        }
    )


@never_cache
@require_http_methods(["GET", "PUT", "DELETE"])
async def key(request: HttpRequest, key: str) -> JsonResponse:
    session = request.session
    try:
        key = check_key(_path_key(request, key), reading=request.method == "GET")
        if request.method == "GET":
            if not await session.ahas_key(key):
                raise missing_key(key)
            return JsonResponse(
                {"key": key, "value": await session.aget(key), "version": session.version}  # type: ignore[attr-defined]
            )
        seen = _if_match(request)
        if request.method == "PUT":
            value = await _body(request)
            await actions.ensure(session)
            await actions.set_key(session, key, value, seen)
            return JsonResponse({"key": key, "value": value, "version": session.version})  # type: ignore[attr-defined]
        await actions.delete_key(session, key, seen)
        return JsonResponse({"key": key, "version": session.version})  # type: ignore[attr-defined]
    except Invalid as exc:
        if exc.status == 404:
            # The version lets a client tell "missing now" from "missing then".
            return _error(exc.message, 404, version=getattr(session, "version", 0))
        return _error(exc.message, exc.status)
    except Conflict as exc:
        return _error(str(exc), 409, current=exc.current)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF refusals: JSON for the API, Django's page for everything else."""
    if request.path.startswith("/api/"):
        return _error(
            "The CSRF token is missing or wrong; send the csrftoken cookie's value in X-CSRFToken.",
            403,
        )
    return default_csrf_failure(request, reason)


@never_cache
@require_POST
async def flush(request: HttpRequest) -> JsonResponse:
    await actions.flush(request.session)
    await actions.ensure(request.session)
    return JsonResponse({"version": request.session.version})  # type: ignore[attr-defined]


@never_cache
@require_POST
async def cycle(request: HttpRequest) -> JsonResponse:
    await actions.cycle(request.session)
    return JsonResponse({"version": request.session.version})  # type: ignore[attr-defined]
