"""An async session middleware: Django's saving policy without the thread hops."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date

from live import metrics, sampler
from live.conf import session_store, tab_label
from live.http.gate import SAFE_METHODS
from live.sessions import client, outage, watched
from live.types import Unavailable

# Tabs name themselves in this header so that changes can say which tab made them.
TAB_HEADER = "X-Live-Tab"
TAB_META = "HTTP_" + TAB_HEADER.upper().replace("-", "_")


def describe(request: HttpRequest) -> str:
    """Say where a change comes from: method, path and, when known, the tab."""
    source = f"{request.method} {request.path}"
    # META, not request.headers, which would copy every header of every request.
    tab = tab_label(request.META.get(TAB_META))
    return f"{source} (tab {tab})" if tab else source


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
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        # The first request of a loop starts its metrics sampler; later ones find it running.
        sampler.start()
        key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        engine = session_store()
        session = engine(key)
        session.source = describe(request)
        request.session = session
        response = await self.get_response(request)  # type: ignore[misc]
        metrics.responded(response.status_code)
        response = await self.finish(request, response)
        # Django's own engines do not publish: this middleware does it for them.
        if not watched.is_live(engine):
            await watched.publish(session, key)
        return response

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
        record(session, request)
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
        if outage.lost(exception):
            # The view's own use of the database (a sign-in, a user lookup): what
            # it changed, if anything, is not known here.
            exception = outage.unavailable(exception, request.method not in SAFE_METHODS, True)
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


def record(session: SessionBase, request: HttpRequest) -> None:
    """Keep the session's record of who holds it up to date (live.sessions.client).

    Only a session this request loaded anyway is looked at, so a request that
    never touched its session pays no read for it. The start is stamped on the
    save that signs the session in (a login cycles the key, so the session
    starts there), with the login's own write: anonymous sessions hold no key
    of the app's, as with Django's own middleware.
    """
    data = getattr(session, "_session_cache", None)
    if not data:
        return
    for key, value in client.changed(data, request.META).items():
        if value is None:
            del session[key]
        else:
            session[key] = value
    if session.modified and SESSION_KEY in data and client.STARTED not in data:
        session[client.STARTED] = client.now()


def set_cookie(response: HttpResponseBase, session_key: str, max_age: int | None) -> None:
    """Set the session cookie exactly as Django's SessionMiddleware does."""
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        session_key,
        max_age=max_age,
        expires=None if max_age is None else http_date(time.time() + max_age),
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=settings.SESSION_COOKIE_HTTPONLY,
        samesite=settings.SESSION_COOKIE_SAMESITE,  # type: ignore[arg-type]
    )


def vary_on_cookie(response: HttpResponseBase) -> None:
    """patch_vary_headers(response, ("Cookie",)), without its parsing when Vary is not set yet."""
    if "Vary" in response.headers:
        patch_vary_headers(response, ("Cookie",))
    else:
        response.headers["Vary"] = "Cookie"


def unavailable(exc: Unavailable) -> JsonResponse:
    """503 with the store's one-sentence reason, for any view, when sessions cannot be reached."""
    return JsonResponse({"error": str(exc)}, status=503, headers={"Retry-After": "1"})
