"""An ASGI handler that runs Django's stock middleware on the event loop, and
lends each request a thread that outlives it.

MiddlewareMixin runs each process_request and process_response of a sync
middleware through a thread hop, two per middleware and request. The
middleware below do no I/O in those hooks (headers, cookies, a CSRF token
check, a lazy user, cookie-stored messages), so this handler swaps in
subclasses that call them inline; `on_loop` makes such a subclass for any
middleware of that kind. MIDDLEWARE keeps the stock paths, so Django's deploy
checks still see exactly what is installed.

Django gives every request a thread of its own for its thread-sensitive sync
code (the request signals' receivers, the ORM), then joins it from yet another
thread: two threads started and joined per request, which on a single core
hold up the pushes that a write has just sent. Here a request borrows an idle
thread instead and hands it back when it ends, as a WSGI server's worker
threads are reused; Django's request signals close the connections of that
thread that are unusable or too old, as they do under WSGI.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import AsyncToSync, SyncToAsync, ThreadSensitiveContext
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as _Auth
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrame
from django.middleware.common import CommonMiddleware as _Common
from django.middleware.csrf import CsrfViewMiddleware as _Csrf
from django.middleware.security import SecurityMiddleware as _Security
from django.utils.deprecation import MiddlewareMixin


async def _acall(self: Any, request: HttpRequest) -> HttpResponseBase:
    response = self.process_request(request) if hasattr(self, "process_request") else None
    response = response or await self.get_response(request)
    if hasattr(self, "process_response"):
        response = self.process_response(request, response)
    return response  # type: ignore[no-any-return]


def on_loop(cls: type[MiddlewareMixin]) -> type[MiddlewareMixin]:
    """Subclass a MiddlewareMixin middleware so that its hooks run inline on the loop.

    Only for middleware whose hooks do no I/O: they then hold up the loop no
    longer than the thread hops they replace would.
    """
    attrs: dict[str, Any] = {"__acall__": _acall, "__module__": __name__}
    if hasattr(cls, "process_view"):
        sync_view = cls.process_view

        # The handler awaits a coroutine process_view directly, without a hop.
        async def process_view(self: Any, *args: Any) -> HttpResponseBase | None:
            return sync_view(self, *args)  # type: ignore[no-any-return]

        attrs["process_view"] = process_view
    return type(cls.__name__, (cls,), attrs)


SecurityMiddleware = on_loop(_Security)
CommonMiddleware = on_loop(_Common)
CsrfViewMiddleware = on_loop(_Csrf)
AuthenticationMiddleware = on_loop(_Auth)
MessageMiddleware = on_loop(_Messages)
XFrameOptionsMiddleware = on_loop(_XFrame)

ON_LOOP = {
    f"{cls.__module__}.{cls.__qualname__}": f"{__name__}.{cls.__qualname__}"
    for cls in (_Security, _Common, _Csrf, _Auth, _Messages, _XFrame)
}


class RequestThread(ThreadPoolExecutor):
    """One thread that runs one request's sync code at a time, and knows if it is idle."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="django-request")
        self.pending: set[Future[Any]] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.pending.add(future)
        future.add_done_callback(self.pending.discard)
        return future


# Idle threads kept for the next requests; a burst beyond this many in flight
# starts threads that end with their request, as Django's own do.
KEEP_IDLE = 64
_idle: list[RequestThread] = []


def _inside_sync_code() -> bool:
    # Called from a sync thread (async_to_sync) or inside another request's
    # context, Django's own rules keep the sync code where the caller expects it.
    if getattr(AsyncToSync.executors, "current", None) is not None:
        return True
    return SyncToAsync.thread_sensitive_context.get(None) is not None


class OnLoopASGIHandler(ASGIHandler):
    """Django's ASGI handler, with the stock middleware's hooks on the loop and a lent thread."""

    def load_middleware(self, is_async: bool = False) -> None:
        stock = settings.MIDDLEWARE
        settings.MIDDLEWARE = [ON_LOOP.get(path, path) for path in stock]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = stock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or _inside_sync_code():
            await super().__call__(scope, receive, send)
            return
        thread = _idle.pop() if _idle else RequestThread()
        ended_cleanly = False
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
            ended_cleanly = True
        finally:
            # Only a request that ended normally sent request_finished, which
            # closes the thread's connections; after an error or a cancellation
            # (the server giving up on it) the thread ends, and with it whatever
            # it held, as Django's own threads do. (Django leaves a cancelled
            # request's own tasks running; a sync call they make now is refused,
            # its context having exited, rather than run on a thread lent to
            # another request.) So does a thread with sync code still running:
            # nobody else's request waits behind it.
            if not ended_cleanly or thread.pending or len(_idle) >= KEEP_IDLE:
                thread.shutdown(wait=False)
            else:
                _idle.append(thread)
