"""The JSON API through AsyncClient with CSRF enforced (contract: docs/design.md, section 3)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import AsyncClient, override_settings

from live import limits
from live.sessions.db import SessionStore
from tests.helpers import (
    COOKIE,
    DaphneClient,
    client_for,
    csrf_client,
    key_path,
    new_session,
    put,
    state,
    token,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def put_raw(client: AsyncClient, key: str, body: str | bytes) -> Any:
    return await client.put(
        key_path(key), body, content_type="application/json", headers=token(client)
    )


async def delete(client: AsyncClient, path: str, **headers: str) -> Any:
    return await client.delete(path, headers=token(client, **headers))


async def post(client: AsyncClient, path: str) -> Any:
    return await client.post(path, headers=token(client))


def error(response: Any, status: int) -> str:
    """Assert the status and an {"error": one sentence} body; return the sentence."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    message = response.json()["error"]
    assert isinstance(message, str)
    assert message.endswith(".") and ". " not in message
    return message


# --- reading ------------------------------------------------------------------


async def test_api_session_creates_session_with_contract_shape():
    client = AsyncClient(enforce_csrf_checks=True)
    response = await client.get("/api/session")
    assert response.status_code == 200
    assert response.cookies[COOKIE].value
    body = response.json()
    assert set(body) == {"version", "data", "reserved", "meta"}
    assert isinstance(body["version"], int)
    assert body["data"] == {}
    assert body["reserved"] == []
    meta = body["meta"]
    assert set(meta) == {
        "expires_at",
        "expire_at_browser_close",
        "size_bytes",
        "engine",
        "versioned",
    }
    assert isinstance(meta["expires_at"], str) and "T" in meta["expires_at"]
    assert meta["expire_at_browser_close"] is False
    assert meta["size_bytes"] == 2  # "{}"
    assert meta["engine"] == "live.engine" and meta["versioned"] is True
    # The same cookie finds the same session.
    again = await client.get("/api/session")
    assert again.json()["version"] == body["version"]
    assert COOKIE not in again.cookies


async def test_api_session_never_cached():
    response = await AsyncClient().get("/api/session")
    assert "no-store" in response["Cache-Control"]


async def test_api_put_key_returns_key_value_version():
    client = await csrf_client()
    before = (await state(client))["version"]
    response = await put(client, "favorite_color", "green")
    assert response.status_code == 200
    assert response.json() == {"key": "favorite_color", "value": "green", "version": before + 1}
    again = await put(client, "favorite_color", {"shade": ["dark", 2]})
    assert again.json() == {
        "key": "favorite_color",
        "value": {"shade": ["dark", 2]},
        "version": before + 2,
    }
    body = await state(client)
    assert body["data"] == {"favorite_color": {"shade": ["dark", 2]}}
    assert body["version"] == before + 2
    assert body["meta"]["size_bytes"] == len(b'{"favorite_color":{"shade":["dark",2]}}')


async def test_api_put_same_value_keeps_version():
    client = await csrf_client()
    first = (await put(client, "a", 1)).json()["version"]
    assert (await put(client, "a", 1)).json()["version"] == first


async def test_api_get_key_200_and_404():
    client = await csrf_client()
    version = (await put(client, "n", 42)).json()["version"]
    response = await client.get(key_path("n"))
    assert response.status_code == 200
    assert response.json() == {"key": "n", "value": 42, "version": version}
    assert "'missing'" in error(await client.get(key_path("missing")), 404)


async def test_api_delete_key_200_and_404():
    client = await csrf_client()
    version = (await put(client, "gone", True)).json()["version"]
    response = await delete(client, key_path("gone"))
    assert response.status_code == 200
    assert response.json() == {"key": "gone", "version": version + 1}
    assert (await state(client))["data"] == {}
    error(await delete(client, key_path("gone")), 404)
    error(await client.get(key_path("gone")), 404)


async def test_api_delete_session_keeps_reserved_keys():
    client = await csrf_client()
    await put(client, "a", 1)
    await put(client, "b", [2])
    # The form sets the expiry, which Django stores under "_session_expiry".
    response = await client.post("/expiry/", {"expiry": "600"}, headers=token(client))
    assert response.status_code == 302
    assert (await state(client))["reserved"] == ["_session_expiry"]
    response = await delete(client, "/api/session")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {}
    assert body["reserved"] == ["_session_expiry"]
    after = await state(client)
    assert after["data"] == {} and after["reserved"] == ["_session_expiry"]


async def test_api_flush_deletes_the_session_and_its_cookie():
    client = await csrf_client()
    await put(client, "a", 1)
    old = client.cookies[COOKIE].value
    response = await post(client, "/api/session/flush")
    assert response.status_code == 200
    assert response.json() == {"ended": True}
    # Django's flush: nothing stored, and the cookie deleted (Max-Age=0).
    assert response.cookies[COOKIE].value == ""
    assert response.cookies[COOKIE]["max-age"] == 0
    assert not await SessionStore().aexists(old)
    assert (await state(client))["data"] == {}
    # The old cookie is dead: it gets a new, empty session of its own.
    stale = AsyncClient()
    stale.cookies[COOKIE] = old
    assert (await state(stale))["data"] == {}


