"""What both live engines share: the diff, the expectations, the publishing.

Saving diffs the session against what this request loaded and hands only that
diff to the backend, which merges it onto the latest stored state atomically,
so concurrent requests never lose each other's keys; each save that changes
something bumps the session's version and publishes the change (see
live.realtime.events), whatever code path made it. The methods a backend
implements sit in one marked section, each with its async twin below it, as in
Django's SessionBase.
"""

from __future__ import annotations

import time
from importlib import import_module
from typing import Any

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, SessionBase
from django.utils.crypto import get_random_string

from live import metrics
from live.conf import setting
from live.realtime import events
from live.sessions.codec import dumps, loads, scalars_only
from live.sessions.keys import digest, mask
from live.types import Applied, Changes, Snapshot, Summary, Written, same


class LiveSessionBase(SessionBase):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # The JSON text of what was loaded or last written: the base of the diff.
        # It is parsed only when saving, so read-only requests pay nothing for it,
        # and a value the request changed in place still differs from it.
        self._base_text = "{}"
        # A shallow copy of what was loaded when it holds only scalars (None
        # otherwise): the diff's base without parsing the text again, and an
        # unchanged value is the very same object, compared by identity.
        self._base_values: dict[str, Any] | None = {}
        self._wiped = False
        self._expect: dict[str, int] = {}
        # True right after this object wrote the row, so a second save of an
        # unchanged session (the view's, then the middleware's) costs nothing;
        # after a plain load a save still refreshes the expiry, as Django's does.
        self._in_sync = False
        self.version = 0
        self.key_versions: dict[str, int] = {}
        # The row's expiry as read or written; a read must not move it.
        self._stored_expiry: float | None = None
        # Who is writing, for the change events: the middleware sets "POST /path".
        self.source = "code"
        # A key to store the next new session under instead of a random one
        # (a session adopted from the previous engine keeps its cookie).
        self._kept_key: str | None = None
        # Whether the store published the last write's change itself (the Redis
        # engine's script, live.realtime.events.store_channel).
        self._pushed_by_store = False

    # The base class's loaders are private and untyped in the stubs; one typed door each.
    def _data(self) -> dict[str, Any]:
        return self._get_session()  # type: ignore[attr-defined,no-any-return]

    async def _adata(self) -> dict[str, Any]:
        return await self._aget_session()  # type: ignore[attr-defined,no-any-return]

    # --- identity -------------------------------------------------------------

    @property
    def digest(self) -> str | None:
        key = self.session_key
        return digest(key) if key else None

    @property
    def masked_key(self) -> str:
        return mask(self.session_key) if self.session_key else ""

    def _new_key(self) -> str:
        if self._kept_key is not None:
            key, self._kept_key = self._kept_key, None
            return key
        # 32 characters from 36 is 165 bits; a collision is caught by the
        # primary key on insert, so no exists() round trip is needed first.
        return get_random_string(32, VALID_KEY_CHARS)

    # --- what a backend implements ----------------------------------------------
    # The entry points below (load, save, delete, cycle_key, flush and their
    # async twins) are written once, here; each backend gives them its storage
    # through these methods, every one with its async twin right below it.

    def _read(self, session_digest: str) -> Snapshot | None:
        """The stored session, or None if there is none (or it expired)."""
        raise NotImplementedError

    async def _aread(self, session_digest: str) -> Snapshot | None:
        raise NotImplementedError

    def _exists(self, session_digest: str) -> bool:
        raise NotImplementedError

    async def _aexists(self, session_digest: str) -> bool:
        raise NotImplementedError

    def _remove(self, session_digest: str) -> bool:
        """Delete the stored session; whether there was one."""
        raise NotImplementedError

    async def _aremove(self, session_digest: str) -> bool:
        raise NotImplementedError

    def _write(self, must_create: bool) -> Written | None:
        """Store this request's changes (see _diff); what to publish, or None if nothing."""
        raise NotImplementedError

    async def _awrite(self, must_create: bool) -> Written | None:
        raise NotImplementedError

    def _rekey(self) -> tuple[str | None, str]:
        """Move the session and its data to a new key: (old digest, new digest)."""
        raise NotImplementedError

    async def _arekey(self) -> tuple[str | None, str]:
        raise NotImplementedError

    @classmethod
    async def aread(cls, session_digest: str) -> Snapshot | None:
        """The stored session with this digest, for listeners that hold no key (the hub)."""
        raise NotImplementedError

    @classmethod
    async def ahistory(cls, session_digest: str) -> list[dict[str, Any]]:
        """The session's timeline, newest first."""
        raise NotImplementedError

    @classmethod
    async def aentry(cls, session_digest: str, version: int) -> dict[str, Any] | None:
        """The timeline entry of one version, while it is kept."""
        raise NotImplementedError

    @classmethod
    async def asummaries(cls, limit: int = 200) -> list[Summary]:
        """The most recently changed live sessions, for the staff list."""
        raise NotImplementedError

    @classmethod
    async def acount_active(cls, since: float) -> int:
        """How many live sessions changed since this moment."""
        raise NotImplementedError

    @classmethod
    async def aowned(cls, user_id: str) -> list[Summary]:
        """The live sessions signed in as this user, most recently changed first."""
        raise NotImplementedError

    # --- loading --------------------------------------------------------------

    def _loaded(self, snapshot: Snapshot | None) -> dict[str, Any]:
        if snapshot is None:
            self._session_key = None
            self._base_text, self.version, self.key_versions = "{}", 0, {}
            self._base_values = {}
            return {}
        self.version = snapshot.version
        self.key_versions = snapshot.key_versions
        self._base_text = snapshot.text
        self._base_values = dict(snapshot.data) if scalars_only(snapshot.data) else None
        self._stored_expiry = snapshot.expires_at
        return snapshot.data

    def load(self) -> dict[str, Any]:
        key = self.digest
        snapshot = self._read(key) if key else None
        if snapshot is None and key and setting("PREVIOUS_ENGINE"):
            adopted = self._adopt()
            if adopted is not None:
                return adopted
        return self._loaded(snapshot)

    async def aload(self) -> dict[str, Any]:
        key = self.digest
        snapshot = await self._aread(key) if key else None
        if snapshot is None and key and setting("PREVIOUS_ENGINE"):
            adopted = await self._aadopt()
            if adopted is not None:
                return adopted
        return self._loaded(snapshot)

    def exists(self, session_key: str | None) -> bool:
        return bool(session_key) and self._exists(digest(session_key or ""))

    async def aexists(self, session_key: str | None) -> bool:
        return bool(session_key) and await self._aexists(digest(session_key or ""))

    # --- adopting a session of the previous engine ---------------------------------

    def _previous(self) -> SessionBase:
        engine = import_module(setting("PREVIOUS_ENGINE"))
        return engine.SessionStore(self.session_key)  # type: ignore[no-any-return]

    def _adopted(self, previous: SessionBase, data: dict[str, Any]) -> bool:
        # Django's engines forget the key when it names no session of theirs.
        if previous.session_key is None or not data:
            return False
        self._kept_key = self.session_key
        self._session_key = None
        self._session_cache = data
        return True

    def _adopt(self) -> dict[str, Any] | None:
        """Store the previous engine's session under this key, and delete it there."""
        previous = self._previous()
        data = previous.load()
        if not self._adopted(previous, data):
            return None
        self._write(must_create=True)
        previous.delete()
        return self._data()

    async def _aadopt(self) -> dict[str, Any] | None:
        previous = self._previous()
        data = await previous.aload()
        if not self._adopted(previous, data):
            return None
        await self._awrite(must_create=True)
        await previous.adelete()
        return await self._adata()

    # --- conflicts --------------------------------------------------------------

    def expect(self, key: str, version: int) -> None:
        """Make the next save fail with Conflict if `key` changed after `version`."""
        self._expect[key] = version

    # --- saving -----------------------------------------------------------------

    def _changes(self) -> Changes:
        return self._diff()[0]

    def _diff(self) -> tuple[Changes, dict[str, Any]]:
        """This request's changes against what it loaded, and a fresh copy of what it loaded."""
        current = self._data()
        values = self._base_values
        base: dict[str, Any] = dict(values) if values is not None else loads(self._base_text)
        sets = {
            k: v
            for k, v in current.items()
            if k not in base or (v is not base[k] and not same(v, base[k]))
        }
        # A value JSON cannot hold raises TypeError when the merge encodes the
        # session (the Redis engine: each value), with the json module's own
        # message, as Django's serializer does; nothing is written then. A
        # conditional write checks first, so that a conflict cannot hide it.
        if self._expect:
            for value in sets.values():
                dumps(value)
        deletes = [key for key in base if key not in current]
        changes = Changes(sets=sets, deletes=deletes, wipe=self._wiped, expect=self._expect)
        return changes, base

    def _base(self, data: dict[str, Any]) -> Snapshot:
        # The stored row as this object last read or wrote it, for the merge to
        # start from; key_versions is copied because the merge consumes it.
        return Snapshot(
            digest=self.digest or "",
            version=self.version,
            data=data,
            # Kept by the store as the row it wrote, so it says what the row says.
            masked_key=self.masked_key,
            expires_at=self._stored_expiry or 0.0,
            key_versions=dict(self.key_versions),
            text=self._base_text,
        )

    def _expiry(self, value: Any) -> float:
        """Epoch seconds of the expiry that a "_session_expiry" of `value` gives, from now."""
        if value is None:
            # Django's get_expiry_date() for the default policy, without its datetimes.
            return time.time() + self.get_session_cookie_age()
        return self.get_expiry_date(expiry=value).timestamp()

    def _written(self, snapshot: Snapshot) -> None:
        self._session_cache = snapshot.data
        self._stored_expiry = snapshot.expires_at
        self._base_text = snapshot.text
        self._base_values = dict(snapshot.data) if scalars_only(snapshot.data) else None
        self.version, self.key_versions = snapshot.version, snapshot.key_versions
        self._wiped, self._expect, self._in_sync = False, {}, True

    def _conflicted(self) -> None:
        # The refused write must not be saved later by the middleware.
        self._expect = {}
        self.__dict__.pop("_session_cache", None)
        self._in_sync = False

    def _event(self, snapshot: Snapshot, applied: Applied) -> dict[str, Any]:
        return events.changed_event(snapshot.version, applied, self.source, snapshot.expires_at)

    def _nothing_new(self, must_create: bool) -> bool:
        # The view saved and nothing changed since: the middleware's second
        # save needs no database call (on PostgreSQL, no thread hop either).
        return (
            self._in_sync
            and not must_create
            and self.session_key is not None
            and not self._changes()
        )

    def save(self, must_create: bool = False) -> None:
        if self._nothing_new(must_create):
            return
        self._data()  # the base of the diff
        result = self._write(must_create)
        if result:
            metrics.wrote()
            if self._pushed_by_store:
                events.publish_from_sync(events.changed_by_store)
            else:
                digest = result[0].digest
                events.publish_from_sync(events.publish_changed, digest, self._event(*result))

    async def asave(self, must_create: bool = False) -> None:
        if self._nothing_new(must_create):
            return
        await self._adata()
        result = await self._awrite(must_create)
        if result:
            metrics.wrote()
            if self._pushed_by_store:
                await events.changed_by_store()
            else:
                await events.publish_changed(result[0].digest, self._event(*result))

    def create(self) -> None:
        self._session_key = None
        self.save(must_create=True)
        self.modified = True

    async def acreate(self) -> None:
        self._session_key = None
        await self.asave(must_create=True)
        self.modified = True

    def clear(self) -> None:
        super().clear()
        # A clear removes every stored key, also those set by others after
        # this request loaded, as a clear in a single-user world would.
        self._wiped = True

    # --- ending and moving ------------------------------------------------------

    def delete(self, session_key: str | None = None) -> None:
        key = session_key or self.session_key
        if not key:
            return
        gone = digest(key)
        if self._remove(gone):
            events.publish_from_sync(events.publish_ended, gone)

    async def adelete(self, session_key: str | None = None) -> None:
        key = session_key or self.session_key
        if not key:
            return
        gone = digest(key)
        if await self._aremove(gone):
            await events.publish_ended(gone)

    @classmethod
    def delete_digest(cls, session_digest: str) -> bool:
        """End the session with this digest, as delete() would with its key; whether it was there.

        For those who may end a session but must not hold its key: its owner
        elsewhere, staff, the admin.
        """
        if not cls()._remove(session_digest):
            return False
        events.publish_from_sync(events.publish_ended, session_digest)
        return True

    @classmethod
    async def adelete_digest(cls, session_digest: str) -> bool:
        if not await cls()._aremove(session_digest):
            return False
        await events.publish_ended(session_digest)
        return True

    def cycle_key(self) -> None:
        self._data()
        old, _ = self._rekey()
        if old:
            events.publish_from_sync(events.publish_rotated, old)

    async def acycle_key(self) -> None:
        await self._adata()
        old, _ = await self._arekey()
        if old:
            await events.publish_rotated(old)

    # --- the outside view -------------------------------------------------------

    async def asnapshot(self) -> Snapshot:
        """This request's view of the session, shaped like a stored snapshot."""
        data = await self._adata()
        return Snapshot(
            digest=self.digest or "",
            version=self.version,
            data=data,
            masked_key=self.masked_key,
            expires_at=self._stored_expiry or (await self.aget_expiry_date()).timestamp(),
            key_versions=self.key_versions,
        )
