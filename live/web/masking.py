"""What a watcher of someone else's session may not read: the values of secret-looking keys."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth import HASH_SESSION_KEY

from live.conf import setting
from live.sessions.client import IP

ALWAYS = frozenset({HASH_SESSION_KEY, IP})
# Shown instead of a masked value; the row keeps the value's type and size.
MASKED = "••••••"


@dataclass(frozen=True)
class Mask:
    """The masked keys: Django's auth hash and the client's IP, and those matching `pattern`."""

    pattern: str

    def hides(self, key: str) -> bool:
        # The auth hash is derived from the user's password hash, and an IP
        # address is personal data, whatever MASK_KEYS says.
        return key in ALWAYS or bool(self.pattern and re.search(self.pattern, key))


def watcher_mask() -> Mask | None:
    """The mask for a staff watcher: LIVE_SESSIONS["MASK_KEYS"], or None with MASK_VALUES off."""
    return Mask(setting("MASK_KEYS") or "") if setting("MASK_VALUES") else None
