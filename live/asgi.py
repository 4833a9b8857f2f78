"""The ASGI side in one call: `application = live_application(get_asgi_application())`."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings


def live_application(http: Any = None) -> Any:
    """The project's ASGI application: HTTP through Django, the live sockets through channels.

    Call it after Django is set up (get_asgi_application() does that). Under
    DEBUG, static files are served too, as runserver does, so that
    `daphne project.asgi:application` needs no collectstatic in development.
    """
    # Imported here: they load models, which needs Django set up first.
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.sessions import CookieMiddleware
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.asgi import get_asgi_application

    from live.http.gate import SessionWriteGate
    from live.realtime.origin import SameOriginValidator
    from live.realtime.routing import websocket_urlpatterns

    if http is None:
        http = get_asgi_application()
    if settings.DEBUG and apps.is_installed("django.contrib.staticfiles"):
        http = ASGIStaticFilesHandler(http)
    return ProtocolTypeRouter(
        {
            # A session's writes take turns, so one flood cannot hold the loop.
            "http": SessionWriteGate(http),
            # Sockets only from the site's own origin: scheme, host and port.
            "websocket": SameOriginValidator(CookieMiddleware(URLRouter(websocket_urlpatterns))),
        }
    )
