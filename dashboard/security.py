"""The content security policy, sent by django-csp without leaving the event loop."""

from __future__ import annotations

from typing import Any

from csp.middleware import CSPMiddleware
from django.http import HttpRequest

from live.http.handler import on_loop

# Its hooks only make a nonce and build a header, no I/O, so they run inline
# instead of in the two thread hops that MiddlewareMixin gives sync hooks.
ContentSecurityPolicyMiddleware = on_loop(CSPMiddleware)


def csp_nonce(request: HttpRequest) -> dict[str, Any]:
    """Expose the nonce as `csp_nonce`, the name django-htmx's script tag reads."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
