"""WebSocket URL patterns; include them in your project's ProtocolTypeRouter."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.urls import path

from live.realtime.consumers import SessionConsumer, StaffListConsumer, StaffWatchConsumer
from live.realtime.metrics_consumer import MetricsConsumer

websocket_urlpatterns = [
    # Tabs authenticate by their session cookie alone: no user lookup per socket.
    path("ws/session/", SessionConsumer.as_asgi()),
    # Counts only, no session data: any same-origin page may watch.
    path("ws/metrics/", MetricsConsumer.as_asgi()),
    # Staff sockets need the user, so only they pay for the auth middleware.
    path("ws/staff/sessions/", AuthMiddlewareStack(StaffListConsumer.as_asgi())),
    path(
        "ws/staff/sessions/<str:digest>/",
        AuthMiddlewareStack(StaffWatchConsumer.as_asgi()),
    ),
]
