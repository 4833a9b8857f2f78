"""What may be derived from a session key: a digest for storage and groups, a mask for display."""

from __future__ import annotations

from django.utils.crypto import salted_hmac

# The key is a bearer credential. Everything outside the cookie (rows, channel
# groups, logs, pages) names a session by this keyed digest instead, so that a
# leaked database or Redis dump cannot be replayed as cookies.
_SALT = "live.keys.digest"


def digest(session_key: str) -> str:
    """Return the hex HMAC-SHA256 of a session key (64 characters)."""
    return salted_hmac(_SALT, session_key, algorithm="sha256").hexdigest()


def mask(session_key: str) -> str:
    """Return the first and last four characters, enough to tell sessions apart."""
    if len(session_key) <= 8:
        return "…"
    return f"{session_key[:4]}…{session_key[-4:]}"
