"""Login, logout, history and undo, watched through the socket."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from live.realtime.consumers import CLOSE_MOVED
from live.sessions.db import SessionStore
from tests.realtime.test_consumers import client_for, communicator, new_session, receive

pytestmark = pytest.mark.django_db(transaction=True)


async def make_user() -> None:
    await get_user_model().objects.acreate_user("demo", password="demo")


async def test_login_cycles_key_and_tabs_follow():
    await make_user()
    store = await new_session(theme="dark")
    comm = communicator(store.session_key)
    await comm.connect()
    await receive(comm)
    client = client_for(store.session_key)
    response = await client.post(
        "/login/submit/", {"username": "demo", "password": "demo"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "alogin" in response.content.decode()
    new_key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != store.session_key
    assert await receive(comm) == {"type": "session.rotated"}
    assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": CLOSE_MOVED}
    # The tab reconnects with the cookie the login set: the same data, logged in.
    again = communicator(new_key)
    await again.connect()
    followed = await receive(again)
    assert followed["type"] == "session.snapshot" and followed["data"] == {"theme": "dark"}
    assert (await SessionStore(new_key).aget("_auth_user_id")) is not None
    await again.disconnect()


async def test_wrong_password_changes_nothing():
    await make_user()
    store = await new_session(theme="dark")
    client = client_for(store.session_key)
    response = await client.post("/login/submit/", {"username": "demo", "password": "nope"})
    assert response.status_code == 400
    assert "do not match" in response.content.decode()
    assert settings.SESSION_COOKIE_NAME not in response.cookies or (
        response.cookies[settings.SESSION_COOKIE_NAME].value == store.session_key
    )


async def test_logout_deletes_the_session_and_its_cookie_and_tabs_end():
    await make_user()
    store = await new_session(theme="dark")
    client = client_for(store.session_key)
    await client.post("/login/submit/", {"username": "demo", "password": "demo"})
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    comm = communicator(key)
    await comm.connect()
    before = await receive(comm)
    assert before["data"] == {"theme": "dark"}
    response = await client.post("/logout/")
    assert response.status_code == 302
    # Django's logout: the session is deleted and the cookie with it.
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 0
    assert not await SessionStore().aexists(key)
    assert await receive(comm) == {"type": "session.ended"}
    assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": CLOSE_MOVED}


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
    from live.sessions.db import SessionStore

    entries = await SessionStore.ahistory(mine.digest)
    assert len(entries) == 50 and entries[0]["changes"][0]["key"] == "k59"


async def make_staff() -> None:
    await get_user_model().objects.acreate_user("boss", password="boss", is_staff=True)


async def logged_in_client(username: str) -> AsyncClient:
    client = AsyncClient()
    assert await client.alogin(username=username, password=username)
    return client


async def test_staff_page_is_refused_to_others():
    await make_user()
    anonymous = await AsyncClient().get("/staff/sessions/")
    assert anonymous.status_code == 403
    demo = await (await logged_in_client("demo")).get("/staff/sessions/")
    assert demo.status_code == 403
    store = await new_session(secret="x")
    watch = await (await logged_in_client("demo")).get(f"/staff/sessions/{store.digest}/")
    assert watch.status_code == 403
    comm = communicator(None, json_mode=False, path="/ws/staff/sessions/")
    connected, code = await comm.connect()
    assert not connected and code == 4403


async def test_staff_lists_sessions_and_watches_one_read_only():
    await make_staff()
    store = await new_session(favorite_color="blue")
    staff = await logged_in_client("boss")
    listing = (await staff.get("/staff/sessions/")).content.decode()
    assert store.masked_key in listing and str(store.session_key) not in listing
    page = (await staff.get(f"/staff/sessions/{store.digest}/")).content.decode()
    assert 'data-session-key="favorite_color"' in page
    assert 'action="/keys/"' not in page and "Delete" not in page


async def open_staff_list() -> WebsocketCommunicator:
    """A staff member's socket on the live list, past its first rendering."""
    await make_staff()
    staff = await logged_in_client("boss")
    cookie = staff.cookies[settings.SESSION_COOKIE_NAME].value
    comm = communicator(cookie, json_mode=False, path="/ws/staff/sessions/")
    connected, _ = await comm.connect()
    assert connected
    first = await comm.receive_from(timeout=3)
    assert 'id="session-list"' in first
    return comm


async def test_staff_list_updates_live():
    comm = await open_staff_list()
    store = await new_session()
    await client_for(store.session_key).get("/color/")
    refreshed = await comm.receive_from(timeout=3)
    assert store.masked_key in refreshed
    await comm.disconnect()


async def test_staff_list_shows_changes_made_in_quick_succession():
    # Both changes fall in one refresh interval of the touches (the first is
    # told at once, the second at the interval's end); the list shows both.
    comm = await open_staff_list()
    first, second = await new_session(), await new_session()
    for store in (first, second):
        await client_for(store.session_key).get("/color/")
    listing = ""
    while second.masked_key not in listing:
        listing = await comm.receive_from(timeout=3)
    assert first.masked_key in listing
    await comm.disconnect()
