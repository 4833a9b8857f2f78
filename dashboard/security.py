"""The content security policy, sent by django-csp without leaving the event loop."""

from __future__ import annotations

from typing import Any

from csp.middleware import CSPMiddleware
from django.http import HttpRequest, HttpResponseBase


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware for an async stack.

    Its hooks only make a nonce and build a header, no I/O, so they run inline
    instead of in the two thread hops that MiddlewareMixin gives sync hooks.
    """

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)
        response = await self.get_response(request)  # type: ignore[misc]
        return self.process_response(request, response)


def csp_nonce(request: HttpRequest) -> dict[str, Any]:
    """Expose the nonce as `csp_nonce`, the name django-htmx's script tag reads."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
