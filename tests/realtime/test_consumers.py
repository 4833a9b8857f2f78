"""The consumer through WebsocketCommunicator: snapshot, pushes, isolation, origin."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.conf import settings

from live.realtime.consumers import CLOSE_MOVED, CLOSE_NO_SESSION, CLOSE_TOO_BIG
from live.sessions import connections
from live.sessions import sql as rows
from live.sessions.db import SessionStore
from live.types import Changes
from tests.helpers import client_for, closed_with, communicator, new_session, receive

pytestmark = pytest.mark.django_db(transaction=True)


async def test_consumer_sends_snapshot_on_connect():
    store = await new_session(favorite_color="blue", _private=1)
    comm = communicator(store.session_key)
    connected, subprotocol = await comm.connect()
    assert connected and subprotocol == "session.json"
    message = await receive(comm)
    assert message == {
        "type": "session.snapshot",
        "version": store.version,
        "data": {"favorite_color": "blue"},
    }
    await comm.disconnect()


async def test_consumer_pushes_change_from_plain_view():
    store = await new_session(a=1)
    comm = communicator(store.session_key)
    await comm.connect()
    first = await receive(comm)
    response = await client_for(store.session_key).get("/color/")
    assert response.status_code == 200
    pushed = await receive(comm)
    assert pushed["type"] == "session.changed"
    assert pushed["version"] == first["version"] + 1
    assert pushed["changes"] == [{"op": "set", "key": "favorite_color", "value": "green"}]
    assert pushed["source"] == "GET /color/"
    await comm.disconnect()


async def test_consumer_pushes_change_from_api_write():
    store = await new_session()
    comm = communicator(store.session_key)
    await comm.connect()
    await receive(comm)
    response = await client_for(store.session_key).put(
        "/api/session/keys/cart", data=json.dumps([1, 2]), content_type="application/json"
    )
    assert response.status_code == 200
    pushed = await receive(comm)
    assert pushed["version"] == response.json()["version"]
    assert pushed["changes"] == [{"op": "set", "key": "cart", "value": [1, 2]}]
    await comm.disconnect()


async def test_consumer_isolates_sessions():
    mine, theirs = await new_session(), await new_session()
    comm_mine, comm_theirs = communicator(mine.session_key), communicator(theirs.session_key)
    await comm_mine.connect()
    await comm_theirs.connect()
    await receive(comm_mine)
    await receive(comm_theirs)
    await client_for(theirs.session_key).get("/color/")
    pushed = await receive(comm_theirs)
    assert pushed["changes"][0]["key"] == "favorite_color"
    # The other session's socket gets nothing: awaiting it times out empty.
    assert await comm_mine.receive_nothing(timeout=0.3)
    await comm_mine.disconnect()
    await comm_theirs.disconnect()


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", None],
    ids=["foreign", "null", "missing"],
)
async def test_consumer_refuses_other_origins(origin):
    store = await new_session()
    comm = communicator(store.session_key, origin=origin)
    connected, _ = await comm.connect()
    assert not connected


async def test_consumer_without_session_says_ended_and_closes():
    comm = communicator("nosuchsessionkey1234567890abcdef")
    connected, _ = await comm.connect()
    assert connected
    assert await receive(comm) == {"type": "session.ended"}
    closed = await comm.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4404}


async def test_consumer_html_mode_sends_fragments_with_ids():
    store = await new_session(note="<img src=x onerror=alert(1)>")
    comm = communicator(store.session_key, json_mode=False)
    connected, subprotocol = await comm.connect()
    assert connected and subprotocol is None
    html = await comm.receive_from(timeout=3)
    assert 'id="session-keys"' in html and 'id="session-meta"' in html
    assert 'data-session-key="note"' in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img src=x" not in html
    # The tab count follows: this socket counts itself.
    tabs = await comm.receive_from(timeout=3)
    assert 'id="live-tabs"' in tabs and ">1<" in tabs
    await comm.disconnect()


async def test_consumer_counts_tabs_live():
    store = await new_session()
    first = communicator(store.session_key, json_mode=False)
    await first.connect()
    await first.receive_from(timeout=3)  # snapshot
    assert ">1<" in await first.receive_from(timeout=3)
    second = communicator(store.session_key, json_mode=False)
    await second.connect()
    assert ">2<" in await first.receive_from(timeout=3)
    await second.disconnect()
    assert ">1<" in await first.receive_from(timeout=3)
    await first.disconnect()


async def test_consumer_follows_rotation_by_reconnecting_with_its_cookie():
    store = await new_session(a=1)
    comm = communicator(store.session_key)
    await comm.connect()
    snapshot = await receive(comm)
    client = client_for(store.session_key)
    response = await client.post("/api/session/cycle")
    assert response.status_code == 200
    new_key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != store.session_key
    # The socket is told and closed; it never follows the new key by itself.
    assert await receive(comm) == {"type": "session.rotated"}
    await closed_with(comm, CLOSE_MOVED)
    # Reconnecting with the browser's new cookie finds the session, data and all.
    again = communicator(new_key)
    await again.connect()
    reconnected = await receive(again)
    assert reconnected["type"] == "session.snapshot"
    assert reconnected["data"] == {"a": 1} and reconnected["version"] > snapshot["version"]
    await client_for(new_key).get("/color/")
    assert (await receive(again))["changes"][0]["key"] == "favorite_color"
    await again.disconnect()
    # The old cookie leads nowhere.
    stale = communicator(store.session_key)
    await stale.connect()
    assert await receive(stale) == {"type": "session.ended"}
    await closed_with(stale, CLOSE_NO_SESSION)


async def test_consumer_ends_on_flush_and_its_cookie_finds_no_session():
    store = await new_session(a=1)
    comm = communicator(store.session_key)
    await comm.connect()
    await receive(comm)
    response = await client_for(store.session_key).post("/api/session/flush")
    assert response.status_code == 200
    assert await receive(comm) == {"type": "session.ended"}
    await closed_with(comm, CLOSE_MOVED)
    again = communicator(store.session_key)
    await again.connect()
    assert await receive(again) == {"type": "session.ended"}
    await closed_with(again, CLOSE_NO_SESSION)


async def test_consumer_resyncs_on_request_and_on_gap():
    store = await new_session(a=1)
    comm = communicator(store.session_key)
    await comm.connect()
    first = await receive(comm)
    await comm.send_to(text_data=json.dumps({"type": "resync"}))
    assert await receive(comm) == first
    # A write whose push is lost (stored, never published) leaves a gap that
    # the next push reveals; the consumer then sends a fresh snapshot instead.
    await connections.run(rows.merge, store.digest, Changes(sets={"b": 2}), store._expiry)
    await client_for(store.session_key).get("/color/")
    resynced = await receive(comm)
    assert resynced["type"] == "session.snapshot"
    assert resynced["data"] == {"a": 1, "b": 2, "favorite_color": "green"}
    await comm.disconnect()


async def test_consumer_says_ended_when_session_expires():
    store = SessionStore()
    await store.aset("a", 1)
    await store.aset_expiry(1)
    await store.acreate()
    comm = communicator(store.session_key)
    await comm.connect()
    assert (await receive(comm))["data"] == {"a": 1}
    # No write happens: the consumer's own expiry watch must notice.
    assert await comm.receive_from(timeout=4) == json.dumps(
        {"type": "session.ended"}, separators=(",", ":")
    )
    await comm.disconnect()


async def test_consumer_closes_socket_that_sends_huge_message():
    store = await new_session()
    comm = communicator(store.session_key)
    await comm.connect()
    await receive(comm)
    await comm.send_to(text_data="x" * 10_000)
    await closed_with(comm, CLOSE_TOO_BIG)


async def test_consumer_refuses_tabs_beyond_limit(settings):
    settings.LIVE_SESSIONS = {"MAX_TABS": 2}
    store = await new_session()
    tabs = [communicator(store.session_key) for _ in range(2)]
    for tab in tabs:
        await tab.connect()
        await receive(tab)
    third = communicator(store.session_key)
    await third.connect()
    await closed_with(third, 4429)
    for tab in tabs:
        await tab.disconnect()


async def test_consumer_limits_resync_requests():
    store = await new_session(a=1)
    comm = communicator(store.session_key)
    await comm.connect()
    await receive(comm)
    for _ in range(200):
        await comm.send_to(text_data=json.dumps({"type": "resync"}))
    answers = 0
    while not await comm.receive_nothing(timeout=0.3):
        assert (await receive(comm))["type"] == "session.snapshot"
        answers += 1
    # The burst, plus what the rate refilled while the requests were read.
    assert 50 <= answers < 60
    await comm.disconnect()


def plain_renderer(
    snapshot: Any,
    tabs: int,
    scope: dict[str, Any],
    only: str | None = None,
    history: Any = None,
    **more: Any,
) -> str:
    """What another project might render instead of the dashboard's partials."""
    version = snapshot.version if snapshot else "-"
    return f'<p id="mine">{version} {tabs} {only} {sorted(snapshot.data) if snapshot else []}</p>'


