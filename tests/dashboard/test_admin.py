"""Live sessions in Django's admin: listed read-only and masked, and ended by the one action."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from live.realtime.consumers import CLOSE_MOVED
from live.sessions.db import SessionStore
from tests.helpers import closed_with, communicator, new_session, receive

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/live/livesession/"


async def admin_client() -> AsyncClient:
    await get_user_model().objects.acreate_superuser("root", password="root")
    client = AsyncClient()
    assert await client.alogin(username="root", password="root")
    return client


async def test_admin_lists_sessions_with_their_user_and_never_a_value() -> None:
    owner = await get_user_model().objects.acreate_user("ada", password="ada")
    session = await new_session(SessionStore, _auth_user_id=str(owner.pk), api_token="s3cret-42")
    html = (await (await admin_client()).get(CHANGELIST)).content.decode()
    assert session.masked_key in html
    assert "ada" in html
    assert "s3cret-42" not in html
    assert session.session_key and session.session_key not in html


async def test_admin_cannot_add_change_or_delete_rows() -> None:
    session = await new_session(SessionStore, a=1)
    client = await admin_client()
    assert (await client.get(f"{CHANGELIST}add/")).status_code == 403
    # No row page: it would show the data, values and all.
    assert (await client.get(f"{CHANGELIST}{session.digest}/change/")).status_code == 403
    assert (await client.get(f"{CHANGELIST}{session.digest}/delete/")).status_code == 403


async def test_admin_action_ends_the_session_and_its_tabs_hear_it() -> None:
    ended, kept = await new_session(SessionStore, a=1), await new_session(SessionStore, b=2)
    tab = communicator(ended.session_key)
    await tab.connect()
    await receive(tab)
    client = await admin_client()
    answer = await client.post(
        CHANGELIST, {"action": "end_sessions", "_selected_action": [ended.digest]}
    )
    assert answer.status_code == 302
    assert (await receive(tab))["type"] == "session.ended"
    await closed_with(tab, CLOSE_MOVED)
    assert not await SessionStore().aexists(ended.session_key)
    assert await SessionStore().aexists(kept.session_key)


async def test_admin_refuses_a_user_who_is_not_staff() -> None:
    session = await new_session(SessionStore, a=1)
    await get_user_model().objects.acreate_user("plain", password="plain")
    client = AsyncClient()
    assert await client.alogin(username="plain", password="plain")
    answer = await client.post(
        CHANGELIST, {"action": "end_sessions", "_selected_action": [session.digest]}
    )
    assert answer.status_code == 302 and "/login/" in answer["Location"]
    assert await SessionStore().aexists(session.session_key)
