"""Staff pages: others are refused and told why, staff list the sessions and watch one live."""

from __future__ import annotations

import logging

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from tests.helpers import client_for, communicator, logged_in_client, make_user, new_session

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("path", ["/staff/sessions/", "/staff/sessions/" + "a" * 64 + "/"])
async def test_staff_refusal_says_why_and_how_to_sign_in(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = await AsyncClient().get(path)
    assert response.status_code == 403
    body = response.content.decode()
    assert "Only staff users may see other sessions." in body
    assert 'href="/#account"' in body
    assert "ws-connect" not in body
    refusals = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(refusals) == 1 and refusals[0].exc_info is None


async def test_staff_refusal_names_the_signed_in_user() -> None:
    user = await get_user_model().objects.acreate_user("dora", password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get("/staff/sessions/")
    assert response.status_code == 403
    assert "<strong>dora</strong>" in response.content.decode()


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
    await make_user("boss", staff=True)
    store = await new_session(favorite_color="blue")
    staff = await logged_in_client("boss")
    listing = (await staff.get("/staff/sessions/")).content.decode()
    assert store.masked_key in listing and str(store.session_key) not in listing
    page = (await staff.get(f"/staff/sessions/{store.digest}/")).content.decode()
    assert 'data-session-key="favorite_color"' in page
    assert 'action="/keys/"' not in page and "Delete" not in page


async def open_staff_list() -> WebsocketCommunicator:
    """A staff member's socket on the live list, past its first rendering."""
    await make_user("boss", staff=True)
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