async def test_api_cycle_keeps_data_under_new_cookie():
    client = await csrf_client()
    await put(client, "a", 1)
    await put(client, "b", "two")
    old = client.cookies[COOKIE].value
    version = (await state(client))["version"]
    response = await post(client, "/api/session/cycle")
    assert response.status_code == 200
    assert response.json()["version"] > version
    new = response.cookies[COOKIE].value
    assert new and new != old
    assert (await state(client))["data"] == {"a": 1, "b": "two"}
    stale = AsyncClient()
    stale.cookies[COOKIE] = old
    response = await stale.get(key_path("a"))
    error(response, 404)
    assert (await state(stale))["data"] == {}


# --- CSRF -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/session/keys/a"),
        ("delete", "/api/session/keys/keep"),
        ("delete", "/api/session"),
        ("post", "/api/session/flush"),
        ("post", "/api/session/cycle"),
    ],
)
async def test_api_unsafe_methods_without_csrf_token_refused_403(method: str, path: str):
    client = await csrf_client()
    await put(client, "keep", "me")
    before = await state(client)
    cookie = client.cookies[COOKIE].value
    call = getattr(client, method)
    response = await call(path, "1", content_type="application/json")
    assert response.status_code == 403
    wrong = await call(
        path, "1", content_type="application/json", headers={"X-CSRFToken": "x" * 32}
    )
    assert wrong.status_code == 403
    assert await state(client) == before
    assert client.cookies[COOKIE].value == cookie


async def test_api_safe_methods_need_no_csrf_token():
    client = AsyncClient(enforce_csrf_checks=True)
    assert (await client.get("/api/session")).status_code == 200
    assert (await client.get(key_path("nothing"))).status_code == 404


# --- refused keys -------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["_x", "_session_expiry", "a%00b", "a%0Ab", "%1B%5B31m", "tab%09", "%20%20", "k" * 129],
    ids=["reserved", "django-reserved", "nul", "newline", "escape", "tab", "spaces", "long"],
)
async def test_api_put_bad_key_refused_400(key: str):
    client = await csrf_client()
    before = await state(client)
    error(await put(client, key, 1), 400)
    assert await state(client) == before


async def test_api_put_empty_key_refused_400():
    client = await csrf_client()
    before = await state(client)
    assert "empty" in error(await put(client, "", 1), 400)
    assert await state(client) == before


async def test_api_delete_reserved_key_refused_400():
    client = await csrf_client()
    await client.post("/expiry/", {"expiry": "browser"}, headers=token(client))
    before = await state(client)
    assert before["reserved"] == ["_session_expiry"]
    assert before["meta"]["expire_at_browser_close"] is True
    error(await delete(client, key_path("_session_expiry")), 400)
    assert await state(client) == before


@pytest.mark.parametrize(
    "key",
    ["%E2%80%AE", "a%E2%80%8Bb", "%FF", "a%EF%BF%BD"],
    ids=["rtl-override", "zero-width", "invalid-utf8", "replacement-char"],
)
async def test_api_put_invisible_or_malformed_key_refused_400(key: str):
    client = await csrf_client(DaphneClient)
    before = await state(client)
    error(await put(client, key, 1), 400)
    assert await state(client) == before


async def test_api_put_emoji_and_cjk_keys_stored_unchanged():
    client = await csrf_client(DaphneClient)
    for key in ["🎨", "好きな色", "a/b"]:
        path_key = "".join(f"%{b:02X}" for b in key.encode())
        response = await put(client, path_key, key)
        assert response.status_code == 200
        assert response.json()["key"] == key
        assert (await client.get(key_path(path_key))).json()["value"] == key
    assert (await state(client))["data"] == {"🎨": "🎨", "好きな色": "好きな色", "a/b": "a/b"}


# --- refused values -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["green", "NaN", "[1, Infinity]", "-Infinity", '{"a": [1, 2', "", "   ", '"\\ud800"', b"\xff"],
    ids=[
        "not-json",
        "nan",
        "infinity",
        "minus-infinity",
        "truncated",
        "empty",
        "blank",
        "surrogate",
        "not-utf8",
    ],
)
async def test_api_put_bad_value_refused_400(body: str | bytes):
    client = await csrf_client()
    await put(client, "a", "before")
    before = await state(client)
    error(await put_raw(client, "a", body), 400)
    assert await state(client) == before


async def test_api_put_too_deep_value_refused_400():
    client = await csrf_client()
    before = await state(client)
    assert "32" in error(await put_raw(client, "a", "[" * 33 + "]" * 33), 400)
    assert (await put_raw(client, "a", "[" * 32 + "]" * 32)).status_code == 200
    assert (await state(client))["version"] == before["version"] + 1


