"""Staff watching someone else's session see secret-looking values masked; the owner sees all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.test import AsyncClient

from live.conf import session_store
from live.sessions.keys import digest
from live.web.masking import MASKED, Mask, watcher_mask
from tests.helpers import communicator, key_of, logged_in_client, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "tok-4f1d9c7e"
NEW_TOKEN = "tok-8b2a6e30"


@dataclass
class Watched:
    owner: AsyncClient
    digest: str
    auth_hash: str


async def watched_session() -> Watched:
    """A signed-in owner whose session holds an api_token, and a staff user to watch it."""
    await make_user("owner")
    owner = await logged_in_client("owner")
    store = session_store()(key_of(owner))
    await store.aset("api_token", TOKEN)
    await store.aset("favorite_color", "teal")
    await store.asave()
    auth_hash = await store.aget("_auth_user_hash")
    assert auth_hash
    return Watched(owner, digest(key_of(owner)), auth_hash)


async def staff_client() -> AsyncClient:
    await make_user("boss", staff=True)
    return await logged_in_client("boss")


async def watch_socket(staff: AsyncClient, session_digest: str) -> Any:
    cookie = staff.cookies[settings.SESSION_COOKIE_NAME].value
    comm = communicator(cookie, json_mode=False, path=f"/ws/staff/sessions/{session_digest}/")
    connected, _ = await comm.connect()
    assert connected
    return comm


async def change_token(owner: AsyncClient) -> None:
    store = session_store()(key_of(owner))
    await store.aset("api_token", NEW_TOKEN)
    await store.asave()


def version_of(html: str) -> int:
    found = re.search(r'id="session-keys" data-session-version="(\d+)"', html)
    assert found, html
    return int(found.group(1))


async def pushed_change(comm: Any, after: str) -> str:
    """The first push of the session's keys at a version later than the one `after` shows."""
    while True:
        text: str = await comm.receive_from(timeout=3)
        if 'id="session-keys"' in text and version_of(text) > version_of(after):
            return text


def test_mask_hides_secret_looking_keys_and_djangos_hash_only() -> None:
    mask = watcher_mask()
    assert mask is not None
    for key in ("_auth_user_hash", "api_token", "password", "csrf", "stripe_key", "API_SECRET"):
        assert mask.hides(key), key
    for key in ("favorite_color", "_auth_user_id", "_auth_user_backend", "_session_expiry"):
        assert not mask.hides(key), key
    assert Mask("").hides("_auth_user_hash") and not Mask("").hides("api_token")


def test_mask_is_off_with_mask_values_false(settings: Any) -> None:
    settings.LIVE_SESSIONS = {"MASK_VALUES": False}
    assert watcher_mask() is None


async def test_staff_watch_page_masks_the_hash_and_tokens() -> None:
    watched = await watched_session()
    staff = await staff_client()
    response = await staff.get(f"/staff/sessions/{watched.digest}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-session-key="api_token"' in page and 'data-reserved-key="_auth_user_hash"' in page
    assert TOKEN not in page and watched.auth_hash not in page
    assert MASKED in page
    assert "teal" in page


async def test_staff_watch_pushes_mask_the_hash_and_tokens() -> None:
    watched = await watched_session()
    comm = await watch_socket(await staff_client(), watched.digest)
    snapshot = await comm.receive_from(timeout=3)
    assert 'data-session-key="api_token"' in snapshot and "teal" in snapshot
    assert TOKEN not in snapshot and watched.auth_hash not in snapshot
    await change_token(watched.owner)
    pushed = await pushed_change(comm, snapshot)
    assert 'data-session-key="api_token"' in pushed and f"{MASKED} → {MASKED}" in pushed
    # The timeline's "old → new" line is masked as well as the row.
    assert NEW_TOKEN not in pushed and TOKEN not in pushed and watched.auth_hash not in pushed
    await comm.disconnect()


async def test_staff_see_every_value_with_mask_values_false(settings: Any) -> None:
    settings.LIVE_SESSIONS = {**settings.LIVE_SESSIONS, "MASK_VALUES": False}
    watched = await watched_session()
    staff = await staff_client()
    page = (await staff.get(f"/staff/sessions/{watched.digest}/")).content.decode()
    assert TOKEN in page and watched.auth_hash in page
    comm = await watch_socket(staff, watched.digest)
    snapshot = await comm.receive_from(timeout=3)
    assert TOKEN in snapshot and watched.auth_hash in snapshot
    await change_token(watched.owner)
    pushed = await pushed_change(comm, snapshot)
    assert NEW_TOKEN in pushed and f"{TOKEN}&quot; → &quot;{NEW_TOKEN}" in pushed
    await comm.disconnect()


async def test_owners_own_page_shows_its_own_values() -> None:
    watched = await watched_session()
    page = (await watched.owner.get("/")).content.decode()
    assert TOKEN in page and watched.auth_hash in page
    assert MASKED not in page
