"""What a 503 says when the database behind the sessions cannot be reached or answer.

One sentence, no more than is known. A read changed nothing. A change whose
transaction broke before its COMMIT was sent was rolled back by the database,
or never reached it: nothing was saved. A change whose COMMIT (or a statement
outside a transaction) was sent and got no answer may have been made.
"""

from __future__ import annotations

import logging
import sqlite3

from django.db import InterfaceError, OperationalError

from live.types import Unavailable

logger = logging.getLogger(__name__)

# Django's wrappers raise these for a server that is gone, refuses connections,
# closed this one or cannot answer now (shut down, restarting, out of slots).
DOWN = (OperationalError, InterfaceError)


def lost(exc: BaseException) -> bool:
    """Whether a database server could not be reached or answer.

    SQLite's errors of the same classes (no such table, a file that cannot
    be opened) are a setup's, not an outage's: they stay what they are.
    """
    return isinstance(exc, DOWN) and not isinstance(exc.__cause__, sqlite3.Error)


CANNOT_READ = "The session store (the database) cannot be reached right now; try again in a moment."
NOT_SAVED = "The session store (the database) cannot be reached right now; nothing was saved."
MAYBE_SAVED = (
    "The connection to the session store (the database) broke before it answered;"
    " the change may or may not have been saved."
)


def unavailable(exc: Exception, changes: bool, sent: bool) -> Unavailable:
    """The error to raise for a database error: what is known of the change, in one sentence."""
    logger.warning("Session database unavailable: %r", exc)
    if not changes:
        return Unavailable(CANNOT_READ)
    return Unavailable(MAYBE_SAVED if sent else NOT_SAVED)
