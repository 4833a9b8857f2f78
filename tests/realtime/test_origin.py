"""The socket's origin check: scheme, host and port must be the site's own."""

from __future__ import annotations

from typing import Any

import pytest

from live.realtime.origin import same_origin


def scope(origin: str | None, host: str = "127.0.0.1:8000", scheme: str = "ws") -> dict[str, Any]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": headers}


def test_same_origin_accepts_the_sites_own_origin() -> None:
    assert same_origin(scope("http://127.0.0.1:8000"))
    assert same_origin(scope("https://localhost", host="localhost", scheme="wss"))


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9999",  # another port of the same host
        "https://127.0.0.1:8000",  # the other scheme
        "http://localhost:8000",  # another allowed host
        "http://evil.example:8000",
        "null",
        "",
        "ftp://127.0.0.1:8000",
    ],
)
def test_same_origin_refuses_any_other_origin(origin: str) -> None:
    assert not same_origin(scope(origin))


def test_same_origin_refuses_a_socket_without_origin() -> None:
    assert not same_origin(scope(None))


def test_same_origin_refuses_a_host_outside_allowed_hosts() -> None:
    assert not same_origin(scope("http://evil.example:8000", host="evil.example:8000"))


def test_same_origin_trusts_csrf_trusted_origins(settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com", "https://proxy.test"]
    assert same_origin(scope("https://app.example.com"))
    assert same_origin(scope("https://proxy.test"))
    assert not same_origin(scope("http://proxy.test"))


def test_same_origin_follows_the_proxy_header_only_when_configured(settings: Any) -> None:
    forwarded = scope("https://127.0.0.1:8000")
    forwarded["headers"].append((b"x-forwarded-proto", b"https"))
    assert not same_origin(forwarded)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert same_origin(forwarded)


def test_same_origin_allows_the_local_names_in_debug_with_no_allowed_hosts(settings: Any) -> None:
    settings.ALLOWED_HOSTS = []
    settings.DEBUG = True
    assert same_origin(scope("http://127.0.0.1:8000"))
    settings.DEBUG = False
    assert not same_origin(scope("http://127.0.0.1:8000"))
