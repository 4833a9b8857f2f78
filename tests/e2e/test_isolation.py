"""One session never reads, writes or receives another's, and its key never leaks.

Covers many concurrent sessions with their sockets, keys offered by the client,
where the key could leak (channel groups, Redis, logs, pages, stored rows),
CSRF on every unsafe method of every URL, socket origins, what old sockets see
after logout, cycle or expiry, and the security headers and cookie flags.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import AsyncClient
from django.urls import URLPattern, resolve

from dashboard.urls import urlpatterns as site_patterns
from live.realtime import events, presence
from live.realtime.consumers import CLOSE_MOVED
from live.sessions.keys import digest
from live.urls import urlpatterns as live_patterns
from tests.conftest import RedisServer, Server, free_port, migrate, server_env
from tests.helpers import (
    COOKIE,
    closed_with,
    communicator,
    csrf_client,
    key_of,
    logged_in_client,
    make_user,
    open_page,
    put,
    receive,
    state,
    token,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]

UNSAFE = ("post", "put", "patch", "delete")


# --- many sessions at once ------------------------------------------------------------


class Owner:
    """One session, its model of what it stored, and everything its socket received."""

    def __init__(self, n: int, client: AsyncClient, comm: WebsocketCommunicator) -> None:
        self.n = n
        self.client = client
        self.comm: WebsocketCommunicator | None = comm
        self.model: dict[str, Any] = {}
        self.received: list[dict[str, Any]] = []
        self.random = random.Random(1000 + n)

    def mine(self, key: str, value: Any) -> bool:
        return key.startswith(f"s{self.n}-") and value.get("owner") == self.n

    async def catch_up(self, version: int, data: dict[str, Any]) -> None:
        """Read this socket's pushes until it shows the session's final state."""
        await self.connect()
        assert self.comm is not None
        while self.replay() != (version, data):
            self.received.append(json.loads(await self.comm.receive_from(timeout=3)))

    async def connect(self) -> None:
        """Open a socket with the browser's cookie, as the page does, if it has a session."""
        if self.comm is None and self.client.cookies[COOKIE].value:
            self.comm = communicator(key_of(self.client))
            assert (await self.comm.connect())[0]

    async def reconnect(self) -> None:
        """Read the socket up to the close a rotation or a flush makes, then connect again."""
        assert self.comm is not None
        while (output := await self.comm.receive_output(timeout=3))["type"] != "websocket.close":
            self.received.append(json.loads(output["text"]))
        assert output["code"] == CLOSE_MOVED
        await self.comm.disconnect()
        self.comm = None
        await self.connect()

    async def act(self, steps: int) -> None:
        for step in range(steps):
            roll = self.random.random()
            keys = sorted(self.model)
            if roll < 0.6 or not keys:
                key = f"s{self.n}-k{self.random.randrange(6)}"
                value = {"owner": self.n, "step": step, "pad": "x" * self.random.randrange(50)}
                assert (await put(self.client, key, value)).status_code == 200
                self.model[key] = value
                await self.connect()
            elif roll < 0.85:
                key = self.random.choice(keys)
                response = await self.client.delete(
                    f"/api/session/keys/{key}", headers=token(self.client)
                )
                assert response.status_code == 200
                del self.model[key]
            elif roll < 0.93:
                response = await self.client.post("/api/session/cycle", headers=token(self.client))
                assert response.status_code == 200
                await self.reconnect()
            elif roll < 0.97:
                response = await self.client.delete("/api/session", headers=token(self.client))
                assert response.status_code == 200
                self.model.clear()
            else:
                response = await self.client.post("/api/session/flush", headers=token(self.client))
                assert response.status_code == 200
                self.model.clear()
                await self.reconnect()
            # Let other sessions' requests interleave with this one's.
            await asyncio.sleep(0)

    def replay(self) -> tuple[int, dict[str, Any]]:
        """What the socket shows after applying its messages in order."""
        version, data = -1, {}
        for message in self.received:
            if message["type"] == "session.snapshot":
                version, data = message["version"], dict(message["data"])
            elif message["type"] == "session.changed":
                assert message["version"] > version, (self.n, message)
                events.apply_change(data, message)
                version = message["version"]
        return version, data


