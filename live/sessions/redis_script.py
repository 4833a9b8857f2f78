"""The Redis engine's Lua script (redis.lua) and how Python calls it.

An operation of the engine is written once, as a generator that yields script
calls and receives their replies; call_sync and call_async drive it with
redis-py's sync or asyncio client, and call_many pipelines several one-call
operations in one round trip. A client error becomes Unavailable, whose
message the middleware shows with its 503.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from redis import TimeoutError as RedisTimeout

from live import redis_client
from live.sessions.codec import loads
from live.types import Applied, Snapshot, Unavailable

logger = logging.getLogger(__name__)

_SCRIPT = Path(__file__).with_name("redis.lua").read_text()

T = TypeVar("T")


@dataclass
class Call:
    """One script call: the keys, the operation and its JSON arguments."""

    keys: list[str]
    op: str
    args: dict[str, Any]

    def argv(self) -> list[str]:
        return [self.op, json.dumps(self.args)]


Operation = Generator[Call, Any, T]
_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _script(client: Any) -> Any:
    # A registered script runs by its SHA and loads itself again after a restart.
    if client not in _scripts:
        _scripts[client] = client.register_script(_SCRIPT)
    return _scripts[client]


def unavailable(exc: Exception) -> Unavailable:
    """The error to raise for a client error, with a sentence for the user."""
    logger.warning("Session store unavailable: %s", exc)
    if isinstance(exc, RedisTimeout | TimeoutError):
        message = "The session store (Redis) did not answer in time; the change may not be saved."
    else:
        message = "The session store (Redis) cannot be reached right now; try again in a moment."
    return Unavailable(message)


def call_sync(operation: Operation[T]) -> T:
    reply = None
    try:
        while True:
            call = operation.send(reply)
            try:
                script = _script(redis_client.sync_client())
                reply = script(call.keys, call.argv())
            except redis_client.DOWN as exc:
                raise unavailable(exc) from exc
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def call_async(operation: Operation[T]) -> T:
    reply = None
    try:
        while True:
            call = operation.send(reply)
            try:
                script = _script(redis_client.async_client())
                reply = await script(call.keys, call.argv())
            except redis_client.DOWN as exc:
                raise unavailable(exc) from exc
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def call_many(operations: list[Operation[T]]) -> list[T]:
    """Operations of one call each, pipelined: one round trip for all."""
    client = redis_client.async_client()
    script = _script(client)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for operation in operations:
                call = next(operation)
                await script(call.keys, call.argv(), client=pipe)
            replies = await pipe.execute()
    except redis_client.DOWN as exc:
        raise unavailable(exc) from exc
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
