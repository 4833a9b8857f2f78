"""Who a session is signed in as, by name, for the page and its pushes alike."""

from __future__ import annotations

from collections import OrderedDict

from django.apps import apps
from django.contrib.auth import SESSION_KEY
from django.core.exceptions import ObjectDoesNotExist, ValidationError

from live.sessions import connections
from live.sessions.connections import Db
from live.types import Snapshot

# A change reaches every tab of a session one after the other: the name is
# looked up once per session version, not once per tab. A few entries cover
# every fan-out, as in the renderer's own cache.
_NAMES: OrderedDict[tuple[str, int, str], str | None] = OrderedDict()
_KEPT = 32


async def username(snapshot: Snapshot) -> str | None:
    """The username of the user the session is signed in as, or None.

    Read from the session's own `_auth_user_id`, never from the request, so a
    staff watcher sees the owner's name, and a push (which has no request)
    shows the same name as the page.
    """
    user_id = snapshot.data.get(SESSION_KEY)
    if user_id is None or not apps.is_installed("django.contrib.auth"):
        return None
    key = (snapshot.digest, snapshot.version, str(user_id))
    if key in _NAMES:
        _NAMES.move_to_end(key)
        return _NAMES[key]
    name = await _lookup(user_id)
    _NAMES[key] = name
    if len(_NAMES) > _KEPT:
        _NAMES.popitem(last=False)
    return name


async def _lookup(user_id: object) -> str | None:
    # On the session store's threads, not Django's thread-sensitive one: the
    # hub's pushes would hold that thread's connection for the life of the
    # process, and a database outage would leave it dead for good.
    return await connections.in_thread(_username, user_id)


def _username(db: Db, user_id: object) -> str | None:
    from django.contrib.auth import get_user_model

    model = get_user_model()
    try:
        pk = model._meta.pk.to_python(user_id)
        user = model._default_manager.get(pk=pk)
    except (ObjectDoesNotExist, ValidationError, ValueError, TypeError):
        # A deleted user, or an id this user model cannot read: no name to show.
        return None
    return str(user.get_username())
