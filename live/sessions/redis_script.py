"""The Redis engine's Lua script (redis.lua) and how Python calls it.

An operation of the engine is written once, as a generator that yields script
calls and receives their replies; call_sync drives it with redis-py's sync
client, call_async with the loop's bare connection (live.redis_wire) or, where
that does not serve (TLS, clusters), redis-py's asyncio client, and call_many
pipelines several one-call operations in one round trip (on a cluster, whose
pipelines take no scripts, it sends them a few at a time). An async operation
waits on Redis at most redis_client.BUDGET in all. A read is sent once more
when its connection turns out dead (the server restarted); a change never is,
since its reply may be what was lost. A client error becomes Unavailable,
whose message the middleware shows with its 503 and says what is known of the
change.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from redis import BusyLoadingError, ReadOnlyError
from redis import ConnectionError as RedisConnectionError
from redis import TimeoutError as RedisTimeout
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError, NoScriptError, RedisClusterException

from live import redis_client
from live.sessions.codec import loads
from live.types import Applied, Snapshot, Unavailable

logger = logging.getLogger(__name__)

_SCRIPT = Path(__file__).with_name("redis.lua").read_text()
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()
# The script's operations that change nothing, and so may be sent twice.
READS = frozenset({"read", "exists", "export"})
# The script calls call_many has in flight at once on a cluster.
CONCURRENT_READS = 8

# What a 503 says: no more than is known. Redis refused a connection, or gave
# none in time: the change never left this process. It timed out or closed the
# connection after the change was sent: it may have run. A read risks nothing.
CANNOT_READ = "The session store (Redis) cannot be reached right now; try again in a moment."
SLOW_READ = "The session store (Redis) did not answer in time; try again in a moment."
NOT_SAVED = "The session store (Redis) cannot be reached right now; nothing was saved."
NOT_SAVED_SLOW = "The session store (Redis) did not answer in time; nothing was saved."
REFUSED = "The session store (Redis) is not taking changes right now; nothing was saved."
MAYBE_SAVED = (
    "The session store (Redis) did not answer in time; the change may or may not have been saved."
)
MAYBE_SAVED_LOST = (
    "The connection to the session store (Redis) broke before it answered;"
    " the change may or may not have been saved."
)

T = TypeVar("T")


@dataclass
class Call:
    """One script call: the keys, the operation and its JSON arguments."""

    keys: list[str]
    op: str
    args: dict[str, Any]

    def argv(self) -> list[str]:
        return [self.op, json.dumps(self.args)]

    @property
    def changes(self) -> bool:
        return self.op not in READS


Operation = Generator[Call, Any, T]
_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _script(client: Any) -> Any:
    # A registered script runs by its SHA and loads itself again after a restart.
    if client not in _scripts:
        _scripts[client] = client.register_script(_SCRIPT)
    return _scripts[client]


def unavailable(exc: Exception, changes: bool = False, sent: bool = False) -> Unavailable:
    """The error to raise for a client error: what is known of the change, in one sentence."""
    logger.warning("Session store unavailable: %s: %s", type(exc).__name__, exc)
    slow = isinstance(exc, RedisTimeout | TimeoutError)
    if not changes:
        message = SLOW_READ if slow else CANNOT_READ
    elif isinstance(exc, ReadOnlyError | BusyLoadingError | ClusterDownError):
        message = REFUSED  # Redis answered, and ran nothing
    elif not sent or isinstance(exc, RedisClusterException):
        # The cluster client found no node for the slot: it sent nothing.
        message = NOT_SAVED_SLOW if slow else NOT_SAVED
    else:
        message = MAYBE_SAVED if slow else MAYBE_SAVED_LOST
    return Unavailable(message)


def _again(exc: Exception, changes: bool, attempt: redis_client.Attempt) -> bool:
    # A connection that breaks once handed out was most likely closed by a
    # restarted server while it sat in the pool; the retry gets a fresh one.
    return not changes and attempt.connected and isinstance(exc, RedisConnectionError)


def _send_sync(changes: bool, send: Callable[[], T]) -> T:
    retried = False
    while True:
        with redis_client.Attempt() as attempt:
            try:
                return send()
            except redis_client.DOWN as exc:
                if retried or not _again(exc, changes, attempt):
                    raise unavailable(exc, changes, attempt.connected) from exc
        retried = True


async def _send(changes: bool, send: Callable[[], Awaitable[T]]) -> T:
    """Send once more on a dead pooled connection if that is safe; `send` keeps the deadline."""
    retried = False
    while True:
        with redis_client.Attempt() as attempt:
            try:
                return await send()
            except redis_client.DOWN as exc:
                if retried or not _again(exc, changes, attempt):
                    raise unavailable(exc, changes, attempt.connected) from exc
        retried = True


def _deadline(budget: float = redis_client.BUDGET) -> float:
    return asyncio.get_running_loop().time() + budget


async def _within(deadline: float, send: Callable[[], Awaitable[T]]) -> T:
    async with asyncio.timeout_at(deadline):
        return await send()


def call_sync(operation: Operation[T]) -> T:
    script = _script(redis_client.sync_client())
    reply = None
    while True:
        try:
            call = operation.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply = _send_sync(call.changes, partial(script, call.keys, call.argv()))


async def call_async(operation: Operation[T]) -> T:
    wire = redis_client.async_wire()
    script = None if wire is not None else _script(redis_client.async_client())
    deadline = _deadline()
    reply = None
    while True:
        try:
            call = operation.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if script is None:
            send = partial(_on_wire, wire, call, deadline)
        else:
            send = partial(_within, deadline, partial(script, call.keys, call.argv()))
        reply = await _send(call.changes, send)


async def _on_wire(wire: Any, call: Call, deadline: float) -> Any:
    """One script call on the loop's bare connection (live.redis_wire), by the deadline.

    The line itself fails a reply owed past its deadline, so an open line
    needs no timeout of the caller's; only opening one does.
    """
    connection = wire.ready()
    if connection is None:
        async with asyncio.timeout_at(deadline):
            connection = await wire.connection()
    redis_client.note_connected()
    command = ("EVALSHA", _SHA, str(len(call.keys)), *call.keys, *call.argv())
    try:
        return await connection.send(*command, deadline=deadline)
    except NoScriptError:
        # Redis restarted and forgot the script; it ran nothing.
        await connection.send("SCRIPT", "LOAD", _SCRIPT, deadline=deadline)
        return await connection.send(*command, deadline=deadline)


async def read(
    fetch: Callable[[redis_client.AsyncClient], Awaitable[T]], budget: float = redis_client.BUDGET
) -> T:
    """Commands that change nothing, within the budget; once more on a dead pooled connection."""
    client = redis_client.async_client()
    deadline = _deadline(budget)
    return await _send(False, partial(_within, deadline, partial(fetch, client)))


async def call_many(operations: list[Operation[T]]) -> list[T]:
    """Read operations of one call each, pipelined: one round trip for all (a few on a cluster)."""
    calls = [next(operation) for operation in operations]

    async def fetch(client: redis_client.AsyncClient) -> list[Any]:
        script = _script(client)
        if isinstance(client, RedisCluster):
            # A cluster's pipeline takes no scripts: the calls go side by side,
            # a few at a time, well within a node's connections.
            few = asyncio.Semaphore(CONCURRENT_READS)

            async def one(call: Call) -> Any:
                async with few:
                    return await script(call.keys, call.argv())

            return await asyncio.gather(*map(one, calls))
        async with client.pipeline(transaction=False) as pipe:
            for call in calls:
                await script(call.keys, call.argv(), client=pipe)
            return await pipe.execute()

    replies = await read(fetch)
    results: list[T] = []
    for operation, reply in zip(operations, replies, strict=True):
        try:
            operation.send(reply)
        except StopIteration as done:  # one call: its reply finishes the operation
            results.append(done.value)
    return results


def to_snapshot(session_digest: str, state: list[Any]) -> Snapshot:
    """The session as a script reply gives it: version, masked key, expiry, data, key versions."""
    version, masked, expires, text, versions = state[:5]
    return Snapshot(
        digest=session_digest,
        version=int(version),
        data=loads(text),
        masked_key=masked,
        expires_at=float(expires),
        key_versions=loads(versions),
        text=text,
    )


def to_applied(raw: list[list[Any]]) -> Applied:
    """The changes a merge applied, from the script's [op, key, value, old] rows."""
    changes: Applied = []
    for op, key, value, old in raw:
        change: dict[str, Any] = {"op": op, "key": key}
        if op == "set":
            change["value"] = loads(value)
        if old is not None:
            change["old"] = loads(old)
        changes.append(change)
    return changes
