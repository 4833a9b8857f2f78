"""An ASGI handler that runs Django's stock middleware on the event loop.

MiddlewareMixin runs each process_request and process_response of a sync
middleware through a thread hop (two per middleware and request, on a thread
made for the request), which doubled the latency of every request here. The
middleware below do no I/O in those hooks (headers, cookies, a CSRF token
check, a lazy user, cookie-stored messages), so this handler swaps in
subclasses that call them inline. MIDDLEWARE keeps the stock paths, so
Django's deploy checks still see exactly what is installed.
"""

from __future__ import annotations

from typing import Any

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
    """Subclass a MiddlewareMixin middleware so that its hooks run inline on the loop."""
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


class OnLoopASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        stock = settings.MIDDLEWARE
        settings.MIDDLEWARE = [ON_LOOP.get(path, path) for path in stock]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = stock
