"""The page and its forms through AsyncClient: full pages, htmx partials, redirects, CSRF."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.test import AsyncClient, override_settings

from live.sessions.db import SessionStore
from tests.helpers import (
    COOKIE,
    HTMX,
    XSS,
    client_for,
    communicator,
    csrf_client,
    new_session,
    token,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def submit(
    client: AsyncClient, path: str, data: dict[str, str] | None = None, htmx: bool = False
) -> Any:
    headers = token(client, **HTMX) if htmx else token(client)
    return await client.post(path, data or {}, headers=headers)


async def page(client: AsyncClient) -> str:
    response = await client.get("/")
    assert response.status_code == 200
    return response.content.decode()


async def data(client: AsyncClient) -> dict[str, Any]:
    return (await client.get("/api/session")).json()


async def facts(client: AsyncClient) -> tuple[Any, ...]:
    """What a refused write must not change (a read recomputes the expiry time)."""
    body = await data(client)
    return body["version"], body["data"], body["reserved"], body["meta"]["size_bytes"]


def text(content: bytes | str) -> str:
    """The page as a person reads it: entities decoded."""
    return html.unescape(content.decode() if isinstance(content, bytes) else content)


def error_of(content: bytes) -> str:
    found = re.search(r"<p [^>]*data-error[^>]*>(.*?)</p>", content.decode(), re.S)
    assert found, "no data-error element"
    message = html.unescape(found.group(1))
    assert message.endswith(".") and ". " not in message
    return message


def input_value(content: bytes, name: str) -> str:
    found = re.search(rf'<input name="{name}" value="([^"]*)"', content.decode())
    assert found, f"no input {name}"
    return html.unescape(found.group(1))


def assert_partial(content: bytes) -> str:
    body = content.decode()
    assert "<html" not in body and "<body" not in body
    assert 'id="editor"' in body
    for name in ("session-meta", "session-keys", "session-reserved"):
        assert re.search(rf'<section id="{name}"[^>]*hx-swap-oob="true"', body), name
    return body


# --- the page -------------------------------------------------------------------


async def test_page_renders_hooks_and_form():
    client = AsyncClient(enforce_csrf_checks=True)
    response = await client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" in body
    assert re.search(r'data-session-version="\d+"', body)
    assert "data-live-tabs" in body
    assert '<form method="post" action="/keys/"' in body
    assert '<input name="key"' in body and '<input name="value"' in body
    assert 'name="csrfmiddlewaretoken"' in body
    assert 'ws-connect="/ws/session/"' in body
    assert response.cookies[COOKIE].value
    assert client.cookies["csrftoken"].value


async def test_page_never_cached():
    response = await AsyncClient().get("/")
    cache_control = response["Cache-Control"]
    for part in ("no-cache", "no-store", "must-revalidate", "private", "max-age=0"):
        assert part in cache_control
    assert "Expires" in response


async def test_page_shows_session_version_of_api():
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "a", "value": "1"})
    version = (await data(client))["version"]
    assert f'data-session-version="{version}"' in await page(client)


# --- adding and changing keys ----------------------------------------------------


async def test_set_key_without_htmx_redirects_and_page_shows_row_and_call():
    client = await csrf_client()
    response = await submit(client, "/keys/", {"key": "favorite_color", "value": "green"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    body = await page(client)
    assert 'data-session-key="favorite_color"' in body
    assert "data-session-value" in body
    assert 'await request.session.aset("favorite_color", "green")' in text(body)
    # The notice is shown once.
    assert "request.session.aset" not in await page(client)
    assert (await data(client))["data"] == {"favorite_color": "green"}


async def test_set_key_with_htmx_answers_partial_with_oob_sections_and_call():
    client = await csrf_client()
    response = await submit(client, "/keys/", {"key": "n", "value": "42"}, htmx=True)
    assert response.status_code == 200
    body = assert_partial(response.content)
    assert 'data-session-key="n"' in body
    assert 'await request.session.aset("n", 42)' in text(body)
    # The form is emptied for the next key.
    assert input_value(response.content, "key") == ""
    assert (await data(client))["data"] == {"n": 42}


@pytest.mark.parametrize(
    ("typed", "stored", "shown"),
    [
        ("green", "green", '"green"'),
        ("42", 42, "42"),
        ('"42"', "42", '"42"'),
        ("true", True, "True"),
        ("null", None, "None"),
        ("[1, 2]", [1, 2], "[1, 2]"),
        ('{"a": 1}', {"a": 1}, '{"a": 1}'),
        ("NaN", "NaN", '"NaN"'),
    ],
)
async def test_set_key_reads_typed_value_as_json_or_text(typed: str, stored: Any, shown: str):
    client = await csrf_client()
    response = await submit(client, "/keys/", {"key": "k", "value": typed}, htmx=True)
    assert response.status_code == 200
    assert f'await request.session.aset("k", {shown})' in text(response.content)
    assert (await data(client))["data"] == {"k": stored}


async def test_set_key_emoji_key_shown_unchanged():
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "好きな色 🎨", "value": "green"})
    assert 'data-session-key="好きな色 🎨"' in await page(client)
    assert (await data(client))["data"] == {"好きな色 🎨": "green"}


@pytest.mark.parametrize(
    ("key", "value", "status", "reason"),
    [
        ("_auth_user_id", "1", 400, "reserves"),
        ("", "1", 400, "empty"),
        ("a\x00b", "1", 400, "U+0000"),
        ("a\u202eb", "1", 400, "U+202E"),
        ("   ", "1", 400, "white space"),
        ("k" * 129, "1", 400, "128"),
        ("k", "[1, 2", 400, "JSON"),
        ("k", '{"a": NaN}', 400, "NaN"),
        ("k", "x" * 70_000, 413, "65536"),
    ],
    ids=["reserved", "empty", "nul", "rtl", "spaces", "long", "broken", "nan", "large"],
)
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_set_key_invalid_input_refused_with_reason_and_changes_nothing(
    key: str, value: str, status: int, reason: str, htmx: bool
):
    client = await csrf_client()
    # Seeded through htmx, so no notice of it waits to be shown.
    await submit(client, "/keys/", {"key": "keep", "value": "me"}, htmx=True)
    before = await facts(client)
    response = await submit(client, "/keys/", {"key": key, "value": value}, htmx=htmx)
    # htmx answers say "refused" with 422, which htmx swaps in like a success.
    assert response.status_code == (422 if htmx and status == 400 else status)
    assert reason in error_of(response.content)
    if htmx:
        assert_partial(response.content)
    else:
        assert "<html" in response.content.decode()
    # What was typed stays in the form to be corrected.
    if len(value) < 100:
        assert input_value(response.content, "value") == value
    assert "request.session.aset" not in text(response.content)
    assert await facts(client) == before


async def test_set_key_session_limit_refused_413():
    client = await csrf_client()
    with override_settings(LIVE_SESSIONS={"MAX_SESSION_BYTES": 40}):
        await submit(client, "/keys/", {"key": "a", "value": "x" * 20})
        before = await data(client)
        response = await submit(client, "/keys/", {"key": "b", "value": "y" * 20}, htmx=True)
        assert response.status_code == 413
        assert "limit is 40" in error_of(response.content)
        assert (await data(client))["data"] == before["data"]


async def test_set_key_stale_version_shows_conflict_409():
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "a", "value": "1"})
    seen = str((await data(client))["version"])
    await submit(client, "/keys/", {"key": "a", "value": "2"})  # another tab
    response = await submit(client, "/keys/", {"key": "a", "value": "3", "version": seen}, True)
    assert response.status_code == 409
    assert "data-conflict" in response.content.decode()
    assert "changed" in error_of(response.content)
    assert (await data(client))["data"] == {"a": 2}
    # The page's current version is offered for "keep mine"; posting it wins.
    current = str((await data(client))["version"])
    response = await submit(client, "/keys/", {"key": "a", "value": "3", "version": current}, True)
    assert response.status_code == 200
    assert (await data(client))["data"] == {"a": 3}


async def test_set_key_stale_version_of_other_key_succeeds():
    client = await csrf_client()
    seen = str((await data(client))["version"])
    await submit(client, "/keys/", {"key": "a", "value": "1"})
    response = await submit(client, "/keys/", {"key": "b", "value": "2", "version": seen}, True)
    assert response.status_code == 200
    assert (await data(client))["data"] == {"a": 1, "b": 2}


# --- editing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "prefilled"),
    [("green", "green"), ("42", "42"), ('"42"', '"42"'), ('{"a": [1, 2]}', '{"a": [1, 2]}')],
)
async def test_page_edit_prefills_form_with_value_that_saves_the_same(typed: str, prefilled: str):
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "k", "value": typed})
    stored = (await data(client))["data"]
    response = await client.get("/?edit=k")
    assert "<html" in response.content.decode()
    assert input_value(response.content, "key") == "k"
    assert input_value(response.content, "value") == prefilled
    await submit(client, "/keys/", {"key": "k", "value": prefilled})
    assert (await data(client))["data"] == stored


async def test_page_edit_with_htmx_answers_only_editor():
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "k", "value": "green"})
    response = await client.get("/?edit=k", headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith('<section id="editor"')
    assert "<html" not in body and "hx-swap-oob" not in body
    assert input_value(response.content, "value") == "green"


async def test_page_edit_unknown_key_leaves_form_empty():
    client = await csrf_client()
    response = await client.get("/?edit=nothing")
    assert input_value(response.content, "key") == ""


# --- the other actions ---------------------------------------------------------


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_delete_key_removes_row_and_shows_apop(htmx: bool):
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "gone", "value": "1"})
    await submit(client, "/keys/", {"key": "kept", "value": "2"})
    response = await submit(client, "/keys/delete/", {"key": "gone"}, htmx=htmx)
    if htmx:
        assert response.status_code == 200
        shown = text(assert_partial(response.content))
    else:
        assert response.status_code == 302
        shown = text(await page(client))
    assert 'await request.session.apop("gone")' in shown
    assert 'data-session-key="gone"' not in shown
    assert (await data(client))["data"] == {"kept": 2}


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_delete_key_missing_or_reserved_refused(htmx: bool):
    client = await csrf_client()
    await submit(client, "/expiry/", {"expiry": "300"})
    before = await data(client)
    response = await submit(client, "/keys/delete/", {"key": "nothing"}, htmx=htmx)
    assert response.status_code == (422 if htmx else 404)
    assert "'nothing'" in error_of(response.content)
    response = await submit(client, "/keys/delete/", {"key": "_session_expiry"}, htmx=htmx)
    assert response.status_code == (422 if htmx else 400)
    assert (await data(client))["reserved"] == before["reserved"] == ["_session_expiry"]
    assert (await data(client))["version"] == before["version"]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_clear_removes_editable_keys_keeps_reserved(htmx: bool):
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "a", "value": "1"})
    await submit(client, "/keys/", {"key": "b", "value": "2"})
    await submit(client, "/expiry/", {"expiry": "browser"})
    response = await submit(client, "/clear/", htmx=htmx)
    shown = text(response.content if htmx else await page(client))
    assert response.status_code == (200 if htmx else 302)
    assert "await request.session.apop(key)" in shown
    assert "data-session-key=" not in shown
    after = await data(client)
    assert after["data"] == {}
    assert after["reserved"] == ["_session_expiry"]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_flush_gives_new_empty_session_and_shows_aflush(htmx: bool):
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "a", "value": "1"})
    old = client.cookies[COOKIE].value
    response = await submit(client, "/flush/", htmx=htmx)
    assert response.status_code == (200 if htmx else 302)
    assert response.cookies[COOKIE].value != old
    shown = text(response.content if htmx else await page(client))
    assert "await request.session.aflush()" in shown
    assert "data-session-key=" not in shown
    assert (await data(client))["data"] == {}


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_cycle_keeps_data_under_new_key_and_shows_acycle_key(htmx: bool):
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "a", "value": "1"})
    old = client.cookies[COOKIE].value
    response = await submit(client, "/cycle/", htmx=htmx)
    assert response.status_code == (200 if htmx else 302)
    assert response.cookies[COOKIE].value != old
    shown = text(response.content if htmx else await page(client))
    assert "await request.session.acycle_key()" in shown
    assert 'data-session-key="a"' in shown
    assert (await data(client))["data"] == {"a": 1}
    stale = AsyncClient()
    stale.cookies[COOKIE] = old
    assert (await data(stale))["data"] == {}


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_expiry_seconds_browser_and_default_show_aset_expiry(htmx: bool):
    client = await csrf_client()

    async def set_expiry(raw: str) -> str:
        response = await submit(client, "/expiry/", {"expiry": raw}, htmx=htmx)
        assert response.status_code == (200 if htmx else 302)
        return text(response.content if htmx else await page(client))

    shown = await set_expiry("300")
    assert "await request.session.aset_expiry(300)" in shown
    assert "data-countdown" in shown and "default policy" not in shown
    body = await data(client)
    assert body["reserved"] == ["_session_expiry"]
    assert body["meta"]["expire_at_browser_close"] is False

    shown = await set_expiry("browser")
    assert "await request.session.aset_expiry(0)" in shown
    assert "when the browser closes" in shown
    body = await data(client)
    assert body["meta"]["expire_at_browser_close"] is True
    assert body["meta"]["expires_at"] is None

    shown = await set_expiry("default")
    assert "await request.session.aset_expiry(None)" in shown
    assert "default policy" in shown
    body = await data(client)
    assert body["reserved"] == []
    assert body["meta"]["expire_at_browser_close"] is False


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_expiry_invalid_refused_and_changes_nothing(htmx: bool):
    client = await csrf_client()
    before = await data(client)
    response = await submit(client, "/expiry/", {"expiry": "soon"}, htmx=htmx)
    assert response.status_code == (422 if htmx else 400)
    assert "whole number of seconds" in error_of(response.content)
    assert (await data(client))["reserved"] == before["reserved"] == []


@pytest.mark.parametrize("path", ["/", "/keys/", "/clear/"])
async def test_write_views_refuse_get_and_page_refuses_post(path: str):
    client = await csrf_client()
    if path == "/":
        assert (await submit(client, "/")).status_code == 405
    else:
        assert (await client.get(path)).status_code == 405


# --- CSRF -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/keys/", {"key": "new", "value": "1"}),
        ("/keys/delete/", {"key": "keep"}),
        ("/clear/", {}),
        ("/flush/", {}),
        ("/cycle/", {}),
        ("/expiry/", {"expiry": "60"}),
    ],
)
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
async def test_post_without_csrf_token_refused_403(path: str, form: dict[str, str], htmx: bool):
    client = await csrf_client()
    await submit(client, "/keys/", {"key": "keep", "value": "me"})
    before = await facts(client)
    cookie = client.cookies[COOKIE].value
    response = await client.post(path, form, headers=HTMX if htmx else {})
    assert response.status_code == 403
    forged = await client.post(path, form, headers={"X-CSRFToken": "x" * 32, **HTMX})
    assert forged.status_code == 403
    assert await facts(client) == before
    assert client.cookies[COOKIE].value == cookie


async def test_post_with_csrf_form_field_accepted():
    client = await csrf_client()
    body = await page(client)
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    assert found
    form = {"csrfmiddlewaretoken": found.group(1), "key": "a", "value": "1"}
    assert (await client.post("/keys/", form)).status_code == 302
    assert (await data(client))["data"] == {"a": 1}


# --- history and undo -----------------------------------------------------------


async def test_history_records_old_and_new_and_source():
    store = await new_session()
    client = client_for(store.session_key)
    await client.get("/color/")
    await client.put("/api/session/keys/favorite_color", json.dumps("blue"), "application/json")
    page = (await client.get("/")).content.decode()
    assert 'data-history-version="' in page
    assert "&quot;green&quot; → &quot;blue&quot;" in page
    assert "GET /color/" in page and "PUT /api/session/keys/favorite_color" in page


async def test_history_is_pushed_live_in_html_mode():
    store = await new_session()
    comm = communicator(store.session_key, json_mode=False)
    await comm.connect()
    await comm.receive_from(timeout=3)  # snapshot
    await comm.receive_from(timeout=3)  # tab count
    await client_for(store.session_key).get("/color/")
    html = await comm.receive_from(timeout=3)
    assert 'id="session-history"' in html and "GET /color/" in html
    await comm.disconnect()


async def test_undo_restores_old_value_as_new_change():
    store = await new_session()
    client = client_for(store.session_key)
    await client.put("/api/session/keys/color", json.dumps("red"), "application/json")
    changed = await client.put("/api/session/keys/color", json.dumps("blue"), "application/json")
    version = changed.json()["version"]
    response = await client.post("/undo/", {"version": version}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    after = (await client.get("/api/session/keys/color")).json()
    assert after["value"] == "red" and after["version"] == version + 1


async def test_undo_conflicts_when_key_changed_since():
    store = await new_session()
    client = client_for(store.session_key)
    first = await client.put("/api/session/keys/color", json.dumps("red"), "application/json")
    await client.put("/api/session/keys/color", json.dumps("blue"), "application/json")
    response = await client.post("/undo/", {"version": first.json()["version"]})
    assert response.status_code == 409
    assert (await client.get("/api/session/keys/color")).json()["value"] == "blue"


async def test_history_is_bounded_and_private():
    mine, theirs = await new_session(), await new_session()
    for n in range(60):
        await client_for(mine.session_key).put(
            f"/api/session/keys/k{n}", json.dumps(n), "application/json"
        )
    page = (await client_for(theirs.session_key).get("/")).content.decode()
    assert "k59" not in page
    entries = await SessionStore.ahistory(mine.digest)
    assert len(entries) == 50 and entries[0]["changes"][0]["key"] == "k59"


# --- escaping, demos, isolation -------------------------------------------------


async def test_page_escapes_html_in_keys_and_values():
    markup = XSS["img onerror"]
    client = await csrf_client()
    await submit(client, "/keys/", {"key": markup, "value": markup})
    body = await page(client)
    assert markup not in body
    assert "<img" not in body
    assert 'data-session-key="&lt;img src=x onerror=alert(1)&gt;"' in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert (await data(client))["data"] == {markup: markup}
    response = await submit(client, "/keys/", {"key": markup, "value": markup + "!"}, htmx=True)
    assert "<img" not in response.content.decode()
    edit = await client.get("/?edit=" + "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert "<img" not in edit.content.decode()
    assert input_value(edit.content, "key") == markup


async def test_color_demo_sets_favorite_color():
    client = await csrf_client()
    response = await client.get("/color/")
    assert response.status_code == 200
    assert "<p>Your favorite color is green.</p>" in response.content.decode()
    assert 'data-session-key="favorite_color"' in await page(client)
    assert (await data(client))["data"] == {"favorite_color": "green"}


async def test_color_demo_without_session_creates_one():
    client = AsyncClient()
    response = await client.get("/color/")
    assert response.cookies[COOKIE].value
    assert (await data(client))["data"] == {"favorite_color": "green"}


async def test_two_clients_never_see_each_other():
    one, two = await csrf_client(), await csrf_client()
    assert one.cookies[COOKIE].value != two.cookies[COOKIE].value
    await submit(one, "/keys/", {"key": "mine", "value": "1"})
    await submit(two, "/keys/", {"key": "yours", "value": "2"})
    page_one, page_two = await page(one), await page(two)
    assert 'data-session-key="mine"' in page_one and "yours" not in page_one
    assert 'data-session-key="yours"' in page_two and "mine" not in page_two
    # Deleting, clearing and flushing in one never touch the other.
    assert (await submit(two, "/keys/delete/", {"key": "mine"})).status_code == 404
    await submit(two, "/clear/")
    await submit(two, "/flush/")
    assert (await data(one))["data"] == {"mine": 1}


async def test_favicon_ico_leads_to_the_sites_icon() -> None:
    response = await AsyncClient().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("live/favicon.svg")
