"""The Redis engine and the tab counts on a Redis Cluster of three primaries.

The clusters are real: redis-servers started by tests.conftest.start_cluster.
The engine suite of test_engines.py runs on one as well ("redis-cluster");
these tests cover what only a cluster has: sessions on different primaries, a
cycle_key from one primary to another, listing over every primary, and a
primary that stops mid-run.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.cluster

from live import redis_client, sampler
from live.realtime import presence
from live.sessions import redis as redis_engine
from live.sessions import redis_script
from live.sessions.base import LiveSessionBase
from live.types import Unavailable
from tests.conftest import LocalCluster, RedisServer
from tests.helpers import client_for, new_session

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Store = redis_engine.SessionStore


@pytest.fixture(autouse=True)
async def _close_redis() -> AsyncIterator[None]:
    yield
    await redis_client.aclose()


@pytest.fixture
def cluster_url(redis_cluster_url: str, settings: Any) -> str:
    settings.REDIS_URL = redis_cluster_url
    settings.SESSION_ENGINE = "live.redis_engine"
    return redis_cluster_url


@pytest.fixture
def nodes(cluster_url: str) -> Iterator[redis.cluster.RedisCluster]:
    """A plain cluster client, to ask which primary holds a key."""
    client = redis.cluster.RedisCluster.from_url(
        cluster_url.replace("+cluster", ""), decode_responses=True
    )
    yield client
    client.close()


def primary(nodes: redis.cluster.RedisCluster, session_digest: str) -> int:
    """The port of the primary that holds a session's keys."""
    node = nodes.get_node_from_key(redis_engine.session_keys(session_digest)[0])
    assert node is not None
    return int(node.port)


async def one_per_primary(nodes: redis.cluster.RedisCluster, **data: Any) -> dict[int, Any]:
    """A stored session holding `data` on each primary, by the primary's port."""
    found: dict[int, LiveSessionBase] = {}
    while len(found) < len(nodes.get_primaries()):
        session = await new_session(Store, **data)
        found.setdefault(primary(nodes, session.digest or ""), session)
    return found


async def reload(session_key: str | None) -> dict[str, Any]:
    return dict(await Store(session_key).aload())


# --- sessions on every primary ---------------------------------------------------------


async def test_cluster_sessions_on_every_primary_keep_their_keys_in_one_slot(nodes):
    sessions = await one_per_primary(nodes, a=1)
    assert len(sessions) == 3
    for session in sessions.values():
        await session.aset("b", 2)
        await session.asave()
        slots = {nodes.keyslot(key) for key in redis_engine.session_keys(session.digest)}
        assert len(slots) == 1
        assert await reload(session.session_key) == {"a": 1, "b": 2}


async def test_cluster_cycle_key_moves_a_session_to_another_primary(nodes):
    session = await new_session(Store, a=1, b=2)
    await session.apop("b")
    await session.asave()
    old = session.digest or ""
    snapshot = await Store.aread(old)
    assert snapshot is not None
    await session.aset("c", 3)
    for _ in range(30):
        before = session.digest or ""
        await session.acycle_key()
        if primary(nodes, session.digest or "") != primary(nodes, before):
            break
    assert primary(nodes, session.digest or "") != primary(nodes, old)
    moved = await Store.aread(session.digest or "")
    assert moved is not None and moved.data == {"a": 1, "c": 3}
    assert moved.version > snapshot.version
    # The tombstone of "b" and the timeline travel with the session.
    assert "b" in moved.key_versions
    history = await Store.ahistory(session.digest or "")
    assert [c["op"] for c in history[-1]["changes"]] == ["delete"]
    assert await Store.aread(old) is None


async def test_cluster_cycle_key_keeps_a_change_made_between_its_steps(nodes):
    session = await new_session(Store, a=1)
    session = Store(session.session_key)
    await session.aload()
    old_key, old = session.session_key, session.digest or ""
    await session.aset("mine", 1)
    operation = session._moving()
    client = redis_client.async_client()
    script = redis_script._script(client)
    reply, steps = None, []
    while True:
        try:
            call = operation.send(reply)
        except StopIteration as done:
            assert done.value == (old, session.digest)
            break
        steps.append(call.op)
        reply = await script(call.keys, call.argv())
        if steps == ["export", "arrive"]:
            # Another request writes to the old key after the copy was made.
            other = Store(old_key)
            await other.aset("theirs", 2)
            await other.asave()
    assert steps == ["export", "arrive", "leave", "export", "arrive", "leave"]
    assert await reload(session.session_key) == {"a": 1, "theirs": 2, "mine": 1}
    assert await Store.aread(old) is None


# --- listing and tab counts ------------------------------------------------------------


