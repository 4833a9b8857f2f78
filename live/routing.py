"""WebSocket URL patterns; include them in your project's ProtocolTypeRouter."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.urls import path

from live.consumers import SessionConsumer, StaffListConsumer, StaffWatchConsumer

websocket_urlpatterns = [
    # Tabs authenticate by their session cookie alone: no user lookup per socket.
    path("ws/session/", SessionConsumer.as_asgi()),
    # Staff sockets need the user, so only they pay for the auth middleware.
    path("ws/staff/sessions/", AuthMiddlewareStack(StaffListConsumer.as_asgi())),
    path(
        "ws/staff/sessions/<str:digest>/",
        AuthMiddlewareStack(StaffWatchConsumer.as_asgi()),
    ),
]
