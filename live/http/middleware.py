"""An async session middleware: Django's saving policy without the thread hops."""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from functools import lru_cache
from http.cookies import Morsel
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date

from live import metrics
from live.conf import session_store
from live.types import Unavailable

# Tabs name themselves in this header so that changes can say which tab made them.
TAB_HEADER = "X-Live-Tab"
TAB_META = "HTTP_" + TAB_HEADER.upper().replace("-", "_")
_TAB_LABEL = re.compile(r"^[A-Za-z0-9-]{1,16}$")


def describe(request: HttpRequest) -> str:
    """Say where a change comes from: method, path and, when known, the tab."""
    source = f"{request.method} {request.path}"
    # META, not request.headers, which would copy every header of every request.
    tab = request.META.get(TAB_META)
    return f"{source} (tab {tab})" if tab and _TAB_LABEL.match(tab) else source


class LiveSessionMiddleware(SessionMiddleware):
    """Load the session from the cookie and save it after the view, as Django does.

    The policy is Django's SessionMiddleware's: the session is saved when it
    was modified (or on every request with SESSION_SAVE_EVERY_REQUEST) and the
    response is not a server error; the cookie is set then, and deleted when
    the session was emptied. The difference is that saving awaits the engine's
    `asave()` on the event loop instead of running the whole step in a thread.
    It subclasses Django's only so that apps checking for a session middleware
    (the admin) find one; none of the parent's sync code runs.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        if not iscoroutinefunction(get_response):
            raise TypeError("LiveSessionMiddleware needs an async (ASGI) stack.")
        self.get_response = get_response
        self.SessionStore = session_store()
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        session = self.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
        session.source = describe(request)  # type: ignore[attr-defined]
        request.session = session
        response = await self.get_response(request)  # type: ignore[misc]
        metrics.responded(response.status_code)
        return await self.finish(request, response)

    async def finish(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        session = request.session
        empty = session.is_empty()
        if settings.SESSION_COOKIE_NAME in request.COOKIES and empty:
            response.delete_cookie(
                settings.SESSION_COOKIE_NAME,
                path=settings.SESSION_COOKIE_PATH,
                domain=settings.SESSION_COOKIE_DOMAIN,
                samesite=settings.SESSION_COOKIE_SAMESITE,  # type: ignore[arg-type]
            )
            vary_on_cookie(response)
            return response
        vary = session.accessed
        wants_save = session.modified or settings.SESSION_SAVE_EVERY_REQUEST
        # Server errors are not saved: the request may have failed half-way.
        if wants_save and not empty and response.status_code < 500:
            try:
                await session.asave()
            except UpdateError:
                raise SessionInterrupted(
                    "The session was deleted before the request completed; "
                    "it was probably flushed or rotated by another tab."
                ) from None
            except Unavailable as exc:
                return unavailable(exc)
            await self._set_cookie(request, response)
            vary = True
        if vary:
            vary_on_cookie(response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> JsonResponse | None:
        # Django calls this (in a thread) for an exception raised by the view.
        return unavailable(exception) if isinstance(exception, Unavailable) else None

    async def _set_cookie(self, request: HttpRequest, response: HttpResponseBase) -> None:
        session = request.session
        expiry = await session.aget("_session_expiry")
        # Django's aget_expire_at_browser_close() and aget_expiry_age(), with
        # the common case (no expiry of its own) spared their exceptions.
        if expiry is None:
            close = settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
            max_age = None if close else session.get_session_cookie_age()
        elif expiry == 0:
            max_age = None
        else:
            max_age = await session.aget_expiry_age()
        set_cookie(response, session.session_key or "", max_age)


def set_cookie(response: HttpResponseBase, session_key: str, max_age: int | None) -> None:
    """Set the session cookie as Django's middleware does; no max_age: until the browser closes.

    The same cookie as response.set_cookie() would set, in fewer steps: every
    attribute but the value is the same for all sessions within one second,
    so they are worked out and rendered once a second (see _template) and
    copied in. Every write pays this.
    """
    template = _template(max_age, int(time.time()))
    name = settings.SESSION_COOKIE_NAME
    # The cookie jar's own encoding of the value, as response.set_cookie() applies it.
    response.cookies[name] = SessionCookie(
        template, name, *response.cookies.value_encode(session_key)
    )


@dataclass(frozen=True)
class Template:
    """Every attribute of a session cookie, as Morsel keeps them, and how they render."""

    attributes: dict[str, Any]
    rendered: str


class SessionCookie(Morsel[str]):
    """A Morsel filled from a template at once, and rendered from it while unchanged."""

    template: Template | None = None

    def __init__(self, template: Template, name: str, value: str, coded: str) -> None:
        # Not Morsel.__init__, which blanks each attribute one by one: the
        # template has all of them, blank or not.
        dict.update(self, template.attributes)
        self.set(name, value, coded)
        self.template = template

    def OutputString(self, attrs: Container[str] | None = None) -> str:
        # Rendering sorts and formats each attribute; while every attribute is
        # still the very object the template gave, the template's rendering holds.
        # A changed cookie, or one unpickled without its template, renders anew.
        template = self.template
        if (
            attrs is None
            and template is not None
            and len(self) == len(template.attributes)
            and all(map(operator.is_, self.values(), template.attributes.values()))
        ):
            return f"{self.key}={self.coded_value}{template.rendered}"
        return super().OutputString(attrs)


@lru_cache(maxsize=16)
def _template(max_age: int | None, now: int) -> Template:
    """The session cookie's template for max_age at `now`: the same for every session."""
    samesite = settings.SESSION_COOKIE_SAMESITE
    # Morsel's attributes are strings in the stubs; max-age is an int, as Django sets it.
    given: dict[str, Any] = {"path": settings.SESSION_COOKIE_PATH}
    if max_age is not None:
        given["max-age"] = int(max_age)
        given["expires"] = http_date(now + int(max_age))
    if settings.SESSION_COOKIE_DOMAIN is not None:
        given["domain"] = settings.SESSION_COOKIE_DOMAIN
    if settings.SESSION_COOKIE_SECURE:
        given["secure"] = True
    if settings.SESSION_COOKIE_HTTPONLY:
        given["httponly"] = True
    if samesite:
        if samesite.lower() not in ("lax", "none", "strict"):
            raise ValueError('samesite must be "lax", "none", or "strict".')
        given["samesite"] = samesite
    # Morsel's own validation of the names, its blanks for the rest, and its rendering.
    morsel: Morsel[str] = Morsel()
    morsel.set("k", "", "")
    morsel.update(given)
    return Template(dict(morsel), morsel.OutputString()[len("k=") :])


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("SESSION_COOKIE_"):
        _template.cache_clear()


setting_changed.connect(_forget)


def vary_on_cookie(response: HttpResponseBase) -> None:
    """patch_vary_headers(response, ("Cookie",)), without its parsing when Vary is not set yet."""
    if "Vary" in response.headers:
        patch_vary_headers(response, ("Cookie",))
    else:
        response.headers["Vary"] = "Cookie"


def unavailable(exc: Unavailable) -> JsonResponse:
    """503 with the store's one-sentence reason, for any view, when sessions cannot be reached."""
    return JsonResponse({"error": str(exc)}, status=503, headers={"Retry-After": "1"})
