"""The live session engine on Redis, async-native: SESSION_ENGINE = "live.redis_engine".

Same interface and semantics as live.engine (diff-merge, versions, If-Match
conflicts, timeline, events), with the storage in Redis (see
redis.lua and live.sessions.redis_script): a session is a hash under the digest of its key with one
field per session key, its version a counter, its expiry a TTL. Each operation
is one Lua script call on one session's keys (one hash slot of a Redis
Cluster), atomic in Redis, so concurrent writers never lose each other's keys;
cycle_key, which moves a session between slots, is three (see _moving). Async
code awaits redis-py's asyncio client on the event loop,
with no thread hop. Sync code (a command, the shell) uses redis-py's sync
client for the same scripts. When Redis cannot be reached, every operation
raises Unavailable (the middleware answers 503) with a sentence saying whether
the change may have been saved: at once when Redis is stopped, within
live.redis_client.BUDGET when it hangs.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, UpdateError

from live import redis_client
from live.conf import setting
from live.realtime import events
from live.sessions.base import LiveSessionBase
from live.sessions.codec import dumps, loads
from live.sessions.redis_script import (
    Call,
    Operation,
    call_async,
    call_many,
    call_sync,
    read,
    to_applied,
    to_snapshot,
)
from live.types import Changes, Conflict, Snapshot, Summary, TooLarge, Written

PREFIX = "live:session:"
EXPIRY_KEY = "_session_expiry"
# Listing every session: keys asked of Redis per SCAN step, HGETs per pipeline, and
# the time it may take in all. A hung Redis is still found within each command's
# socket timeout (redis_client.SOCKET_TIMEOUT); the budget bounds a slow whole.
SCAN_COUNT = 1000
SCAN_PAGE = 1000
LISTING_BUDGET = 60.0


def session_keys(session_digest: str) -> list[str]:
    # One hash tag per session keeps its keys in one slot (Redis Cluster).
    base = f"{PREFIX}{{{session_digest}}}:"
    return [base + "data", base + "versions", base + "meta", base + "log"]


def _reading(session_digest: str) -> Operation[Snapshot | None]:
    state = yield Call(session_keys(session_digest), "read", {})
    return to_snapshot(session_digest, state) if state else None


def _deleting(session_digest: str) -> Operation[bool]:
    found = yield Call(session_keys(session_digest), "delete", {})
    return bool(found)


def _existing(session_digest: str) -> Operation[bool]:
    found = yield Call(session_keys(session_digest), "exists", {})
    return bool(found)


class SessionStore(LiveSessionBase):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # The stored "_session_expiry" as JSON text ("" when absent), as loaded.
        self._expiry_text = ""

    # --- what the merge needs besides the diff ----------------------------------

    def _loaded(self, snapshot: Snapshot | None) -> dict[str, Any]:
        self._remember_expiry(snapshot)
        return super()._loaded(snapshot)

    def _written(self, snapshot: Snapshot) -> None:
        self._remember_expiry(snapshot)
        super()._written(snapshot)

    def _remember_expiry(self, snapshot: Snapshot | None) -> None:
        found = snapshot is not None and EXPIRY_KEY in snapshot.data
        self._expiry_text = dumps(snapshot.data[EXPIRY_KEY]) if found else ""  # type: ignore[union-attr]

    def _write_args(self, changes: Changes, expiry_text: str) -> dict[str, Any]:
        """The script's arguments for a diff, with the expiry computed from `expiry_text`."""
        own = EXPIRY_KEY in changes.sets or EXPIRY_KEY in changes.deletes or changes.wipe
        if EXPIRY_KEY in changes.sets:
            value = changes.sets[EXPIRY_KEY]
        else:
            value = loads(expiry_text) if expiry_text and not own else None
        expires = self._expiry(value)
        return {
            "sets": [[k, dumps(v)] for k, v in changes.sets.items()],
            "deletes": changes.deletes,
            "wipe": changes.wipe,
            "expect": [[k, v] for k, v in changes.expect.items()],
            "expiry_own": own,
            "expiry_assumed": expiry_text,
            "expires": repr(expires),
            "expires_ms": int(expires * 1000),
            "masked": self.masked_key,
            "now": repr(time.time()),
            "source": dumps(self.source[:200]),
            "history": setting("HISTORY_LENGTH"),
            "max_tombstones": setting("MAX_TOMBSTONES"),
            "max_bytes": setting("MAX_SESSION_BYTES"),
        }

    # --- the backend: each operation is a generator of script calls, written once
    # and driven by the sync or the async client.

    def _read(self, session_digest: str) -> Snapshot | None:
        return call_sync(_reading(session_digest))

    async def _aread(self, session_digest: str) -> Snapshot | None:
        return await call_async(_reading(session_digest))

    def _exists(self, session_digest: str) -> bool:
        return call_sync(_existing(session_digest))

    async def _aexists(self, session_digest: str) -> bool:
        return await call_async(_existing(session_digest))

    def _remove(self, session_digest: str) -> bool:
        return call_sync(_deleting(session_digest))

    async def _aremove(self, session_digest: str) -> bool:
        return await call_async(_deleting(session_digest))

    def _write(self, must_create: bool) -> Written | None:
        return call_sync(self._writing(must_create))

    async def _awrite(self, must_create: bool) -> Written | None:
        return await call_async(self._writing(must_create))

    def _rekey(self) -> tuple[str | None, str]:
        return call_sync(self._moving())

    async def _arekey(self) -> tuple[str | None, str]:
        return await call_async(self._moving())

    def _inserting(self) -> Operation[None]:
        changes = Changes(sets=self._data())
        for _ in range(10):
            self._session_key = self._new_key()
            args = self._write_args(changes, "")
            reply = yield Call(session_keys(self.digest or ""), "insert", args)
            if reply[0] == "ok":
                data = changes.sets
                self._written(
                    Snapshot(
                        digest=self.digest or "",
                        version=0,
                        data=data,
                        masked_key=self.masked_key,
                        expires_at=float(args["expires"]),
                        key_versions=dict.fromkeys(data, 0),
                        text=dumps(data),
                    )
                )
                return
        raise CreateError

    def _writing(self, must_create: bool) -> Operation[Written | None]:
        if must_create or self.session_key is None:
            yield from self._inserting()
            return None
        changes = self._changes()
        expiry_text = self._expiry_text
        push = events.store_channel(self.digest or "", redis_client.url())
        while True:
            args = self._write_args(changes, expiry_text)
            if push is not None:
                args["publish"] = push
            reply = yield Call(session_keys(self.digest or ""), "merge", args)
            if reply[0] == "missing":
                raise UpdateError
            if reply[0] == "conflict":
                self._conflicted()
                key, current = reply[1], reply[2]
                raise Conflict(
                    key, loads(current) if current is not None else None, changes.expect[key]
                )
            if reply[0] == "too_large":
                self._conflicted()
                raise TooLarge(reply[1], args["max_bytes"])
            if reply[0] == "expiry":
                # Someone changed "_session_expiry" meanwhile: recompute from theirs.
                expiry_text = reply[1]
                continue
            snapshot = to_snapshot(self.digest or "", reply[1:6])
            applied = to_applied(reply[6])
            self._written(snapshot)
            self._pushed_by_store = push is not None
            return (snapshot, applied) if applied else None

    def _moving(self) -> Operation[tuple[str | None, str]]:
        """cycle_key in three calls, one slot each: export the old, write the new, drop the old.

        The new key is written before the old one goes, and the old one goes
        only if no change reached it since the export (else the cycle starts
        over), so no acknowledged change is lost: a failure in between leaves
        the old session as it was and, at worst, the new one as an orphan that
        expires.
        """
        old = self.digest
        changes = self._changes()
        self._session_key = self._new_key()
        fresh = True
        for _ in range(10):
            exported = (yield Call(session_keys(old), "export", {})) if old else None
            args = self._write_args(changes, exported[4] if exported else "")
            args.update(fresh=fresh)
            if exported:
                moved = dict(zip(("version", "data", "versions", "log"), exported, strict=False))
                args.update(moved=moved)
            reply = yield Call(session_keys(self.digest or ""), "arrive", args)
            if reply[0] == "taken":
                self._session_key = self._new_key()
                continue
            fresh = False
            expected = int(exported[0]) if exported else -1
            if old and (yield Call(session_keys(old), "leave", {"version": expected}))[0] != "ok":
                continue
            self._written(to_snapshot(self.digest or "", reply[1:6]))
            self.modified = True
            return old, self.digest or ""
        raise CreateError

    # --- the outside view -----------------------------------------------------------

    @classmethod
    async def aread(cls, session_digest: str) -> Snapshot | None:
        return await call_async(_reading(session_digest))

    @classmethod
    async def ahistory(cls, session_digest: str) -> list[dict[str, Any]]:
        return await _timeline(session_digest)

    @classmethod
    async def aentry(cls, session_digest: str, version: int) -> dict[str, Any] | None:
        return next((e for e in await _timeline(session_digest) if e["version"] == version), None)

    @classmethod
    async def asummaries(cls, limit: int = 200) -> list[Summary]:
        """The most recently changed sessions, for the staff list.

        Redis keeps no index of sessions, so this SCANs their meta keys: fine
        for a staff page refreshed at most twice a second, not for a hot path.
        """
        listed = [(session_digest, updated) for session_digest, updated, _ in await _updated()]
        recent = sorted(listed, key=lambda pair: pair[1], reverse=True)[:limit]
        snapshots = await call_many([_reading(session_digest) for session_digest, _ in recent])
        # A session that expired or moved in the meantime reads as None.
        return [
            Summary.of(found, updated)
            for (_, updated), found in zip(recent, snapshots, strict=True)
            if found is not None
        ]

    @classmethod
    async def aowned(cls, user_id: str) -> list[Summary]:
        """The sessions signed in as this user, most recently changed first.

        The staff list's SCAN, which reads each session's login beside its
        time; only this user's sessions are then read whole, a page at a time.
        """
        mine = sorted(
            (
                (session_digest, updated)
                for session_digest, updated, user in await _updated(logins=True)
                if user is not None and str(loads(user)) == user_id
            ),
            key=lambda pair: pair[1],
            reverse=True,
        )
        found: list[Summary] = []
        for start in range(0, len(mine), SCAN_PAGE):
            page = mine[start : start + SCAN_PAGE]
            snapshots = await call_many([_reading(session_digest) for session_digest, _ in page])
            # A session may have expired, or signed out, since its login was read.
            summaries = [
                Summary.of(snapshot, updated)
                for (_, updated), snapshot in zip(page, snapshots, strict=True)
                if snapshot is not None
            ]
            found += [summary for summary in summaries if summary.user_id == user_id]
        return found

    @classmethod
    async def acount_active(cls, since: float) -> int:
        """How many sessions changed since this moment (a SCAN, as for the staff list)."""
        return sum(1 for _, updated, _ in await _updated() if updated > since)

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis drops a session when its TTL runs out."""

    @classmethod
    async def aclear_expired(cls) -> None:
        """Nothing to do: Redis drops a session when its TTL runs out."""


async def _updated(logins: bool = False) -> list[tuple[str, float, str | None]]:
    """(digest, time of its last change, login) of every session in Redis.

    The login is the user id as stored (JSON text), None for a session signed
    in as nobody; it is read only when asked for, else always None.
    """

    # On a cluster, scan_iter visits every primary, and the pipeline sends each
    # primary the HGETs of its own keys. A page of names at a time: with many
    # sessions, one pipeline of every HGET would hold the loop while its
    # replies are read.
    async def fetch(client: redis_client.AsyncClient) -> list[tuple[str, Any, Any]]:
        found: list[tuple[str, Any, Any]] = []
        names: list[str] = []
        async for name in client.scan_iter(match=f"{PREFIX}*:meta", count=SCAN_COUNT):
            names.append(name)
            if len(names) == SCAN_PAGE:
                found += await _stamps(client, names, logins)
                names = []
        return found + await _stamps(client, names, logins)

    found = await read(fetch, LISTING_BUDGET)
    # A key that expired between the SCAN and the HGET answers None.
    return [
        (_digest_of(name), float(stamp), user) for name, stamp, user in found if stamp is not None
    ]


def _digest_of(meta_key: str) -> str:
    # session_keys() names a meta key PREFIX + "{digest}:meta".
    return meta_key[len(PREFIX) + 1 : -len("}:meta")]


async def _stamps(
    client: redis_client.AsyncClient, names: list[str], logins: bool
) -> list[tuple[str, Any, Any]]:
    if not names:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hget(name, "updated")
            if logins:
                # The data key shares the meta key's hash tag, so its slot too.
                pipe.hget(session_keys(_digest_of(name))[0], SESSION_KEY)
        replies = await pipe.execute()
    if not logins:
        return [(name, stamp, None) for name, stamp in zip(names, replies, strict=True)]
    return list(zip(names, replies[::2], replies[1::2], strict=True))


async def _timeline(session_digest: str) -> list[dict[str, Any]]:
    log = session_keys(session_digest)[3]
    entries = await read(lambda client: client.lrange(log, 0, setting("HISTORY_LENGTH") - 1))
    return [json.loads(entry) for entry in entries]
