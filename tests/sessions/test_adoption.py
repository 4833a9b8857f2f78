"""Switching SESSION_ENGINE to the live engine keeps the sessions of the previous one."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.test import AsyncClient

from live.sessions.db import SessionStore

pytestmark = pytest.mark.django_db(transaction=True)

ENGINES = [
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.file",
    "django.contrib.sessions.backends.signed_cookies",
]


@pytest.fixture
def previous(request: pytest.FixtureRequest, settings: Any, tmp_path: Any) -> str:
    engine: str = request.param
    settings.SESSION_FILE_PATH = str(tmp_path)
    settings.LIVE_SESSIONS = {**settings.LIVE_SESSIONS, "PREVIOUS_ENGINE": engine}
    return engine


def old_session(engine: str, **data: Any) -> SessionBase:
    store: SessionBase = import_module(engine).SessionStore()
    store.update(data)
    store.save()
    return store


@pytest.mark.parametrize("previous", ENGINES, indirect=True)
def test_load_adopts_the_previous_engines_session_under_its_key(previous: str) -> None:
    old = old_session(previous, cart=["apple"], n=1)
    key = old.session_key
    live = SessionStore(key)
    assert dict(live.items()) == {"cart": ["apple"], "n": 1}
    assert live.session_key == key
    assert SessionStore().exists(key)
    if previous != "django.contrib.sessions.backends.signed_cookies":
        # Adopted once: the previous engine no longer holds it.
        assert not import_module(previous).SessionStore().exists(key)


@pytest.mark.parametrize("previous", ENGINES, indirect=True)
async def test_aload_adopts_the_previous_engines_session(previous: str) -> None:
    old = await _aold_session(previous, colour="green")
    live = SessionStore(old.session_key)
    assert await live.aget("colour") == "green"
    assert await SessionStore().aexists(old.session_key)


async def _aold_session(engine: str, **data: Any) -> SessionBase:
    store: SessionBase = import_module(engine).SessionStore()
    await store.aupdate(data)
    await store.asave()
    return store


@pytest.mark.parametrize("previous", ENGINES[:1], indirect=True)
def test_an_unknown_key_is_not_adopted_nor_stored(previous: str) -> None:
    live = SessionStore("nosuchkeyanywhere1234567890")
    assert live.load() == {}
    assert live.session_key is None
    assert not SessionStore().exists("nosuchkeyanywhere1234567890")


def test_without_a_previous_engine_an_old_cookie_gets_nothing() -> None:
    old = old_session("django.contrib.sessions.backends.db", a=1)
    assert SessionStore(old.session_key).load() == {}


@pytest.mark.parametrize("previous", ENGINES[:1], indirect=True)
async def test_a_logged_in_user_stays_logged_in_after_the_switch(
    previous: str, settings: Any
) -> None:
    user = await get_user_model().objects.acreate_user("carol", password="pw")
    settings.SESSION_ENGINE = previous
    client = AsyncClient()
    await client.aforce_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    settings.SESSION_ENGINE = "live.engine"
    response = await client.get("/api/session")
    assert response.status_code == 200
    assert response.json()["reserved"] == ["_auth_user_backend", "_auth_user_hash", "_auth_user_id"]
    assert await SessionStore().aexists(cookie)