async def test_consumer_renders_with_the_configured_renderer(settings):
    # Another project plugs its own HTML in by configuration alone.
    settings.LIVE_SESSIONS = {"RENDERER": "tests.realtime.test_consumers.plain_renderer"}
    store = await new_session(a=1)
    comm = communicator(store.session_key, json_mode=False)
    await comm.connect()
    assert await comm.receive_from(timeout=3) == f"<p id=\"mine\">{store.version} 1 None ['a']</p>"
    assert await comm.receive_from(timeout=3) == f"<p id=\"mine\">{store.version} 1 tabs ['a']</p>"
    await client_for(store.session_key).get("/color/")
    changed = await comm.receive_from(timeout=3)
    assert changed == f"<p id=\"mine\">{store.version + 1} 1 None ['a', 'favorite_color']</p>"
    await comm.disconnect()


async def test_consumer_lists_the_labels_of_open_tabs():
    store = await new_session()
    first = communicator(store.session_key, json_mode=False, path="/ws/session/?tab=x1wq")
    await first.connect()
    await first.receive_from(timeout=3)  # snapshot
    assert "<code>x1wq</code>" in await first.receive_from(timeout=3)
    # A label that is not plain is not shown at all.
    second = communicator(store.session_key, json_mode=False, path="/ws/session/?tab=%3Cb%3E")
    await second.connect()
    tabs = await first.receive_from(timeout=3)
    assert "<span data-live-tabs>2</span>" in tabs and "&lt;b" not in tabs and "<b>" not in tabs
    await second.disconnect()
    assert "<span data-live-tabs>1</span>" in await first.receive_from(timeout=3)
    # A label leaves with its tab.
    third = communicator(store.session_key, json_mode=False, path="/ws/session/?tab=b2")
    await third.connect()
    assert "<code>b2</code>, <code>x1wq</code>" in await first.receive_from(timeout=3)
    await third.disconnect()
    alone = await first.receive_from(timeout=3)
    assert "<span data-live-tabs>1</span>" in alone and "b2" not in alone
    await first.disconnect()


async def test_idle_tabs_hold_one_task_each_and_still_receive_and_close():
    # Idle tabs are the product's memory bill: each is one task reading its
    # socket, not channels' extra task per pending read.
    store = await new_session(a=1)
    comms = [communicator(store.session_key) for _ in range(5)]
    for comm in comms:
        await comm.connect()
        await receive(comm)
    before = len(asyncio.all_tasks())
    more = [communicator(store.session_key) for _ in range(5)]
    for comm in more:
        await comm.connect()
        await receive(comm)
    # The communicator runs each application in one task; nothing else per tab.
    assert len(asyncio.all_tasks()) - before == len(more)
    await comms[0].send_to(text_data=json.dumps({"type": "resync"}))
    assert (await receive(comms[0]))["type"] == "session.snapshot"
    for comm in comms + more:
        await comm.disconnect()
