"""The loop's bare Redis connection (live.redis_wire), against redis-servers of the tests' own.

The engine's outages through it (a hung, stopped or restarted Redis) are
tests/e2e/test_outages.py; these are the connection's own promises.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from live import redis_wire
from tests.conftest import RedisServer

pytestmark = pytest.mark.services

Start = Callable[..., RedisServer]


@pytest.fixture(autouse=True)
async def _close_wires() -> AsyncIterator[None]:
    yield
    redis_wire.close()


async def test_replies_reach_their_commands_in_order_under_concurrency(own_redis: Start):
    wire = redis_wire.wire(own_redis().url, 2.0, 2.0)

    async def echo(n: int) -> str:
        connection = await wire.connection()
        return str(await connection.send("ECHO", f"value {n}"))

    assert await asyncio.gather(*(echo(n) for n in range(500))) == [
        f"value {n}" for n in range(500)
    ]
    # All on one connection, opened once.
    assert wire.protocol is await wire.connection()


async def test_a_reply_later_than_allowed_retires_the_line_and_what_it_sent_still_runs(
    own_redis: Start,
):
    server = own_redis()
    wire = redis_wire.wire(server.url, 2.0, 0.2)
    first = await wire.connection()
    with server.frozen():
        sent = first.send("SET", "k", "sent")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await asyncio.shield(sent)
        assert first.overdue(0.2)
    # Redis answers now, but the line is found overdue before the loop reads it.
    second = await wire.connection()
    assert second is not first
    with pytest.raises(redis.ConnectionError):
        await sent
    with pytest.raises(redis.ConnectionError):
        first.send("ECHO", "more")
    assert await second.send("GET", "k") == "sent"


async def test_a_reply_owed_past_its_deadline_fails_and_the_others_keep_theirs(
    own_redis: Start,
):
    server = own_redis()
    wire = redis_wire.wire(server.url, 2.0, 30.0)
    connection = await wire.connection()
    loop = asyncio.get_running_loop()
    with server.frozen():
        soon = connection.send("SET", "k", "soon", deadline=loop.time() + 0.1)
        later = connection.send("ECHO", "later", deadline=loop.time() + 30)
        unbounded = connection.send("ECHO", "unbounded")
        # The line fails the first by itself; the guard only keeps a broken
        # deadline from hanging the test.
        async with asyncio.timeout(10):
            with pytest.raises(TimeoutError):
                await soon
        assert not later.done() and not unbounded.done()
    # Redis answers again: the late reply is read and dropped, the others get theirs.
    assert await later == "later"
    assert await unbounded == "unbounded"
    assert await connection.send("GET", "k") == "soon"
    assert await wire.connection() is connection


async def test_a_caller_that_hangs_up_leaves_the_line_to_the_others(own_redis: Start):
    wire = redis_wire.wire(own_redis().url, 2.0, 2.0)
    connection = await wire.connection()
    gone = asyncio.ensure_future(connection.send("ECHO", "gone"))
    staying = connection.send("ECHO", "staying")
    gone.cancel()
    assert await staying == "staying"
    assert await wire.connection() is connection


async def test_a_connection_redis_closed_while_idle_is_opened_again_before_a_command(
    own_redis: Start,
):
    server = own_redis()
    wire = redis_wire.wire(server.url, 2.0, 2.0)
    first = await wire.connection()
    # Restarted while this loop does not run: it has not seen the connection end.
    server.kill()
    server.start()
    second = await wire.connection()
    assert second is not first
    assert await second.send("ECHO", "fresh") == "fresh"


async def test_errors_are_redis_pys(own_redis: Start):
    connection = await redis_wire.wire(own_redis().url, 2.0, 2.0).connection()
    with pytest.raises(redis.exceptions.NoScriptError):
        await connection.send("EVALSHA", "0" * 40, "0")
    await connection.send("SET", "text", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        await connection.send("HGET", "text", "field")
    # The connection goes on after an error reply.
    assert await connection.send("GET", "text") == "x"


async def test_the_handshake_signs_in_and_selects_the_database(own_redis: Start):
    server = own_redis("--save", "", "--requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{server.port}/2"
    connection = await redis_wire.wire(url, 2.0, 2.0).connection()
    await connection.send("SET", "where", "db 2")
    check = redis.Redis(port=server.port, password="s3cret", db=2, decode_responses=True)
    try:
        assert check.get("where") == "db 2"
    finally:
        check.close()
    wrong = redis_wire.wire(f"redis://:wrong@127.0.0.1:{server.port}/0", 2.0, 2.0)
    with pytest.raises(redis.AuthenticationError):
        await wrong.connection()


async def test_a_broken_connection_fails_what_waits_on_it_and_the_next_opens_anew(
    own_redis: Start,
):
    server = own_redis()
    wire = redis_wire.wire(server.url, 2.0, 2.0)
    first = await wire.connection()
    with server.frozen():
        waiting = first.send("ECHO", "lost")
        server.kill()
    with pytest.raises(redis.ConnectionError):
        await asyncio.wait_for(waiting, 2)
    with pytest.raises(redis.ConnectionError):
        await wire.connection()
    server.start()
    second = await wire.connection()
    assert second is not first
    assert await second.send("ECHO", "back") == "back"