async def test_many_concurrent_sessions_receive_only_their_own_data():
    owners = []
    for n in range(20):
        client = await csrf_client()
        comm = communicator(key_of(client))
        connected, _ = await comm.connect()
        assert connected
        owners.append(Owner(n, client, comm))
    await asyncio.gather(*(owner.act(15) for owner in owners))
    for owner in owners:
        final = await state(owner.client)
        assert final["data"] == owner.model, owner.n
        await owner.catch_up(final["version"], final["data"])
    strangers = 0
    for owner in owners:
        for message in owner.received:
            values = list(message.get("data", {}).items()) + [
                (c["key"], c.get("value", {"owner": owner.n})) for c in message.get("changes", [])
            ]
            strangers += sum(not owner.mine(key, value) for key, value in values)
        if owner.comm is not None:
            await owner.comm.disconnect()
    assert strangers == 0
    print(f"\nisolation: 20 sessions, {sum(len(o.received) for o in owners)} pushes, 0 strangers")


# --- keys offered by the client are ignored ------------------------------------------------


async def test_no_endpoint_takes_a_session_key_from_the_client():
    victim, attacker = await csrf_client(), await csrf_client()
    assert (await put(victim, "secret", "victim's")).status_code == 200
    before = await state(victim)
    stolen = key_of(victim)
    offers = {"sessionid": stolen, "session_key": stolen, COOKIE: stolen}
    query = "?" + "&".join(f"{k}={v}" for k, v in offers.items())
    responses = [
        await attacker.get("/api/session" + query),
        await attacker.get("/api/session/keys/secret" + query),
        await attacker.get("/" + query),
        await attacker.put(
            "/api/session/keys/planted" + query,
            json.dumps("attacker's"),
            "application/json",
            headers=token(attacker, **{"X-Session-Key": stolen, "Authorization": stolen}),
        ),
        await attacker.post(
            "/keys/" + query, {"key": "planted2", "value": "x", **offers}, headers=token(attacker)
        ),
        await attacker.delete("/api/session/keys/secret" + query, headers=token(attacker)),
    ]
    for response in responses:
        assert "victim's" not in response.content.decode()
    assert responses[-1].status_code == 404  # the attacker's own session has no "secret"
    assert await state(victim) == before
    assert set((await state(attacker))["data"]) == {"planted", "planted2"}
    # A socket reads its session from its cookie only, never from its URL.
    comm = communicator(key_of(attacker), path="/ws/session/" + query)
    await comm.connect()
    assert set((await receive(comm))["data"]) == {"planted", "planted2"}
    await comm.disconnect()
    comm = communicator(None, path="/ws/session/" + query)
    await comm.connect()
    assert await receive(comm) == {"type": "session.ended"}
    assert (await comm.receive_output(timeout=3))["type"] == "websocket.close"
    response = await attacker.delete("/api/session" + query, headers=token(attacker))
    assert response.status_code == 200 and response.json()["data"] == {}
    assert await state(victim) == before


# --- where the key could leak ---------------------------------------------------------


async def stored_text() -> str:
    """Every row of every table, as text: the database at rest."""

    def dump() -> str:
        rows: list[str] = []
        with connection.cursor() as cursor:
            for table in connection.introspection.table_names(cursor):
                cursor.execute(f'SELECT * FROM "{table}"')
                rows.extend(map(repr, cursor.fetchall()))
        return "\n".join(rows)

    return await sync_to_async(dump)()


async def test_session_key_absent_from_groups_presence_rows_pages_and_pushes():
    await make_user("boss", staff=True)
    clients = [await csrf_client() for _ in range(3)]
    for n, client in enumerate(clients):
        assert (await put(client, "n", n)).status_code == 200
    tabs = [communicator(key_of(c), json_mode=n % 2 == 0) for n, c in enumerate(clients)]
    for comm in tabs:
        assert (await comm.connect())[0]
    staff = await logged_in_client("boss")
    keys = [key_of(c) for c in [*clients, staff]]
    layer = get_channel_layer()
    groups = set(layer.groups)  # type: ignore[attr-defined]
    assert {f"session.{digest(key_of(c))}" for c in clients} <= groups
    for group in groups:
        assert re.fullmatch(r"session\.[0-9a-f]{64}|sessions\.staff", group), group
    assert set(presence._local) == {digest(key_of(c)) for c in clients}
    texts = [
        repr(groups),
        repr(layer.channels),  # type: ignore[attr-defined]
        await stored_text(),
        (await staff.get("/staff/sessions/")).content.decode(),
        (await staff.get(f"/staff/sessions/{digest(key_of(clients[0]))}/")).content.decode(),
    ]
    for client, comm in zip(clients, tabs, strict=True):
        page = (await client.get("/")).content.decode()
        snapshot = (await client.get("/api/session")).content.decode()
        assert "…" in page and key_of(client)[:4] + "…" + key_of(client)[-4:] in page
        assert (await put(client, "again", True)).status_code == 200
        texts += [page, snapshot, await comm.receive_from(timeout=3)]
        await comm.disconnect()
    for key in keys:
        assert len(key) >= 32
        for text in texts:
            assert key not in text


