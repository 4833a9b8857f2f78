"""The hub: one mirror per session, each event applied once and shown to every tab."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.layers import get_channel_layer

from live.realtime import events, presence
from live.realtime.hub import Hub, Mirror
from live.sessions import connections, outage, watched
from live.sessions import sql as rows
from live.sessions.db import SessionStore
from live.types import Changes, Unavailable
from tests.helpers import new_session, row_expiry

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(eq=False)
class FakeTab:
    """A socket as the hub sees it (live.realtime.hub.Tab), noting what it is shown."""

    label: str = ""
    counts_as_tab: bool = False
    shown: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)

    async def show_snapshot(self, mirror: Mirror) -> None:
        self.shown.put_nowait(("snapshot", mirror.snapshot.version))

    async def show_change(self, mirror: Mirror, change: events.Change) -> None:
        self.shown.put_nowait(("change", change))

    async def show_tabs(self, mirror: Mirror) -> None:
        self.shown.put_nowait(("tabs", mirror.present))

    async def session_gone(self, rotated: bool) -> None:
        self.shown.put_nowait(("gone", rotated))

    async def show_paused(self, paused: bool) -> None:
        self.shown.put_nowait(("paused", paused))

    async def next(self) -> tuple[str, Any]:
        """What the hub shows this tab next, awaited for at most three seconds."""
        return await asyncio.wait_for(self.shown.get(), 3)


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    """A hub on the test's own LocalChannelLayer, the one the engine publishes to."""
    hub = Hub(get_channel_layer())
    yield hub
    if hub._listener is not None:
        hub._listener.cancel()
    for mirror in hub.mirrors.values():
        if mirror.timer is not None:
            mirror.timer.cancel()


async def write(session_key: str | None, key: str, value: Any) -> int:
    """Save one key as a request would (the engine publishes the change); the new version."""
    session = SessionStore(session_key)
    await session.aset(key, value)
    await session.asave()
    return session.version


def members(hub: Hub, session_digest: str) -> set[str]:
    """The channels in the session's group on the hub's layer."""
    return set(hub.layer.groups.get(events.group_name(session_digest), ()))


async def test_hub_keeps_one_mirror_per_session_until_its_last_tab_detaches(hub: Hub):
    first, second = await new_session(a=1), await new_session(b=2)
    one, two, other = FakeTab(), FakeTab(), FakeTab()
    mirror = await hub.attach(one, first.digest)
    assert mirror is not None and mirror.snapshot.data == {"a": 1}
    assert await hub.attach(two, first.digest) is mirror
    assert await hub.attach(other, second.digest) is not mirror
    assert set(hub.mirrors) == {first.digest, second.digest}
    assert mirror.listeners == {one, two}
    # The hub's one channel joins the session's group; the tabs join nothing.
    assert members(hub, first.digest) == members(hub, second.digest) == {hub.channel}
    await hub.detach(one, mirror)
    assert hub.mirrors[first.digest] is mirror and members(hub, first.digest) == {hub.channel}
    await hub.detach(two, mirror)
    assert first.digest not in hub.mirrors and not members(hub, first.digest)
    assert second.digest in hub.mirrors


async def test_hub_attach_to_a_session_that_does_not_exist_is_none(hub: Hub):
    assert await hub.attach(FakeTab(), "0" * 64) is None
    assert not hub.mirrors and not members(hub, "0" * 64)


