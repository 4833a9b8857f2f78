"""Expired sessions go with Django's clearsessions and the engines' aclear_expired."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.management import call_command

from live.models import LiveSession
from live.sessions.db import SessionStore
from tests.helpers import new_session

pytestmark = pytest.mark.django_db(transaction=True)


def stored(**data: Any) -> SessionStore:
    session = SessionStore()
    session.update(data)
    session.create()
    return session


def expire(session: SessionStore) -> None:
    LiveSession.objects.filter(digest=session.digest).update(expires_at=time.time() - 1)


def test_clearsessions_deletes_only_expired_sessions(settings: Any) -> None:
    settings.SESSION_ENGINE = "live.engine"
    gone, kept = stored(a=1), stored(b=2)
    expire(gone)
    call_command("clearsessions")
    assert LiveSession.objects.filter(digest=gone.digest).count() == 0
    assert LiveSession.objects.filter(digest=kept.digest).count() == 1
    assert SessionStore(kept.session_key).load() == {"b": 2}


async def test_aclear_expired_deletes_only_expired_sessions() -> None:
    gone, kept = await new_session(a=1), await new_session(b=2)
    await LiveSession.objects.filter(digest=gone.digest).aupdate(expires_at=time.time() - 1)
    await SessionStore.aclear_expired()
    assert not await SessionStore().aexists(gone.session_key)
    assert await SessionStore().aexists(kept.session_key)
    assert await LiveSession.objects.filter(digest=gone.digest).acount() == 0
