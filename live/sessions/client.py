"""What a session records of who holds it: when it was signed in and, if allowed, the client.

The records are keys of the session itself, reserved ones (a leading
underscore: Django's kind, hidden from the editor), so they end with the session
on every engine and need no table of their own. A signed-in session keeps its
start; the user agent and the IP address are personal data, kept only with
LIVE_SESSIONS["RECORD_CLIENT"], and dropped from a session at its next request
once that is turned off. LiveSessionMiddleware writes them (live.http.middleware.record).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from live.conf import setting

STARTED = "_live_started"
AGENT = "_live_agent"
IP = "_live_ip"
CLIENT_KEYS = (AGENT, IP)
# A user agent is a free-form header: a long one is cut, not stored whole.
AGENT_LENGTH = 256


def client(meta: Mapping[str, Any]) -> dict[str, str]:
    """The client's agent and address as RECORD_CLIENT wants them kept: nothing when off."""
    if not setting("RECORD_CLIENT"):
        return {}
    return {AGENT: str(meta.get("HTTP_USER_AGENT", ""))[:AGENT_LENGTH], IP: address(meta)}


def address(meta: Mapping[str, Any]) -> str:
    """The client's IP: from CLIENT_IP_HEADER when one is configured, else REMOTE_ADDR.

    A proxy appends the address it saw to X-Forwarded-For, so the last entry is
    the one the site's own proxy vouches for; earlier ones the client may have made up.
    """
    header = setting("CLIENT_IP_HEADER")
    forwarded = str(meta.get(header, "")) if header else ""
    if forwarded:
        return forwarded.split(",")[-1].strip()[:64]
    return str(meta.get("REMOTE_ADDR", ""))[:64]


def now() -> float:
    """The start's stamp: epoch seconds, to the millisecond."""
    return round(time.time(), 3)


def changed(data: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, str | None]:
    """The client keys that differ from what RECORD_CLIENT wants now (None: to remove)."""
    wanted = client(meta)
    return {
        key: wanted.get(key)
        for key in CLIENT_KEYS
        if (key in data or key in wanted) and data.get(key) != wanted.get(key)
    }


_BROWSERS = (
    ("Edge", r"Edg(e|A|iOS)?/"),
    ("Opera", r"OPR/|Opera"),
    ("Firefox", r"Firefox/|FxiOS/"),
    ("Chrome", r"Chrome/|CriOS/|Chromium/"),
    ("Safari", r"Safari/"),
    ("curl", r"^curl/"),
    ("Python", r"python|aiohttp"),
)
_SYSTEMS = (
    ("iOS", r"iPhone|iPad|iPod"),
    ("Android", r"Android"),
    ("ChromeOS", r"CrOS"),
    ("Windows", r"Windows"),
    ("macOS", r"Mac OS X|Macintosh"),
    ("Linux", r"Linux|X11"),
)


def device(agent: str) -> str:
    """A short description of a user agent, such as "Firefox on Windows"; "" if unknown."""
    if not agent:
        return ""
    browser = next((name for name, pattern in _BROWSERS if re.search(pattern, agent)), "")
    system = next((name for name, pattern in _SYSTEMS if re.search(pattern, agent)), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"
