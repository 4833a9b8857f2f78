"""Live sessions in Django's admin: read-only and masked, with one action, ending them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from live.conf import session_store
from live.models import LiveSession
from live.sessions import watched
from live.sessions.client import device
from live.sessions.codec import loads
from live.types import Snapshot, Summary

logger = logging.getLogger(__name__)


def _summary(row: LiveSession) -> Summary:
    snapshot = Snapshot(row.digest, row.version, loads(row.data), row.masked_key, row.expires_at)
    return Summary.of(snapshot, row.updated_at, len(row.data.encode()))


@admin.register(LiveSession)
class LiveSessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The rows of live.engine, as the staff list shows them: never a value, never a key."""

    list_display = ("masked_key", "user", "client", "last_activity", "size", "expires")
    # No change form: its fields would show the data, values and all.
    list_display_links = None
    ordering = ("-updated_at",)
    actions = ("end_sessions",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The list only: a row's own page would show its data, values and all.
        return obj is None and super().has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a row would skip the engine: its tabs would never hear of it.
        return False

    def has_end_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_staff) and self.has_view_permission(request)

    @admin.display(description="user")
    def user(self, row: LiveSession) -> str:
        user_id = _summary(row).user_id
        if user_id is None:
            return "anonymous"
        model = get_user_model()
        try:
            found = model._default_manager.filter(pk=user_id).first()
        except (ValidationError, ValueError, TypeError):
            found = None
        return found.get_username() if found else f"user {user_id} (not found)"

    @admin.display(description="device")
    def client(self, row: LiveSession) -> str:
        return device(_summary(row).agent) or "not recorded"

    @admin.display(description="last activity", ordering="updated_at")
    def last_activity(self, row: LiveSession) -> datetime:
        return datetime.fromtimestamp(row.updated_at, tz=UTC)

    @admin.display(description="bytes")
    def size(self, row: LiveSession) -> int:
        return len(row.data.encode())

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, row: LiveSession) -> datetime:
        return datetime.fromtimestamp(row.expires_at, tz=UTC)

    @admin.action(description="End the selected sessions", permissions=["end"])
    def end_sessions(self, request: HttpRequest, rows: QuerySet[LiveSession]) -> None:
        # Through the engine, as a logout: deleted, and their tabs told in every process.
        engine = session_store()
        ended = 0
        for row in rows:
            if watched.is_live(engine) and engine.delete_digest(row.digest):
                logger.info("Session %s ended by staff user %s.", row.masked_key, request.user)
                ended += 1
        self.message_user(
            request, f"Ended {ended} session{'' if ended == 1 else 's'}.", messages.SUCCESS
        )
