"""PostgreSQL on the event loop: psycopg's async connections, a few per loop, for reads.

A statement sent from one of the store's threads costs a hop there and back,
and under load the thread and the loop trade the GIL at every call into
libpq: a PostgreSQL read spent about half as much CPU in the threads as on
the loop (docs/performance.md). A request's read of its session, and the
hub's, run here instead, on connections of the loop's own. Every change stays
on Django's connections in the threads (live.sessions.connections): on the
loop it cost as much as it saved.

A read that cannot be done here raises Elsewhere, and the caller runs it in a
thread, whose guard says what an outage means: when no connection can be
had, when the line breaks under it, and when the server answers with an
error (which the thread then raises as Django's). Reads change nothing, so
running one again is safe. The connections are a loop's: the server runs one
loop, and with it at most PG_LOOP_CONNECTIONS of them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from django.db import connections

from live.conf import setting
from live.loops import PerLoop
from live.sockets import readable

T = TypeVar("T")


class Elsewhere(Exception):
    """The read cannot be done on the loop: run it in a thread."""


class Statements:
    """One connection lent to one piece of work."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.connection.cursor() as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchall() if cursor.description else []


def _idle(connection: psycopg.AsyncConnection[Any]) -> bool:
    # A line the server closed while it sat idle has something to read: its
    # farewell, or the end of the stream (as DjangoDb.alone checks).
    if connection.closed or connection.broken:
        return False
    return not readable(connection.fileno())


class Pool:
    """At most `size` connections of one loop to one database; work waits its turn for one."""

    def __init__(self, params: dict[str, Any], size: int) -> None:
        self.params, self.size = params, size
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.opened = 0
        # Each waiter gets a connection, or None: a place freed up, open one.
        self.waiting: deque[asyncio.Future[psycopg.AsyncConnection[Any] | None]] = deque()

    async def take(self) -> psycopg.AsyncConnection[Any]:
        while self.idle:
            connection = self.idle.pop()
            if _idle(connection):
                return connection
            self._drop(connection, hand_on=False)
        if self.opened >= self.size:
            waiter: asyncio.Future[psycopg.AsyncConnection[Any] | None]
            waiter = asyncio.get_running_loop().create_future()
            self.waiting.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self.give(waiter.result())
                raise
            if handed is not None:
                return handed
        else:
            self.opened += 1
        try:
            return await psycopg.AsyncConnection.connect(**self.params)
        except BaseException as exc:
            # Refused, unreachable, or cancelled while connecting: the place is free again.
            self.opened -= 1
            self._hand_on()
            if isinstance(exc, psycopg.Error):
                raise Elsewhere from exc
            raise

    def give(self, connection: psycopg.AsyncConnection[Any] | None, broken: bool = False) -> None:
        """Take a connection back; a broken one is closed and its place freed."""
        if connection is None:
            self.opened -= 1
            self._hand_on()
            return
        if broken or connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._drop(connection)
            return
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    def _drop(self, connection: psycopg.AsyncConnection[Any], hand_on: bool = True) -> None:
        # libpq's own close: it sends its farewell without waiting for an answer.
        connection.pgconn.finish()
        self.opened -= 1
        if hand_on:
            self._hand_on()

    def _hand_on(self) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                self.opened += 1
                waiter.set_result(None)
                return

    async def run(self, work: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a read on one of these connections; raise Elsewhere to have it run in a thread."""
        connection = await self.take()
        try:
            result = await work(Statements(connection), *args)
        except psycopg.Error as exc:
            # A broken line, or an error of the server's: the thread runs the
            # read again (it changes nothing) and answers as Django would.
            self.give(connection, broken=connection.broken)
            raise Elsewhere from exc
        except asyncio.CancelledError:
            # Cancelled mid-statement: the line's state is unknown, so it is not lent again.
            self.give(connection, broken=True)
            raise
        except BaseException:
            self.give(connection)
            raise
        self.give(connection)
        return result

    def close(self) -> None:
        for connection in self.idle:
            connection.pgconn.finish()
        self.opened -= len(self.idle)
        self.idle.clear()


def _params(name: str) -> dict[str, Any] | None:
    """Django's own connection parameters, with psycopg's async cursors; None if they will not do.

    Each statement commits as it runs, as on Django's connections by default.
    Django sets up each new connection further for `assume_role` (SET ROLE),
    which these connections leave to the threads.
    """
    connection = connections[name]
    if connection.settings_dict["OPTIONS"].get("assume_role"):
        return None
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return {**params, "autocommit": True, "cursor_factory": psycopg.AsyncClientCursor}


# Each loop's pools, by database alias; None for a database whose reads stay on the threads.
_pools: PerLoop[dict[str, Pool | None]] = PerLoop(dict)


def _pool(name: str) -> Pool | None:
    found = _pools.get()
    if name not in found:
        params = _params(name)
        found[name] = None if params is None else Pool(params, setting("PG_LOOP_CONNECTIONS"))
    return found[name]


async def run(name: str, work: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run a read on one of the loop's connections to database `name`, or raise Elsewhere."""
    pool = _pool(name)
    if pool is None:
        raise Elsewhere
    return await pool.run(work, *args)