async def test_hub_that_cannot_read_a_session_follows_nothing_and_reads_again_later(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    session = await new_session(a=1)
    tab = FakeTab()

    async def down(*args: Any) -> None:
        raise Unavailable(outage.CANNOT_READ)

    with monkeypatch.context() as patched:
        patched.setattr(watched, "read", down)
        with pytest.raises(Unavailable):
            await hub.attach(tab, session.digest)
    assert session.digest not in hub.mirrors and not members(hub, session.digest)
    # The tab reconnects once the store answers: it is followed as any other.
    mirror = await hub.attach(tab, session.digest)
    assert mirror is not None and mirror.snapshot.data == {"a": 1}
    assert members(hub, session.digest) == {hub.channel}


async def test_hub_applies_a_change_once_and_shows_the_same_change_to_every_tab(hub: Hub):
    store = await new_session(a=1)
    tabs = [FakeTab(), FakeTab(), FakeTab()]
    for tab in tabs:
        mirror = await hub.attach(tab, store.digest)
    assert mirror is not None
    version, history = mirror.snapshot.version, len(mirror.history)
    assert await write(store.session_key, "b", 2) == version + 1
    shown = [await tab.next() for tab in tabs]
    assert [kind for kind, _ in shown] == ["change"] * 3
    # One Change for all the tabs: encoded once, however many show it.
    assert shown[0][1] is shown[1][1] is shown[2][1]
    assert shown[0][1].event["version"] == version + 1
    assert mirror.snapshot.version == version + 1 and mirror.snapshot.data == {"a": 1, "b": 2}
    assert len(mirror.history) == history + 1 and mirror.history[0]["version"] == version + 1
    # The next thing each tab is shown is the next change, not this one again.
    await write(store.session_key, "c", 3)
    for tab in tabs:
        kind, change = await tab.next()
        assert kind == "change" and change.event["version"] == version + 2
    assert mirror.snapshot.data == {"a": 1, "b": 2, "c": 3}


async def test_hub_resyncs_every_tab_when_a_version_is_missing(hub: Hub):
    store = await new_session(a=1)
    tabs = [FakeTab(), FakeTab()]
    for tab in tabs:
        mirror = await hub.attach(tab, store.digest)
    assert mirror is not None
    version = mirror.snapshot.version
    # A write whose push is lost (stored, never published) leaves a gap that
    # the next push reveals: the hub reads the session again instead of applying it.
    await connections.run(rows.merge, store.digest, Changes(sets={"b": 2}), row_expiry)
    assert await write(store.session_key, "c", 3) == version + 2
    for tab in tabs:
        assert await tab.next() == ("snapshot", version + 2)
    assert mirror.snapshot.data == {"a": 1, "b": 2, "c": 3}
    assert [entry["version"] for entry in mirror.history[:2]] == [version + 2, version + 1]


@pytest.mark.parametrize("action", ["acycle_key", "aflush"], ids=["rotated", "ended"])
async def test_hub_ends_the_session_for_every_tab_and_drops_its_mirror(hub: Hub, action: str):
    store = await new_session(a=1)
    session_digest = store.digest
    assert session_digest is not None
    tabs = [FakeTab(label="t1", counts_as_tab=True), FakeTab(label="t2", counts_as_tab=True)]
    for tab in tabs:
        mirror = await hub.attach(tab, session_digest)
        await presence.join(session_digest, tab.label)
    assert mirror is not None
    await getattr(store, action)()
    for tab in tabs:
        assert await tab.next() == ("gone", action == "acycle_key")
    assert session_digest not in hub.mirrors and not mirror.listeners
    assert not members(hub, session_digest)
    # The tabs no longer count: the hub let go of their presence too.
    assert await presence.count(session_digest) == 0


async def test_hub_starts_one_listener_when_several_sessions_open_at_once(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    stores = [await new_session(n=n) for n in range(5)]
    made: list[str] = []
    new_channel = hub.layer.new_channel

    async def counted(prefix: str = "specific.") -> str:
        # Let the other sessions' tabs run up to here too, as a fresh process's do.
        await asyncio.sleep(0)
        channel: str = await new_channel(prefix)
        made.append(channel)
        return channel

    monkeypatch.setattr(hub.layer, "new_channel", counted)
    tabs = [FakeTab() for _ in stores]
    mirrors = await asyncio.gather(
        *(hub.attach(tab, store.digest) for tab, store in zip(tabs, stores, strict=True))
    )
    assert all(mirror is not None for mirror in mirrors)
    assert made == [hub.channel]
    for tab, store in zip(tabs, stores, strict=True):
        assert members(hub, store.digest) == {hub.channel}
        await write(store.session_key, "heard", True)
        kind, change = await tab.next()
        assert kind == "change" and change.event["changes"][0]["key"] == "heard"