async def test_api_put_too_large_value_refused_413():
    client = await csrf_client()
    await put(client, "a", "small")
    before = await state(client)
    with override_settings(LIVE_SESSIONS={"MAX_VALUE_BYTES": 16}):
        assert (await put(client, "a", "x" * 14)).status_code == 200  # 16 bytes
        after_ok = await state(client)
        error(await put(client, "a", "x" * 15), 413)
        error(await put(client, "a", list(range(100))), 413)
    assert after_ok["version"] == before["version"] + 1
    assert await state(client) == after_ok


async def test_api_put_past_session_limit_refused_413():
    client = await csrf_client()
    with override_settings(LIVE_SESSIONS={"MAX_SESSION_BYTES": 40}):
        assert (await put(client, "a", "x" * 20)).status_code == 200  # {"a":"x...x"} is 28
        before = await state(client)
        error(await put(client, "b", "y" * 10), 413)
        assert await state(client) == before
        # Replacing a value counts it once.
        assert (await put(client, "a", "z" * 30)).status_code == 200


# --- If-Match -----------------------------------------------------------------


async def test_api_put_if_match_stale_version_conflicts_409():
    client = await csrf_client()
    seen = (await put(client, "a", 1)).json()["version"]
    await put(client, "a", 2)
    before = await state(client)
    response = await put(client, "a", 3, **{"If-Match": str(seen)})
    error(response, 409)
    assert response.json()["current"] == 2
    assert await state(client) == before


async def test_api_put_if_match_current_version_succeeds():
    client = await csrf_client()
    seen = (await put(client, "a", 1)).json()["version"]
    response = await put(client, "a", 2, **{"If-Match": f'"{seen}"'})
    assert response.status_code == 200
    assert response.json()["value"] == 2


async def test_api_put_if_match_old_version_of_other_key_succeeds():
    client = await csrf_client()
    seen = (await put(client, "a", 1)).json()["version"]
    await put(client, "b", 1)  # the session moved on, but not key "a"
    response = await put(client, "a", 2, **{"If-Match": str(seen)})
    assert response.status_code == 200
    assert (await state(client))["data"] == {"a": 2, "b": 1}


async def test_api_put_if_match_new_key_deleted_after_version_conflicts_409():
    client = await csrf_client()
    seen = (await put(client, "a", 1)).json()["version"]
    await delete(client, key_path("a"))
    response = await put(client, "a", 5, **{"If-Match": str(seen)})
    error(response, 409)
    assert response.json()["current"] is None


async def test_api_delete_if_match_stale_version_conflicts_409():
    client = await csrf_client()
    seen = (await put(client, "a", 1)).json()["version"]
    await put(client, "a", 2)
    before = await state(client)
    response = await delete(client, key_path("a"), **{"If-Match": str(seen)})
    error(response, 409)
    assert response.json()["current"] == 2
    assert await state(client) == before


@pytest.mark.parametrize("header", ["soon", "-1", "²", "1.5"])
async def test_api_put_if_match_not_a_version_refused_400(header: str):
    client = await csrf_client()
    before = await state(client)
    error(await put(client, "a", 1, **{"If-Match": header}), 400)
    assert await state(client) == before


# --- isolation ----------------------------------------------------------------


async def test_api_two_clients_never_see_each_other():
    one, two = await csrf_client(), await csrf_client()
    await put(one, "mine", 1)
    await put(two, "yours", 2)
    assert (await state(one))["data"] == {"mine": 1}
    assert (await state(two))["data"] == {"yours": 2}
    error(await two.get(key_path("mine")), 404)
    error(await delete(two, key_path("mine")), 404)
    assert (await state(one))["data"] == {"mine": 1}


@pytest.mark.parametrize(
    ("method", "path"),
    [("delete", "/api/session"), ("post", "/api/session/cycle"), ("post", "/api/session/flush")],
)
async def test_api_session_actions_answer_a_rate_refusal_in_json(
    method: str, path: str, settings: Any
) -> None:
    client = await csrf_client()
    await put(client, "a", 1)
    settings.LIVE_SESSIONS = {"WRITE_RATE": 0.001, "WRITE_BURST": 1}
    limits.reset()
    token = {"X-CSRFToken": client.cookies["csrftoken"].value}
    assert (await client.delete("/api/session", headers=token)).status_code == 200
    refused = await getattr(client, method)(path, headers=token)
    assert refused.status_code == 429
    assert refused.json() == {"error": "Too many writes to this session; slow down and try again."}


async def test_api_refuses_writes_beyond_rate(settings):
    settings.LIVE_SESSIONS = {"WRITE_RATE": 1, "WRITE_BURST": 3}
    store = await new_session()
    client = client_for(store.session_key)
    statuses = [
        (await client.put(f"/api/session/keys/k{n}", "1", "application/json")).status_code
        for n in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    refused = await client.put("/api/session/keys/late", "1", "application/json")
    assert "slow down" in refused.json()["error"]
    assert "late" not in (await client.get("/api/session")).json()["data"]
