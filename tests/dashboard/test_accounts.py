"""Login and logout, watched through the socket: tabs follow the cookie the login sets."""

from __future__ import annotations

import pytest
from django.conf import settings

from live.realtime.consumers import CLOSE_MOVED
from live.sessions.db import SessionStore
from tests.helpers import client_for, closed_with, communicator, make_user, new_session, receive

pytestmark = pytest.mark.django_db(transaction=True)


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
    await closed_with(comm, CLOSE_MOVED)
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
    await closed_with(comm, CLOSE_MOVED)
