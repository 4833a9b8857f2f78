"""SESSION_ENGINE = "live.redis_engine": the live engine on Redis (live.sessions.redis)."""

from live.sessions.redis import SessionStore

__all__ = ["SessionStore"]
