"""Sockets from the site's own origin only: scheme, host and port, as the browser sends them.

Channels' AllowedHostsOriginValidator compares the Origin's host with
ALLOWED_HOSTS and ignores its scheme and port, so a page served from another
port of the same host (or over the other scheme) could open a socket with the
victim's cookie. Here the Origin must name the very origin the socket was
opened on (the Host header, with the scheme the socket arrived by), or one of
CSRF_TRUSTED_ORIGINS: the setting Django's CSRF check already trusts, and the
one to set behind a proxy that serves the site under another origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _secure(scope: dict[str, Any]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    # Behind a proxy that ends TLS, the proxy's header says so, as it does for
    # Django's request.is_secure(), and only when the project trusts it.
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        meta = name.removeprefix("HTTP_").lower().replace("_", "-").encode()
        value = _header(scope, meta)
        return value is not None and value.split(",")[0].strip() == secure_value
    return False


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None


def _allowed_hosts() -> list[str]:
    # Django's own rule for HttpRequest.get_host(): in DEBUG, an empty
    # ALLOWED_HOSTS still allows the local names (a fresh startproject).
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return list(settings.ALLOWED_HOSTS)


def own_origin(scope: dict[str, Any]) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of the site as this socket reached it, if its Host is allowed."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, _port_text = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return None
    scheme = "https" if _secure(scope) else "http"
    parts = urlsplit(f"{scheme}://{host}")
    return scheme, (parts.hostname or "").lower(), _port(parts)


def same_origin(scope: dict[str, Any]) -> bool:
    """Whether the socket's Origin is the site's own origin or a trusted one."""
    origin = _header(scope, b"origin")
    if not origin:
        return False
    parts = urlsplit(origin.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return False
    mine = own_origin(scope)
    if mine is not None and (parts.scheme, parts.hostname.lower(), _port(parts)) == mine:
        return True
    # Django writes a trusted subdomain wildcard "https://*.example.com";
    # channels' matcher spells it "https://.example.com".
    patterns = [pattern.replace("://*.", "://.") for pattern in settings.CSRF_TRUSTED_ORIGINS]
    return bool(OriginValidator(None, patterns).validate_origin(parts))


class SameOriginValidator:
    """ASGI middleware: refuse a WebSocket whose Origin is not the site's own."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not same_origin(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
