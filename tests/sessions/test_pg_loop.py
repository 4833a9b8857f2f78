"""The loop's own PostgreSQL connections (live.sessions.pg_loop), against a real server.

Each test makes a pool of its own on the machine's PostgreSQL and ends the
server's side of its connections for real (pg_terminate_backend), from a
connection of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from live.sessions import pg_loop
from tests.conftest import free_port

pytestmark = pytest.mark.services

WHO = "SELECT pg_backend_pid()"


def params(url: str) -> dict[str, Any]:
    return {"conninfo": url, "autocommit": True, "cursor_factory": psycopg.AsyncClientCursor}


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[pg_loop.Pool]:
    made = pg_loop.Pool(params(postgres_url), size=2)
    yield made
    made.close()


async def backend(db: pg_loop.Statements, sql: str = WHO) -> int:
    rows = await db.execute(sql)
    return int(rows[0][-1])


def terminate(url: str, pid: int) -> None:
    """End a backend, and return once it is gone (its farewell then sent)."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still there"


async def test_a_read_runs_on_a_kept_connection(pool: pg_loop.Pool):
    first = await pool.run(backend)
    assert await pool.run(backend) == first
    assert pool.opened == 1


async def test_reads_beyond_the_pool_wait_their_turn_on_its_connections(pool: pg_loop.Pool):
    slow = "SELECT pg_sleep(0.05), pg_backend_pid()"
    pids = await asyncio.gather(*(pool.run(backend, slow) for _ in range(10)))
    assert len(set(pids)) == 2
    assert pool.opened == 2
    assert len(pool.idle) == 2
    assert not pool.waiting


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    pool: pg_loop.Pool, postgres_url: str
):
    first = await pool.run(backend)
    await asyncio.to_thread(terminate, postgres_url, first)
    # The server's farewell reaches the socket soon after; the pool looks before lending.
    second = await pool.run(backend)
    assert second != first
    assert pool.opened == 1


async def test_a_line_broken_under_a_read_hands_it_to_a_thread(
    pool: pg_loop.Pool, postgres_url: str
):
    first = await pool.run(backend)

    async def cut_under_it(db: pg_loop.Statements) -> int:
        await asyncio.to_thread(terminate, postgres_url, first)
        return await backend(db)

    with pytest.raises(pg_loop.Elsewhere):
        await pool.run(cut_under_it)
    assert pool.opened == 0
    assert await pool.run(backend) != first


async def test_a_server_that_refuses_hands_the_read_to_a_thread():
    refused = pg_loop.Pool(params(f"postgres://postgres@127.0.0.1:{free_port()}/test"), size=2)
    for _ in range(3):
        with pytest.raises(pg_loop.Elsewhere):
            await refused.run(backend)
    assert refused.opened == 0


async def test_a_read_cancelled_mid_statement_does_not_lend_its_line_again(pool: pg_loop.Pool):
    first = await pool.run(backend)
    task = asyncio.create_task(pool.run(backend, "SELECT pg_sleep(10), pg_backend_pid()"))
    while not pool.opened or pool.idle:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.opened == 0
    assert await pool.run(backend) != first


async def test_a_waiter_gets_a_place_when_a_connection_breaks(
    postgres_url: str,
):
    pool = pg_loop.Pool(params(postgres_url), size=1)
    try:
        first = await pool.run(backend)
        held = asyncio.Event()
        cut = asyncio.Event()

        async def broken(db: pg_loop.Statements) -> int:
            held.set()
            await cut.wait()
            return await backend(db)

        breaking = asyncio.create_task(pool.run(broken))
        await held.wait()
        waiting = asyncio.create_task(pool.run(backend))
        while not pool.waiting:
            await asyncio.sleep(0)
        await asyncio.to_thread(terminate, postgres_url, first)
        cut.set()
        with pytest.raises(pg_loop.Elsewhere):
            await breaking
        assert await waiting != first
        assert pool.opened == 1
    finally:
        pool.close()