def traffic_keys(jar: aiohttp.CookieJar) -> str:
    return next(c.value for c in jar if c.key == COOKIE)


async def drive_traffic(server: Server) -> set[str]:
    """Writes, errors, sockets, a cycle and a flush against a real server; the keys it used."""
    keys = set()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        csrf = await open_page(http, server)
        keys.add(traffic_keys(jar))
        headers = {"Origin": server.url}
        ws = await http.ws_connect(server.ws_url, protocols=["session.json"], headers=headers)
        await ws.receive_json(timeout=5)
        for path, status in [("a", 200), ("_x", 400), ("%FF", 400)]:
            async with http.put(
                f"{server.url}/api/session/keys/{path}", data=b"1", headers=csrf
            ) as response:
                assert response.status == status
        async with http.put(server.url + "/api/session/keys/a", data=b"2") as response:
            assert response.status == 403  # no CSRF token
        async with http.get(server.url + "/api/session/keys/missing") as response:
            assert response.status == 404
        for action, told in (("cycle", "session.rotated"), ("flush", "session.ended")):
            async with http.post(f"{server.url}/api/session/{action}", headers=csrf) as response:
                assert response.status == 200
            # Told, then closed: a tab reconnects with its cookie, as the page does.
            while (message := await ws.receive_json(timeout=5))["type"] == "session.changed":
                pass
            assert message["type"] == told
            await ws.receive(timeout=5)
            assert ws.close_code == 4307
            if action == "cycle":
                keys.add(traffic_keys(jar))
                ws = await http.ws_connect(
                    server.ws_url, protocols=["session.json"], headers=headers
                )
                assert (await ws.receive_json(timeout=5))["data"] == {"a": 1}
        # After the flush the cookie is gone; the next write starts a session.
        assert not any(c.key == COOKIE and c.value for c in jar)
        async with http.put(
            server.url + "/api/session/keys/b", data=b"3", headers=csrf
        ) as response:
            assert response.status == 200
        keys.add(traffic_keys(jar))
        ws = await http.ws_connect(server.ws_url, protocols=["session.json"], headers=headers)
        assert (await ws.receive_json(timeout=5))["data"] == {"b": 3}
        async with http.put(
            server.url + "/api/session/keys/c", data=b"4", headers=csrf
        ) as response:
            assert response.status == 200
        while True:
            message = await ws.receive_json(timeout=5)
            if {"op": "set", "key": "c", "value": 4} in message.get("changes", []):
                break
        await ws.close()
        for origin in ("http://evil.example", "null"):
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(server.ws_url, headers={"Origin": origin})
    assert len(keys) == 3
    return keys


async def test_session_key_absent_from_server_log(live_server: Server):
    keys = await drive_traffic(live_server)
    log = live_server.log.read_text(errors="replace")
    assert "PUT /api/session/keys/a" in log  # the log is the right one, and written
    for key in keys:
        assert key not in log


@pytest.fixture
def redis_server(tmp_path: Path, own_redis: Callable[..., RedisServer]) -> Iterator[Server]:
    """A daphne with REDIS_URL pointing at a redis-server of this test's own."""
    redis = own_redis()
    env = server_env(tmp_path, REDIS_URL=redis.url)
    migrate(env)
    server = Server(port=free_port(), env=env, log=tmp_path / "daphne.log")
    server.start()
    yield server
    server.stop()


