"""The loop's own PostgreSQL connections (live.sessions.pg_loop), against a real server.

Each test makes a pool of its own on the machine's PostgreSQL and ends the
server's side of its connections for real (pg_terminate_backend), from a
connection of its own.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from live.sessions import pg_loop
from tests.conftest import ROOT, free_port, migrate, server_env

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


async def test_a_read_cancelled_while_it_connects_frees_its_place():
    # A server that takes the connection and never answers: connecting hangs.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    pool = pg_loop.Pool(params(f"postgres://postgres@127.0.0.1:{port}/test"), size=1)
    try:
        for _ in range(3):
            task = asyncio.create_task(pool.run(backend))
            while not pool.opened:
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pool.opened == 0
    finally:
        silent.close()


async def test_an_error_of_the_servers_hands_the_read_to_a_thread_and_keeps_the_line(
    pool: pg_loop.Pool,
):
    first = await pool.run(backend)
    with pytest.raises(pg_loop.Elsewhere):
        await pool.run(backend, "SELECT 1 / 0, pg_backend_pid()")
    assert await pool.run(backend) == first
    assert pool.opened == 1


READS = """
import asyncio, json, time
import django
django.setup()
from django.db import connection
from live.sessions import connections, pg_loop, sql

DIGEST = "f" * 64
found = {}
DATA = {"n": 2**60, "s": "é"}
connections.call(sql.insert, DIGEST, "abcd…wxyz", DATA, lambda v: time.time() + 60)


async def main():
    on_threads = await asyncio.to_thread(connections.call, sql.read, DIGEST)
    on_loop = await connections.run(sql.read, DIGEST, pg=sql.aread)
    found["same"] = on_loop == on_threads
    found["missing"] = await connections.run(sql.read, "0" * 64, pg=sql.aread)
    pool = pg_loop._pools.get()["default"]
    found["loop"] = [pool.opened, len(pool.idle)]
    # A database whose connections need Django's own set-up reads on the threads.
    connection.settings_dict["OPTIONS"]["assume_role"] = "postgres"
    pg_loop._pools.get().clear()
    again = await connections.run(sql.read, DIGEST, pg=sql.aread)
    found["role"] = [again == on_threads, pg_loop._pools.get()["default"]]


asyncio.run(main())
print(json.dumps(found))
"""


def test_the_engines_reads_run_on_the_loop_and_match_the_threads(
    tmp_path: Path, fresh_postgres: str
):
    env = server_env(tmp_path, DATABASE_URL=fresh_postgres, PYTHONPATH=str(ROOT))
    migrate(env)
    done = subprocess.run(
        [sys.executable, "-c", READS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found == {"same": True, "missing": None, "loop": [1, 1], "role": [True, None]}
