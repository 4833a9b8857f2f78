"""What may be derived from a session key: a digest for storage and groups, a mask for display."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings

# The key is a bearer credential. Everything outside the cookie (rows, channel
# groups, logs, pages) names a session by this keyed digest instead, so that a
# leaked database or Redis dump cannot be replayed as cookies.
_SALT = "live.keys.digest"


@lru_cache(maxsize=4)
def _keyed(secret: str) -> hmac.HMAC:
    # What django.utils.crypto.salted_hmac derives on every call, derived once,
    # and an HMAC already keyed with it: copying one skips OpenSSL's set-up.
    key = hashlib.sha256((_SALT + secret).encode()).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def digest(session_key: str) -> str:
    """Return the hex HMAC-SHA256 of a session key (64 characters).

    The same value as salted_hmac(_SALT, session_key, algorithm="sha256"),
    at a fraction of the cost: this runs on every request.
    """
    return _digest(settings.SECRET_KEY, session_key)


# The sessions that are being used right now ask again and again, on every
# request; a dict lookup is cheaper than the HMAC. Bounded, so random keys
# sent as cookies only push entries out.
@lru_cache(maxsize=4096)
def _digest(secret: str, session_key: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(session_key.encode())
    return mac.hexdigest()


def mask(session_key: str) -> str:
    """Return the first and last four characters, enough to tell sessions apart."""
    if len(session_key) <= 8:
        return "…"
    return f"{session_key[:4]}…{session_key[-4:]}"