async def test_session_key_absent_from_redis(redis_server: Server):
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_server.env["REDIS_URL"])
    keys = await drive_traffic(redis_server)
    seen: list[str] = []
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(redis_server.url + "/") as response:
            assert response.status == 200
        keys.add(traffic_keys(jar))
        # Hold a socket open so that its subscriptions exist while Redis is read.
        headers = {"Origin": redis_server.url}
        async with http.ws_connect(
            redis_server.ws_url, protocols=["session.json"], headers=headers
        ) as ws:
            await ws.receive_json(timeout=5)
            seen += [c.decode(errors="replace") for c in await redis.pubsub_channels()]
            async for name in redis.scan_iter(count=1000):
                seen.append(name.decode(errors="replace"))
                kind = (await redis.type(name)).decode()
                if kind == "hash":
                    seen += [repr(item) for item in (await redis.hgetall(name)).items()]
                elif kind == "string":
                    seen.append(repr(await redis.get(name)))
                elif kind in ("list", "set", "zset"):
                    members = {
                        "list": lambda n: redis.lrange(n, 0, -1),
                        "set": redis.smembers,
                        "zset": lambda n: redis.zrange(n, 0, -1),
                    }[kind]
                    seen += [repr(m) for m in await members(name)]
    await redis.aclose()
    assert any(digest_like(text) for text in seen), "nothing of this server found in Redis"
    for key in keys:
        assert not [text for text in seen if key in text]
    log = redis_server.log.read_text(errors="replace")
    for key in keys:
        assert key not in log


def digest_like(text: str) -> bool:
    return re.search(r"[0-9a-f]{64}", text) is not None


# --- CSRF on every unsafe method of every URL -----------------------------------------


def concrete_paths(victim_digest: str) -> list[str]:
    """One real path for each URL pattern of the site and of the live app it mounts at its root."""
    paths = []
    for pattern in [*site_patterns, *live_patterns]:
        if not isinstance(pattern, URLPattern):
            continue
        route = str(pattern.pattern)
        route = route.replace("<str:digest>", victim_digest)
        route = re.sub(r"\(\?P<key>.*\)\$$", "k", route).lstrip("^")
        assert "<" not in route and "(" not in route, route
        paths.append("/" + route)
    return [*paths, "/admin/login/"]


def csrf_refusal(response: Any) -> bool:
    """Django's CSRF failure: its page, or the API's JSON sentence."""
    body = response.content
    return response.status_code == 403 and (
        b"CSRF verification failed" in body or b"The CSRF token is missing or wrong" in body
    )


async def test_csrf_enforced_on_every_unsafe_method_of_every_url():
    victim = await csrf_client()
    assert (await put(victim, "k", "kept")).status_code == 200
    before, cookie = await state(victim), key_of(victim)
    paths = concrete_paths(digest(cookie))
    # Every generated path is one the project really serves (resolve raises otherwise).
    assert all(resolve(path) for path in paths)
    refused = 0
    for path in paths:
        for method in UNSAFE:
            call = getattr(victim, method)
            for headers in (
                {},
                {"X-CSRFToken": "x" * 32},
                token(victim, Origin="http://evil.example"),
                token(victim, Origin="null"),
            ):
                response = await call(path, "", "application/json", headers=headers)
                assert response.status_code == 403, (method, path, headers, response.status_code)
                assert csrf_refusal(response), (method, path)
                refused += 1
            body = {"key": "k", "value": "x", "csrfmiddlewaretoken": "y" * 64}
            response = await call(path, body, headers={}) if method == "post" else None
            if response is not None:
                assert response.status_code == 403, (path, "wrong form token")
                refused += 1
    assert await state(victim) == before
    assert key_of(victim) == cookie
    # The control: the right token from the same origin passes the CSRF check.
    for path in paths:
        for method in UNSAFE:
            response = await getattr(victim, method)(
                path, "", "application/json", headers=token(victim, Origin="http://testserver")
            )
            assert not csrf_refusal(response), (method, path)
    print(f"\ncsrf: {refused} unsafe requests without a valid token, all 403")


# --- socket origins -----------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        None,
        "",
        "http://127.0.0.1.evil.example",
        "http://evil.example/127.0.0.1",
        "http://127.0.0.1@evil.example",
        "http://localhost.evil.example:8000",
        "file://",
        "chrome-extension://abcdef",
        "*",
    ],
)
@pytest.mark.parametrize("path", ["/ws/session/", "/ws/staff/sessions/"])
async def test_sockets_from_other_origins_refused(origin: str | None, path: str):
    client = await csrf_client()
    comm = communicator(key_of(client), origin=origin, path=path)
    connected, _ = await comm.connect()
    assert not connected
    assert not presence._local


# --- old sockets after logout, cycle and expiry -------------------------------------------


