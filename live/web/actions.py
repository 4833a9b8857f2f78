"""What a person can do to their session, shared by the form views and the JSON API.

The views parse a request with live.web.validation, so an action gets keys
and values that already passed every rule that needs no session. The action
checks once what does need it (the write rate, the session's size, the key's
presence, the version the caller saw), calls the async session API, saves so
that the caller can report the resulting version, and returns the Python call
it made, which the page shows to teach the API.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import update_wrapper
from typing import Any, Concatenate, ParamSpec

from django.contrib.sessions.backends.base import SessionBase, UpdateError

from live import limits
from live.conf import is_reserved, visible
from live.sessions.base import LiveSessionBase
from live.types import TooLarge
from live.web.validation import Invalid, check_session_size, missing_key

P = ParamSpec("P")

_SHOWN = 120


def literal(value: Any) -> str:
    """Spell a JSON value as the Python literal a view would write, shortened."""
    if isinstance(value, bool) or value is None:
        text = repr(value)
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list):
        text = "[" + ", ".join(literal(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _expect(session: SessionBase, key: str, version: int) -> None:
    """Refuse the write if `key` changed after `version`: the live engines know; Django's do not."""
    if isinstance(session, LiveSessionBase):
        session.expect(key, version)


async def ensure(session: SessionBase) -> None:
    """Load the session, and store an empty one if the visitor has none yet."""
    await session.akeys()
    if session.session_key is None:
        await session.acreate()


def _limited(
    action: Callable[Concatenate[SessionBase, P], Awaitable[str]],
) -> Callable[Concatenate[SessionBase, P], Awaitable[str]]:
    """Refuse a write beyond the session's rate (the site's ASGI gate makes floods take turns)."""

    async def limited(session: SessionBase, /, *args: P.args, **kwargs: P.kwargs) -> str:
        digest = getattr(session, "digest", None)
        if not digest:
            return await action(session, *args, **kwargs)
        if not limits.allow_write(digest):
            raise Invalid("Too many writes to this session; slow down and try again.", 429)
        return await action(session, *args, **kwargs)

    update_wrapper(limited, action)
    return limited


async def _save(session: SessionBase) -> None:
    try:
        await session.asave()
    except TooLarge as exc:
        raise Invalid(str(exc), 413) from None
    except UpdateError:
        raise Invalid(
            "The session was flushed or rotated by another tab meanwhile; try again.", 409
        ) from None


@_limited
async def set_key(session: SessionBase, key: str, value: Any, seen: int | None = None) -> str:
    """Set a checked key to a checked value; the session is created if there is none."""
    await ensure(session)
    check_session_size(dict(await session.aitems()), key, value)
    if seen is not None:
        _expect(session, key, seen)
    await session.aset(key, value)
    # A Conflict from the save reaches the caller, which shows both values.
    await _save(session)
    return f"await request.session.aset({literal(key)}, {literal(value)})"


@_limited
async def delete_key(session: SessionBase, key: str, seen: int | None = None) -> str:
    """Delete a checked key; a session that has none is not created."""
    if not await session.ahas_key(key):
        raise missing_key(key)
    if seen is not None:
        _expect(session, key, seen)
    await session.apop(key)
    await _save(session)
    return f"await request.session.apop({literal(key)})"


@_limited
async def clear_editable(session: SessionBase) -> str:
    # There is no aclear(): clear() would also drop Django's own keys (the
    # login, the expiry), so the user's keys are popped one by one, from a
    # copy, as popping changes the session's own dict.
    for key in visible(dict(await session.aitems())):
        await session.apop(key)
    await _save(session)
    return (
        "for key in [k for k in await request.session.akeys() if not k.startswith('_')]: "
        "await request.session.apop(key)"
    )


@_limited
async def flush(session: SessionBase) -> str:
    """End the session as Django does: nothing stays stored, and the cookie goes."""
    await session.aflush()
    return "await request.session.aflush()"


@_limited
async def cycle(session: SessionBase) -> str:
    await ensure(session)
    await session.acycle_key()
    return "await request.session.acycle_key()"


@_limited
async def set_expiry(session: SessionBase, seconds: int | None) -> str:
    await session.aset_expiry(seconds)
    await _save(session)
    return f"await request.session.aset_expiry({literal(seconds)})"


@_limited
async def undo(session: SessionBase, version: int) -> str:
    """Restore the old values of one change, as a new change through the same write path."""
    await ensure(session)
    if not isinstance(session, LiveSessionBase):
        raise Invalid("This session engine keeps no timeline, so there is nothing to undo.")
    entry = await session.aentry(session.digest or "", version)
    if entry is None:
        raise Invalid(f"Version {version} is no longer in this session's history.", 404)
    calls = []
    for change in entry["changes"]:
        key = change.get("key", "")
        if change["op"] == "cycle" or is_reserved(key):
            continue
        # Undo conflicts like any write if the key changed after that version.
        _expect(session, key, version)
        if "old" in change:
            await session.aset(key, change["old"])
            calls.append(f"await request.session.aset({literal(key)}, {literal(change['old'])})")
        elif await session.ahas_key(key):
            await session.apop(key)
            calls.append(f"await request.session.apop({literal(key)})")
    if not calls:
        raise Invalid(
            f"Version {version} changed only Django's own keys; there is nothing to undo."
        )
    await _save(session)
    return "; ".join(calls)
