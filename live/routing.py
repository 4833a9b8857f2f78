"""The name asgi.py imports the socket routes by; they live in live.realtime.routing."""

from live.realtime.routing import websocket_urlpatterns

__all__ = ["websocket_urlpatterns"]
