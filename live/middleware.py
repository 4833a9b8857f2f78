"""The name settings use for the middleware; it lives in live.http.middleware."""

from live.http.middleware import LiveSessionMiddleware

__all__ = ["LiveSessionMiddleware"]