async def test_cluster_listing_finds_the_sessions_on_every_primary(nodes):
    sessions = await one_per_primary(nodes, _auth_user_id="41")
    digests = {session.digest for session in sessions.values()}
    assert digests <= {row.digest for row in await Store.asummaries()}
    assert digests <= {row.digest for row in await Store.aowned("41")}
    assert await Store.acount_active(0) >= 3
    # The metrics page's set of processes is one key: it counts this one.
    assert (await sampler._count_processes(time.time()) or 0) >= 1


async def test_cluster_tab_counts_join_and_leave_on_every_primary(nodes):
    sessions = await one_per_primary(nodes)
    for session in sessions.values():
        digest = session.digest or ""
        counts, alive = presence._keys(digest)
        assert nodes.keyslot(counts) == nodes.keyslot(alive + presence.PROCESS)
        assert await presence.join(digest, "x1") == presence.Presence(1, ("x1",))
        assert await presence.join(digest, "y2") == presence.Presence(2, ("x1", "y2"))
    # The heartbeat stores every session's entry on its own primary.
    assert await presence._announce(presence._beats.get()) is False
    for session in sessions.values():
        digest = session.digest or ""
        assert nodes.hget(presence._keys(digest)[0], presence.PROCESS) == "2"
        assert await presence.leave(digest, "x1") == presence.Presence(1, ("y2",))
        assert await presence.leave(digest, "y2") == presence.NOBODY
    beat = presence._beats.get()
    if beat.task is not None:
        beat.task.cancel()


# --- a primary stops ---------------------------------------------------------------------


def failed(witness: RedisServer, down: RedisServer, timeout: float = 20.0) -> None:
    """Wait until `witness` marks `down` as failed (after cluster-node-timeout)."""
    deadline = time.monotonic() + timeout
    command = ["redis-cli", "-p", str(witness.port), "cluster", "nodes"]
    while not any(
        f":{down.port}@" in line and "fail" in line.split()[2].split(",")
        for line in subprocess.run(command, capture_output=True, text=True).stdout.splitlines()
    ):
        assert time.monotonic() < deadline, "the stopped primary was never marked as failed"
        time.sleep(0.05)


@pytest.fixture
def stoppable(own_redis_cluster: LocalCluster, settings: Any) -> LocalCluster:
    settings.REDIS_URL = own_redis_cluster.url
    settings.SESSION_ENGINE = "live.redis_engine"
    return own_redis_cluster


async def test_cluster_a_stopped_primary_refuses_its_writes_and_the_others_go_on(
    stoppable: LocalCluster,
):
    nodes = redis.cluster.RedisCluster.from_url(stoppable.url.replace("+cluster", ""))
    sessions = await one_per_primary(nodes, n=0)
    nodes.close()
    acknowledged: dict[int, int] = {}
    for n in range(1, 6):
        for port, session in sessions.items():
            await session.aset("n", n)
            await session.asave()
            acknowledged[port] = n
    down = stoppable.primaries[1]
    # The loop runs meanwhile and sees the pooled connections to it close.
    await asyncio.to_thread(down.stop)

    async def write_everywhere(n: int) -> None:
        for port, session in sessions.items():
            await session.aset("n", n)
            if port == down.port:
                with pytest.raises(Unavailable) as refused:
                    await asyncio.wait_for(session.asave(), redis_client.BUDGET + 0.5)
                assert str(refused.value) == redis_script.NOT_SAVED
            else:
                await session.asave()
                acknowledged[port] = n

    # At once, and again once the other primaries have marked it as failed.
    await write_everywhere(98)
    await asyncio.to_thread(failed, stoppable.primaries[0], down)
    await write_everywhere(99)
    for port, session in sessions.items():
        if port != down.port:
            assert await reload(session.session_key) == {"n": acknowledged[port]}
    # Through the middleware: the one-sentence 503 for the stopped primary's session.
    stopped = sessions[down.port]
    client = client_for(stopped.session_key or "")
    put = client.put("/api/session/keys/n", data="7", content_type="application/json")
    response = await asyncio.wait_for(put, redis_client.BUDGET + 0.5)
    assert response.status_code == 503
    assert response.json() == {"error": redis_script.CANNOT_READ}
    live = next(s for port, s in sessions.items() if port != down.port)
    put = client_for(live.session_key or "").put(
        "/api/session/keys/n", data="7", content_type="application/json"
    )
    assert (await put).status_code == 200
    # Back again, the stopped primary has lost what it held in memory only;
    # the others kept every acknowledged write.
    down.start()
    LocalCluster.wait_until_ok(stoppable.primaries)
    for port, session in sessions.items():
        if port != down.port:
            assert (await reload(session.session_key))["n"] in (acknowledged[port], 7)
