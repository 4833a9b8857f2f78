"""The staff list's rows: who holds each session, by name, filtered and searched."""

from __future__ import annotations

from urllib.parse import parse_qs

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from live.realtime import presence
from live.sessions import watched
from live.sessions.client import device
from live.types import Summary


async def named(rows: list[Summary]) -> list[Summary]:
    """Fill in each row's username, with one query for all of them."""
    ids = {row.user_id for row in rows if row.user_id is not None}
    if not ids:
        return rows
    model = get_user_model()
    names: dict[str, str] = {}
    pk = model._meta.pk
    assert pk is not None
    wanted = []
    for user_id in ids:
        try:
            wanted.append(pk.to_python(user_id))
        except (ValidationError, ValueError, TypeError):  # no name to show for it
            continue
    async for user in model._default_manager.filter(pk__in=wanted):
        names[str(user.pk)] = user.get_username()
    for row in rows:
        row.username = names.get(row.user_id or "", "")
    return rows


def staff_filters(query: str) -> dict[str, str]:
    """The staff list's filters from a query string: `user` (a username) and `q` (any text)."""
    parsed = parse_qs(query)
    return {name: parsed.get(name, [""])[0].strip()[:150] for name in ("user", "q")}


def _matches(row: Summary, filters: dict[str, str]) -> bool:
    user, text = filters.get("user", ""), filters.get("q", "").casefold()
    if user and row.username != user:
        return False
    if not text:
        return True
    seen = (row.masked_key, row.username or "anonymous", device(row.agent))
    return any(text in each.casefold() for each in seen)


async def staff_list(filters: dict[str, str]) -> tuple[list[Summary], dict[str, int]]:
    """The staff list's rows, named and filtered, and their tab counts."""
    rows = [row for row in await named(await watched.summaries()) if _matches(row, filters)]
    return rows, await presence.counts(row.digest for row in rows)