async def assert_stale_key_reaches_nothing(
    stale_key: str, comm: WebsocketCommunicator, watched: AsyncClient | None
) -> None:
    """The old key writes: it lands in a new session of its own, which no old socket sees."""
    stale = AsyncClient()
    stale.cookies[COOKIE] = stale_key
    response = await stale.put(
        "/api/session/keys/stale", json.dumps("from the old key"), "application/json"
    )
    assert response.status_code == 200
    assert stale.cookies[COOKIE].value != stale_key
    assert (await state(stale))["data"] == {"stale": "from the old key"}
    assert await comm.receive_nothing(timeout=0.3)
    if watched is not None:
        assert "stale" not in (await state(watched))["data"]


async def test_cycle_old_sockets_reconnect_and_old_key_reaches_nothing():
    client = await csrf_client()
    assert (await put(client, "a", 1)).status_code == 200
    old = key_of(client)
    comm = communicator(old)
    await comm.connect()
    await receive(comm)
    assert (await client.post("/api/session/cycle", headers=token(client))).status_code == 200
    assert await receive(comm) == {"type": "session.rotated"}
    await closed_with(comm, CLOSE_MOVED)
    again = communicator(key_of(client))
    await again.connect()
    assert (await receive(again))["data"] == {"a": 1}
    await assert_stale_key_reaches_nothing(old, again, client)
    assert (await put(client, "b", 2)).status_code == 200
    assert (await receive(again))["changes"] == [{"op": "set", "key": "b", "value": 2}]
    await again.disconnect()


async def test_logout_old_sockets_end_and_old_key_reaches_nothing():
    await make_user()
    client = await csrf_client()
    response = await client.post(
        "/login/submit/", {"username": "demo", "password": "demo"}, headers=token(client)
    )
    assert response.status_code == 302
    assert (await put(client, "private", "before logout")).status_code == 200
    old = key_of(client)
    comm = communicator(old)
    await comm.connect()
    assert (await receive(comm))["data"] == {"private": "before logout"}
    assert (await client.post("/logout/", headers=token(client))).status_code == 302
    assert await receive(comm) == {"type": "session.ended"}
    await closed_with(comm, CLOSE_MOVED)
    # The browser's next session is a new one, with nothing of before.
    assert (await put(client, "after", 1)).status_code == 200
    again = communicator(key_of(client))
    await again.connect()
    assert (await receive(again))["data"] == {"after": 1}
    await assert_stale_key_reaches_nothing(old, again, client)
    assert "private" not in json.dumps((await state(client))["data"])
    await again.disconnect()


async def test_expiry_old_sockets_end_and_old_key_reaches_nothing():
    client = await csrf_client()
    assert (await put(client, "a", 1)).status_code == 200
    response = await client.post("/expiry/", {"expiry": "1"}, headers=token(client))
    assert response.status_code == 302
    old = key_of(client)
    comm = communicator(old)
    await comm.connect()
    assert (await receive(comm))["data"] == {"a": 1}
    assert json.loads(await comm.receive_from(timeout=4)) == {"type": "session.ended"}
    await closed_with(comm, CLOSE_MOVED)
    layer = get_channel_layer()
    assert not any(comm_in_group for comm_in_group in layer.groups.values())  # type: ignore[attr-defined]
    await assert_stale_key_reaches_nothing(old, comm, None)


async def test_a_rotated_session_never_hands_its_sockets_the_new_session():
    # An attacker planted their cookie in the victim's browser and keeps a socket
    # open on it. The victim logs in: the key rotates, and the attacker's socket
    # is told and closed, and its cookie leads nowhere. It never sees the session.
    await get_user_model().objects.acreate_user("victim", password="pin1234")
    planted = await csrf_client()
    attacker = communicator(key_of(planted))
    await attacker.connect()
    await receive(attacker)
    victim = AsyncClient()
    victim.cookies[COOKIE] = key_of(planted)
    await victim.get("/")
    victim.cookies["csrftoken"] = planted.cookies["csrftoken"].value
    response = await victim.post(
        "/login/submit/", {"username": "victim", "password": "pin1234"}, headers=token(planted)
    )
    assert response.status_code == 302
    assert (await put(victim, "pin", "1234")).status_code == 200
    heard = [json.loads(await attacker.receive_from(timeout=3))]
    await closed_with(attacker, CLOSE_MOVED)
    assert heard == [{"type": "session.rotated"}]
    again = communicator(key_of(planted))
    await again.connect()
    assert await receive(again) == {"type": "session.ended"}
    await closed_with(again, 4404)
