"""ASGI entry point: HTTP through Django (static files included), WebSockets through channels."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "asgi_config.settings")
# Django must be set up before anything imports models.
django.setup(set_prefix=False)

from live.http.handler import OnLoopASGIHandler  # noqa: E402

django_asgi_app = OnLoopASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import CookieMiddleware  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from live.http.gate import SessionWriteGate  # noqa: E402
from live.realtime.origin import SameOriginValidator  # noqa: E402
from live.realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Serves htmx and the page's script from the apps' static folders, so
        # `daphne asgi_config.asgi:application` needs no collectstatic or CDN.
        # A session's writes take turns (live.http.gate), so one flood cannot hold the loop.
        "http": SessionWriteGate(ASGIStaticFilesHandler(django_asgi_app)),
        # Sockets only from the site's own origin: scheme, host and port.
        "websocket": SameOriginValidator(CookieMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
