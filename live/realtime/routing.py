"""WebSocket URL patterns; include them in your project's ProtocolTypeRouter."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.urls import path, reverse

from live.realtime.consumers import (
    MySessionsConsumer,
    SessionConsumer,
    StaffListConsumer,
    StaffWatchConsumer,
)
from live.realtime.metrics_consumer import MetricsConsumer

websocket_urlpatterns = [
    # Tabs authenticate by their session cookie alone: no user lookup per socket.
    path("ws/session/", SessionConsumer.as_asgi(), name="session"),
    # Counts only, no session data: any same-origin page may watch.
    path("ws/metrics/", MetricsConsumer.as_asgi(), name="metrics"),
    # Staff sockets need the user, so only they pay for the auth middleware.
    path("ws/staff/sessions/", AuthMiddlewareStack(StaffListConsumer.as_asgi()), name="staff-list"),
    path("ws/my-sessions/", AuthMiddlewareStack(MySessionsConsumer.as_asgi()), name="my-sessions"),
    path(
        "ws/staff/sessions/<str:digest>/",
        AuthMiddlewareStack(StaffWatchConsumer.as_asgi()),
        name="staff-watch",
    ),
]
# So that reverse() finds the routes by name: the pages take their sockets' URLs from here.
urlpatterns = websocket_urlpatterns


def socket_url(name: str, **kwargs: str) -> str:
    """The path of the socket route `name`, as a page's ws-connect needs it."""
    return reverse(name, kwargs=kwargs, urlconf=__name__)
