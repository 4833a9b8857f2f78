"""The live engine on the database: SESSION_ENGINE = "live.engine".

Rows live in the live_session table under the digest of their key (see
live.sessions.keys); live.sessions.sql merges each request's diff onto the
stored row under the write lock, live.sessions.timeline keeps what each version
changed, and live.sessions.connections decides which connection does it.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import CreateError, UpdateError

from live.realtime import events
from live.sessions import connections, sql, timeline
from live.sessions.base import LiveSessionBase
from live.sessions.connections import Db
from live.types import Conflict, Missing, Snapshot, Summary, TooLarge, Written


class SessionStore(LiveSessionBase):
    # --- the backend ------------------------------------------------------------

    def _read(self, session_digest: str) -> Snapshot | None:
        return connections.call(sql.read, session_digest)

    async def _aread(self, session_digest: str) -> Snapshot | None:
        return await connections.run(sql.read, session_digest, pg=sql.aread)

    def _exists(self, session_digest: str) -> bool:
        return connections.call(sql.exists, session_digest)

    async def _aexists(self, session_digest: str) -> bool:
        return await connections.run(sql.exists, session_digest)

    def _remove(self, session_digest: str) -> bool:
        return connections.call(sql.delete, session_digest)

    async def _aremove(self, session_digest: str) -> bool:
        return await connections.run(sql.delete, session_digest)

    def _write(self, must_create: bool) -> Written | None:
        return connections.call(self._merge, must_create)

    async def _awrite(self, must_create: bool) -> Written | None:
        return await connections.run(self._merge, must_create)

    def _rekey(self) -> tuple[str | None, str]:
        return connections.call(self._move)

    async def _arekey(self) -> tuple[str | None, str]:
        return await connections.run(self._move)

    # --- the work, in one transaction on the connection it is given ------------

    def _insert(self, conn: Db) -> None:
        data = self._data()
        for _ in range(10):
            self._session_key = self._new_key()
            try:
                snapshot = sql.insert(conn, self.digest or "", self.masked_key, data, self._expiry)
            except connections.INTEGRITY_ERRORS:
                continue
            self._written(snapshot)
            return
        raise CreateError

    def _merge(self, conn: Db, must_create: bool) -> Written | None:
        """Write this request's changes; return what to publish, or None if nothing."""
        if must_create or self.session_key is None:
            self._insert(conn)
            return None
        changes, base = self._diff()
        try:
            snapshot, applied = sql.merge(
                conn, self.digest or "", changes, self._expiry, self.source, self._base(base)
            )
        except Missing:
            raise UpdateError from None
        except (Conflict, TooLarge):
            self._conflicted()
            raise
        self._written(snapshot)
        return (snapshot, applied) if applied else None

    def _move(self, conn: Db) -> tuple[str | None, str]:
        """Move the row, with this request's changes, to a new key; (old digest, new digest)."""
        old, key = self.digest, self._session_key
        changes = self._changes()
        for _ in range(10):
            self._session_key = self._new_key()
            try:
                snapshot, _applied = sql.rotate(
                    conn,
                    old,
                    self.digest or "",
                    self.masked_key,
                    changes,
                    self._expiry,
                    self.source,
                )
            except connections.INTEGRITY_ERRORS:
                continue
            except BaseException:
                # Not known to have moved: the session keeps its key, from
                # which work run again (live.sessions.connections) moves it.
                self._session_key = key
                raise
            self._written(snapshot)
            self.modified = True
            return old, snapshot.digest
        raise CreateError

    # --- the outside view ---------------------------------------------------------

    @classmethod
    async def aread(cls, session_digest: str) -> Snapshot | None:
        """The stored session with this digest, for listeners that hold no key (the hub)."""
        return await connections.run(sql.read, session_digest, pg=sql.aread)

    @classmethod
    async def ahistory(cls, session_digest: str) -> list[dict[str, Any]]:
        """The session's timeline, newest first."""
        return await connections.run(timeline.history, session_digest)

    @classmethod
    async def aentry(cls, session_digest: str, version: int) -> dict[str, Any] | None:
        return await connections.run(timeline.entry, session_digest, version)

    @classmethod
    async def asummaries(cls, limit: int = 200) -> list[Summary]:
        """The most recently changed live sessions, for the staff list."""
        return await connections.run(sql.summaries, limit)

    @classmethod
    async def aowned(cls, user_id: str) -> list[Summary]:
        """The live sessions signed in as this user, most recently changed first."""
        return await connections.run(sql.owned, user_id)

    @classmethod
    async def acount_active(cls, since: float) -> int:
        """How many live sessions changed since this moment."""
        return await connections.run(sql.count_active, since)

    @classmethod
    def clear_expired(cls) -> None:
        for gone in connections.call(sql.delete_expired):
            events.publish_from_sync(events.publish_ended, gone)

    @classmethod
    async def aclear_expired(cls) -> None:
        for gone in await connections.run(sql.delete_expired):
            await events.publish_ended(gone)
