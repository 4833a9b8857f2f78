"""Django's own session engines, watched: read through their API, published for by the app.

The live engines publish every change themselves, keep a version and a
timeline, and answer by digest. Django's engines (db, cached_db, cache, file,
signed_cookies) do none of that, so for them:

- the middleware publishes after each request what it did to the session:
  a rotation or an end under the old key, or "read it again" under the key;
- a process's hub reads the session through the engine, with the key of the
  cookie its own tab connected with, and holds that key in memory only;
- a snapshot's version is the time it was read, in microseconds, so that the
  page still orders pushes and answers by it.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from live.conf import session_store
from live.realtime import events
from live.sessions.base import LiveSessionBase
from live.sessions.codec import dumps
from live.sessions.keys import digest, mask
from live.types import Snapshot, Summary

# What the page says of each kind of engine, in one place.
LIVE_GUARANTEES = (
    "Writes are merged key by key: concurrent tabs never overwrite each other, a same-key "
    "conflict is refused and shown, and every change from any code path is pushed."
)
DJANGO_GUARANTEES = (
    "This is Django's own engine: each save writes the whole session, so concurrent "
    "writes may overwrite each other, and only changes made in requests are pushed "
    "(not those of commands or other engines). There is no timeline or undo. "
    'SESSION_ENGINE = "live.engine" adds merged writes, conflicts, the timeline and '
    "pushes from every code path."
)


@cache
def is_live(engine: type[Any]) -> bool:
    """Whether the engine publishes, versions and keeps a timeline itself."""
    return issubclass(engine, LiveSessionBase)


def engine_is_live() -> bool:
    return is_live(session_store())


def guarantees() -> str:
    return LIVE_GUARANTEES if engine_is_live() else DJANGO_GUARANTEES


async def read(session_digest: str, key: str | None) -> Snapshot | None:
    """The stored session, or None: by digest from a live engine, by key from Django's."""
    engine = session_store()
    if is_live(engine):
        snapshot: Snapshot | None = await engine.aread(session_digest)
        return snapshot
    if not key:
        return None
    store = engine(key)
    data = dict(await store.aitems())
    # Django's engines forget a key they cannot load (signed_cookies starts a new session).
    if store._session_key is None or store.modified:
        return None
    return _snapshot(store, key, data)


async def history(session_digest: str) -> list[dict[str, Any]]:
    engine = session_store()
    if is_live(engine):
        entries: list[dict[str, Any]] = await engine.ahistory(session_digest)
        return entries
    return []


async def snapshot(session: SessionBase) -> Snapshot:
    """This request's view of its session, shaped like a stored snapshot."""
    if isinstance(session, LiveSessionBase):
        return await session.asnapshot()
    data = dict(await session.aitems())
    return _snapshot(session, session.session_key, data)


def _snapshot(store: SessionBase, key: str | None, data: dict[str, Any]) -> Snapshot:
    return Snapshot(
        digest=digest(key) if key else "",
        version=time.time_ns() // 1000,
        data=dict(data),
        masked_key=mask(key) if key else "",
        expires_at=store.get_expiry_date().timestamp(),
        text=dumps(data),
    )


async def publish(session: SessionBase, old_key: str | None) -> None:
    """After a request on Django's engine: tell the session's tabs what it did."""
    # A session the request never touched is not loaded, so it would look empty.
    if isinstance(session, LiveSessionBase) or not (session.accessed or session.modified):
        return
    key = None if session.is_empty() else session.session_key
    if old_key and old_key != key:
        if session.modified or key is None:
            # The tabs reconnect, and the browser's cookie says where to.
            await (events.publish_rotated if key else events.publish_ended)(digest(old_key))
    elif key and session.modified:
        await events.publish_stale(digest(key))


async def summaries() -> list[Summary]:
    """The staff list: a live engine lists its sessions; Django's cannot be listed by digest."""
    engine = session_store()
    if is_live(engine):
        rows: list[Summary] = await engine.asummaries()
        return rows
    return []


async def count_active(since: float) -> int:
    """Sessions changed since then, for the metrics; Django's engines do not say."""
    engine = session_store()
    if is_live(engine):
        count: int = await engine.acount_active(since)
        return count
    return 0


async def owned(user_id: str) -> list[Summary] | None:
    """A user's sessions from a live engine; None from Django's, which cannot list them."""
    engine = session_store()
    if is_live(engine):
        rows: list[Summary] = await engine.aowned(user_id)
        return rows
    return None


async def end(session_digest: str) -> bool:
    """End a session by its digest, as a logout would; Django's engines need the key instead."""
    engine = session_store()
    if is_live(engine):
        ended: bool = await engine.adelete_digest(session_digest)
        return ended
    return False
