"""The headers and cookie flags of every answer: a nonce on every script, no caching, no framing."""

from __future__ import annotations

import re

import pytest
from django.test import AsyncClient, override_settings

from live.sessions.keys import digest
from tests.helpers import COOKIE, csrf_client, key_of, logged_in_client, make_user, put, token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]


async def test_page_csp_nonce_on_every_script_and_no_inline_handlers():
    client = AsyncClient()
    first, second = await client.get("/"), await client.get("/")
    nonces = []
    for response in (first, second):
        policy = response["Content-Security-Policy"]
        found = re.search(r"script-src [^;]*'nonce-([A-Za-z0-9+/=_-]+)'", policy)
        assert found, policy
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        nonce = found.group(1)
        body = response.content.decode()
        scripts = re.findall(r"<script\b[^>]*>", body)
        assert scripts
        for script in scripts:
            assert f'nonce="{nonce}"' in script, script
            assert "src=" in script, script  # no inline code, even with the nonce
        assert not re.search(r"\son[a-z]+\s*=", body)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/"),
        ("get", "/?edit=k"),
        ("get", "/api/session"),
        ("get", "/api/session/keys/k"),
        ("get", "/api/session/keys/missing"),
        ("put", "/api/session/keys/k"),
        ("put", "/api/session/keys/_bad"),
        ("delete", "/api/session/keys/k"),
        ("delete", "/api/session"),
        ("post", "/api/session/flush"),
        ("post", "/api/session/cycle"),
    ],
)
async def test_session_pages_and_api_never_stored_in_caches(method: str, path: str):
    client = await csrf_client()
    assert (await put(client, "k", "v")).status_code == 200
    if method == "get":
        response = await client.get(path)
    else:
        call = getattr(client, method)
        response = await call(path, '"v2"', "application/json", headers=token(client))
    assert response.status_code < 500
    assert "no-store" in response["Cache-Control"], (path, response.get("Cache-Control"))


async def test_staff_pages_never_stored_in_caches():
    await make_user("boss", staff=True)
    staff = await logged_in_client("boss")
    for path in ("/staff/sessions/", f"/staff/sessions/{digest(key_of(staff))}/"):
        response = await staff.get(path)
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]


async def test_cookies_httponly_samesite_lax_and_secure_when_configured():
    response = await AsyncClient().get("/")
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # DEBUG: plain http works locally
    assert response.cookies["csrftoken"]["samesite"] == "Lax"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    with override_settings(SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True):
        response = await AsyncClient().get("/")
        assert response.cookies[COOKIE]["secure"] and response.cookies["csrftoken"]["secure"]
