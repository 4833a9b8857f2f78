"""Django's own engines, watched: tabs follow what requests do to them, through the engine's API."""

from __future__ import annotations

import json
from importlib import import_module
from typing import Any

import pytest
from django.contrib.sessions.backends.base import SessionBase

from live.realtime.consumers import CLOSE_MOVED, CLOSE_NO_SESSION
from tests.helpers import (
    client_for,
    closed_with,
    communicator,
    logged_in_client,
    make_user,
    receive,
)

pytestmark = pytest.mark.django_db(transaction=True)

ENGINES = [
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.file",
    "django.contrib.sessions.backends.signed_cookies",
]
# Its key is its data, signed: every write makes a new key.
ROTATES_ON_WRITE = {"django.contrib.sessions.backends.signed_cookies"}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, settings: Any, tmp_path: Any) -> str:
    settings.SESSION_ENGINE = request.param
    settings.SESSION_FILE_PATH = str(tmp_path)
    return str(request.param)


async def stored(engine: str, **data: Any) -> SessionBase:
    """A session of that engine, saved, holding `data`."""
    session: SessionBase = import_module(engine).SessionStore()
    for key, value in data.items():
        await session.aset(key, value)
    await session.asave()
    return session


async def test_tab_gets_the_engines_session_on_connect(engine: str) -> None:
    session = await stored(engine, fruit="pear", _private=1)
    tab = communicator(session.session_key)
    connected, _ = await tab.connect()
    assert connected
    snapshot = await receive(tab)
    assert snapshot["type"] == "session.snapshot"
    assert snapshot["data"] == {"fruit": "pear"}
    await tab.disconnect()


async def test_tab_follows_a_plain_views_write(engine: str) -> None:
    session = await stored(engine, fruit="pear")
    tab = communicator(session.session_key)
    await tab.connect()
    await receive(tab)
    response = await client_for(session.session_key).get("/color/")
    assert response.status_code == 200
    if engine in ROTATES_ON_WRITE:
        # The tab reconnects with the browser's new cookie, which holds the write.
        assert (await receive(tab))["type"] == "session.rotated"
        await closed_with(tab, CLOSE_MOVED)
        cookie = response.cookies["sessionid"].value
        again = communicator(cookie)
        await again.connect()
        assert (await receive(again))["data"] == {"fruit": "pear", "favorite_color": "green"}
        await again.disconnect()
        return
    pushed = await receive(tab)
    assert pushed["type"] == "session.snapshot"
    assert pushed["data"] == {"fruit": "pear", "favorite_color": "green"}
    await tab.disconnect()


async def test_tab_learns_of_a_flush_and_a_cycled_key(engine: str) -> None:
    flushed, cycled = await stored(engine, a=1), await stored(engine, b=2)
    flushed_tab, cycled_tab = communicator(flushed.session_key), communicator(cycled.session_key)
    for tab in (flushed_tab, cycled_tab):
        await tab.connect()
        await receive(tab)
    response = await client_for(flushed.session_key).post("/api/session/flush")
    assert response.status_code == 200
    assert (await receive(flushed_tab))["type"] == "session.ended"
    await closed_with(flushed_tab, CLOSE_MOVED)
    response = await client_for(cycled.session_key).post("/api/session/cycle")
    assert response.status_code == 200
    if response.cookies["sessionid"].value == cycled.session_key:
        # A signed cookie is its data, signed to the second: cycled within the
        # second of its last write, it keeps its key, and the tab stays.
        assert engine in ROTATES_ON_WRITE
        assert (await receive(cycled_tab))["type"] == "session.snapshot"
        return
    assert (await receive(cycled_tab))["type"] == "session.rotated"
    await closed_with(cycled_tab, CLOSE_MOVED)


async def test_a_key_the_engine_does_not_know_is_no_session(engine: str) -> None:
    tab = communicator("x" * 40)
    await tab.connect()
    assert (await receive(tab))["type"] == "session.ended"
    await closed_with(tab, CLOSE_NO_SESSION)


async def test_page_and_api_edit_through_the_engine_and_say_its_guarantees(engine: str) -> None:
    session = await stored(engine, fruit="pear")
    client = client_for(session.session_key)
    response = await client.put(
        "/api/session/keys/cart", data=json.dumps([1, 2]), content_type="application/json"
    )
    assert response.status_code == 200
    cookie = response.cookies["sessionid"].value if "sessionid" in response.cookies else None
    reread = import_module(engine).SessionStore(cookie or session.session_key)
    assert await reread.aget("cart") == [1, 2]
    page = await client_for(cookie or session.session_key).get("/")
    html = page.content.decode()
    assert "concurrent writes may overwrite each other" in html
    assert "<code>cart</code>" in html or "cart" in html


async def test_staff_list_says_why_it_cannot_list_djangos_engine(engine: str) -> None:
    await make_user("boss", staff=True)
    await stored(engine, fruit="pear")
    staff = await logged_in_client("boss")
    html = (await staff.get("/staff/sessions/")).content.decode()
    assert "cannot list them without their keys" in html
    assert (await staff.get(f"/staff/sessions/{'0' * 64}/")).status_code == 404
