"""A hung or restarted Redis, against real redis-servers: writes answer, and say what is known.

Each test freezes a redis-server of its own (SIGSTOP: it keeps its sockets and
answers nothing, as a hung host does) or restarts it, and awaits every answer
with redis_client.BUDGET as the assertion's timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from channels.layers import channel_layers, get_channel_layer
from django.test import AsyncClient
from yarl import URL

from live import redis_client
from live.realtime import events
from live.sessions import db as db_engine
from live.sessions import redis as redis_engine
from live.sessions import redis_script
from live.sessions.base import LiveSessionBase
from live.types import Unavailable
from tests.conftest import RedisServer, Server, free_port, migrate, server_env

Start = Callable[..., RedisServer]
BUDGET = redis_client.BUDGET


def restart(server: RedisServer) -> None:
    server.kill()
    server.start()


@pytest.fixture(autouse=True)
async def _close_redis() -> AsyncIterator[None]:
    yield
    await redis_client.aclose()


def use_layer(settings: Any, url: str) -> None:
    """The channel layer on this Redis, configured as asgi_config.settings does."""
    host = {"address": url, "socket_connect_timeout": 2, "socket_timeout": 2}
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [host]},
        }
    }
    channel_layers.backends.clear()


async def saved(session: LiveSessionBase, **data: Any) -> None:
    """Set the keys and save, within the budget."""
    for key, value in data.items():
        await session.aset(key, value)
    await asyncio.wait_for(session.asave(), BUDGET)


async def until(layer: Any, channel: str, wanted: Callable[[dict[str, Any]], bool]) -> Any:
    """The first message on the channel that `wanted` accepts, skipping others."""
    async with asyncio.timeout(5):
        while not wanted(message := await layer.receive(channel)):
            pass
    return message


def sessions_in(settings: Any, server: RedisServer) -> type[redis_engine.SessionStore]:
    settings.REDIS_URL = server.url
    settings.SESSION_ENGINE = "live.redis_engine"
    return redis_engine.SessionStore


# --- sessions in the database, pushes through a hung Redis ------------------------------


@pytest.mark.django_db(transaction=True)
async def test_outage_writes_answer_while_the_channel_layer_hangs(
    own_redis: Start, settings: Any, monkeypatch: pytest.MonkeyPatch
):
    redis = own_redis()
    use_layer(settings, redis.url)
    monkeypatch.setattr(events, "MAX_PENDING", 3)
    layer = get_channel_layer()
    session = db_engine.SessionStore()
    await saved(session, a=0)
    listener = await layer.new_channel()
    await layer.group_add(events.group_name(session.digest), listener)
    await saved(session, a=1)
    assert (await until(layer, listener, lambda m: m["type"] == events.CHANGED))["version"] == 1
    with redis.frozen():
        for n in range(2, 12):
            await saved(session, a=n)
        # One push is on its way, a few wait, the rest were dropped.
        outbox = events._outbox.get()
        assert len(outbox.waiting) <= 3 and outbox.lost
    assert dict(await db_engine.SessionStore(session.session_key).aload()) == {"a": 11}
    # Once the layer answers, the session's listeners are told to resync.
    await saved(session, b=1)
    await until(layer, listener, lambda m: m["type"] == events.STALE)


async def test_outage_publishing_returns_at_once_and_keeps_the_order(
    own_redis: Start, settings: Any
):
    redis = own_redis()
    use_layer(settings, redis.url)
    layer = get_channel_layer()
    listener = await layer.new_channel()
    digest = "f" * 64
    await layer.group_add(events.group_name(digest), listener)
    with redis.frozen():
        for version in range(1, 6):
            event = events.changed_event(version, [], "test", 0.0)
            await asyncio.wait_for(events.publish_changed(digest, event), 0.1)
    got = [(await until(layer, listener, lambda m: True))["version"] for _ in range(5)]
    assert got == [1, 2, 3, 4, 5]


def test_outage_daphne_answers_writes_while_redis_hangs(tmp_path: Path, own_redis: Start):
    redis = own_redis()
    env = server_env(tmp_path, REDIS_URL=redis.url)
    migrate(env)
    server = Server(free_port(), env, tmp_path / "daphne.log")
    server.start()
    try:
        asyncio.run(_write_through(server, redis))
    finally:
        server.stop()


async def _write_through(server: Server, redis: RedisServer) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(server.url + "/") as response:
            assert response.status == 200
        token = jar.filter_cookies(URL(server.url))["csrftoken"].value
        headers = {"X-CSRFToken": token, "Origin": server.url, "Referer": server.url + "/"}
        async with http.ws_connect(
            server.ws_url, protocols=["session.json"], headers={"Origin": server.url}
        ) as tab:
            assert json.loads((await tab.receive(timeout=5)).data)["type"] == events.SNAPSHOT

            async def put(key: str, value: int) -> int:
                url = f"{server.url}/api/session/keys/{key}"
                async with http.put(url, data=json.dumps(value), headers=headers) as response:
                    return response.status

            with redis.frozen():
                for n in range(4):
                    assert await asyncio.wait_for(put(f"during{n}", n), BUDGET) == 200
            async with http.get(server.url + "/api/session") as response:
                data = (await response.json())["data"]
            assert {f"during{n}": n for n in range(4)}.items() <= data.items()


# --- sessions in a hung or stopped Redis ----------------------------------------------


async def test_outage_a_request_answers_503_in_time_when_redis_hangs(
    own_redis: Start, settings: Any
):
    redis = own_redis()
    sessions_in(settings, redis)
    client = AsyncClient()
    assert (await client.get("/api/session")).status_code == 200
    with redis.frozen():
        put = client.put("/api/session/keys/a", data="1", content_type="application/json")
        response = await asyncio.wait_for(put, BUDGET + 0.5)
    assert response.status_code == 503
    assert response.json() == {"error": redis_script.SLOW_READ}


async def test_outage_a_write_sent_to_a_hung_redis_may_or_may_not_be_saved(
    own_redis: Start, settings: Any
):
    redis = own_redis()
    Store = sessions_in(settings, redis)
    session = Store()
    await saved(session, a=1)
    session = Store(session.session_key)
    await session.aload()
    await session.aset("b", 2)
    with redis.frozen(), pytest.raises(Unavailable) as refused:
        await asyncio.wait_for(session.asave(), BUDGET + 0.5)
    assert str(refused.value) == redis_script.MAYBE_SAVED
    # It was sent: Redis ran it when it woke, as the sentence allowed.
    assert dict(await Store(session.session_key).aload()) == {"a": 1, "b": 2}


async def test_outage_a_write_that_never_got_a_connection_says_nothing_was_saved(
    own_redis: Start, settings: Any
):
    redis = own_redis()
    Store = sessions_in(settings, redis)
    session = Store()
    await saved(session, a=1)
    session = Store(session.session_key)
    await session.aload()
    await session.aset("b", 2)
    # A new connection to a hung Redis never finishes its handshake.
    await redis_client.aclose()
    with redis.frozen(), pytest.raises(Unavailable) as refused:
        await asyncio.wait_for(session.asave(), BUDGET + 0.5)
    assert str(refused.value) == redis_script.NOT_SAVED_SLOW
    assert dict(await Store(session.session_key).aload()) == {"a": 1}


async def test_outage_a_write_to_a_stopped_redis_says_nothing_was_saved(
    own_redis: Start, settings: Any
):
    redis = own_redis()
    Store = sessions_in(settings, redis)
    session = Store()
    await saved(session, a=1)
    await session.aset("b", 2)
    # The loop runs meanwhile and sees the pooled connections close.
    await asyncio.to_thread(redis.stop)
    with pytest.raises(Unavailable) as refused:
        await asyncio.wait_for(session.asave(), BUDGET)
    assert str(refused.value) == redis_script.NOT_SAVED


# --- after a restart: connections left in the pool ----------------------------------


async def test_outage_reads_after_a_restart_retry_a_dead_pooled_connection(
    own_redis: Start, settings: Any
):
    redis = own_redis("--save", "", "--appendonly", "yes", "--appendfsync", "always")
    Store = sessions_in(settings, redis)
    session = Store()
    await saved(session, a=1)
    # Several connections sit in the pool...
    await asyncio.gather(*(Store.aread(session.digest) for _ in range(5)))
    # ...when Redis restarts before this loop hears of it.
    restart(redis)
    reads = [Store.aread(session.digest) for _ in range(5)]
    found = await asyncio.wait_for(asyncio.gather(*reads), BUDGET)
    assert [snapshot.data for snapshot in found] == [{"a": 1}] * 5
    assert await asyncio.wait_for(Store.ahistory(session.digest), BUDGET) == []


async def test_outage_writes_after_a_restart_get_a_fresh_connection(
    own_redis: Start, settings: Any
):
    redis = own_redis("--save", "", "--appendonly", "yes", "--appendfsync", "always")
    Store = sessions_in(settings, redis)
    sessions = [Store() for _ in range(5)]
    for n, session in enumerate(sessions):
        await saved(session, n=n)
    await asyncio.gather(*(Store.aread(s.digest) for s in sessions))
    # The loop runs while Redis restarts, as a server's does: the pool sees its
    # connections close and hands out fresh ones; a write is never sent twice.
    await asyncio.to_thread(restart, redis)
    await asyncio.gather(*(saved(session, again=True) for session in sessions))
    for n, session in enumerate(sessions):
        assert dict(await Store(session.session_key).aload()) == {"n": n, "again": True}


def test_outage_sync_reads_after_a_restart_retry_a_dead_pooled_connection(
    own_redis: Start, settings: Any
):
    redis = own_redis("--save", "", "--appendonly", "yes", "--appendfsync", "always")
    Store = sessions_in(settings, redis)
    session = Store()
    session["a"] = 1
    session.save()
    try:
        restart(redis)
        assert dict(Store(session.session_key).load()) == {"a": 1}
    finally:
        redis_client._sync_client.cache_clear()
