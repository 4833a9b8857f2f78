"""WebSocket URL patterns; include them in your project's ProtocolTypeRouter."""

from __future__ import annotations

from django.urls import path

from live.consumers import SessionConsumer

websocket_urlpatterns = [
    path("ws/session/", SessionConsumer.as_asgi()),
]
