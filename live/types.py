"""The values every layer passes around: a stored session, a request's changes, refusals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import SESSION_KEY

from live.sessions.client import AGENT, IP, STARTED
from live.sessions.codec import dumps


def same(a: Any, b: Any) -> bool:
    """JSON equality: like ==, but True is not 1 and 1 is not 1.0, at any depth."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    return bool(a == b)


@dataclass
class Snapshot:
    """A session's state at one version, as stored."""

    digest: str
    version: int
    data: dict[str, Any]
    masked_key: str
    expires_at: float
    key_versions: dict[str, int] = field(default_factory=dict)
    # The stored JSON text of `data`, as read or written: the base of the
    # writer's next diff, and what a merge measures against the size limit.
    text: str = "{}"

    @property
    def expire_date(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, tz=UTC)

    @property
    def size_bytes(self) -> int:
        return len(dumps(self.data).encode())


@dataclass
class Changes:
    """What one request did to a session: keys set, keys deleted, or everything wiped."""

    sets: dict[str, Any] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    wipe: bool = False
    # key -> the version the writer last saw; a later change to the key conflicts.
    expect: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.sets or self.deletes or self.wipe)


class Conflict(Exception):
    """The key changed after the version the writer saw."""

    def __init__(self, key: str, current: Any, version: int) -> None:
        super().__init__(f"The key {key!r} was changed by someone else since version {version}.")
        self.key = key
        self.current = current
        self.version = version


class TooLarge(ValueError):
    """The merged session would pass MAX_SESSION_BYTES."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"The session would be {size} bytes; the limit is {limit}.")


class Missing(Exception):
    """The row to merge into is gone (deleted, flushed or expired meanwhile)."""


class Unavailable(Exception):
    """The session store cannot be reached; the message says so in one sentence."""


# {"op": "set"|"delete", "key", "value" (sets), "old" (when the key existed)},
# in the order applied: the timeline keeps them whole, events drop "old".
Applied = list[dict[str, Any]]
# What a save publishes: the session as written and the changes applied to it.
Written = tuple[Snapshot, Applied]
# Maps the session's "_session_expiry" value to an absolute expiry, in epoch seconds.
ExpiryFn = Callable[[Any], float]


@dataclass
class Summary:
    """A session as the staff list shows it, without its values."""

    digest: str
    masked_key: str
    keys: int
    size_bytes: int
    version: int
    expires_at: float
    updated_at: float
    # Who holds it, from its reserved keys (live.sessions.client): the user's
    # id, when it started, and (with RECORD_CLIENT) the client's agent and IP.
    user_id: str | None = None
    started: float | None = None
    agent: str = ""
    ip: str = ""
    # The user's name, looked up by the pages that show it (live.web.holders.named).
    username: str = ""

    @classmethod
    def of(cls, snapshot: Snapshot, updated_at: float, size_bytes: int | None = None) -> Summary:
        """A stored session, summarized: its counts and who holds it, never its values."""
        data = snapshot.data
        user = data.get(SESSION_KEY)
        started = data.get(STARTED)
        return cls(
            snapshot.digest,
            snapshot.masked_key,
            len(data),
            len(snapshot.text.encode()) if size_bytes is None else size_bytes,
            snapshot.version,
            snapshot.expires_at,
            updated_at,
            user_id=None if user is None else str(user),
            started=float(started) if isinstance(started, int | float) else None,
            agent=str(data.get(AGENT) or ""),
            ip=str(data.get(IP) or ""),
        )
