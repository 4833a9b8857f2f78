"""SESSION_ENGINE = "live.engine": the live engine on the database (live.sessions.db)."""

from live.sessions.db import SessionStore

__all__ = ["SessionStore"]
