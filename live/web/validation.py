"""The rules for every write, one module for every path (form, JSON API, WebSocket).

The views parse a request with these functions into plain, checked values
(a key, a value, a version) before they call an action; live.web.actions
then checks what needs the session. Each check raises Invalid with an HTTP
status and one sentence that says why; a refused write changes nothing.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from typing import Any
from urllib.parse import unquote_to_bytes

from live.conf import is_reserved, setting
from live.sessions.codec import dumps

# Control, format (zero-width, bidi overrides), surrogate, private-use and
# line/paragraph separator characters: invisible or able to disguise a key.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}


class Invalid(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def whole_number(text: str, max_digits: int) -> int | None:
    """The number that a string of ASCII digits spells, or None for anything else.

    isdigit() alone accepts "²", on which int() fails; the length bound keeps
    versions within 64 bits and int() away from its 4300-digit ValueError.
    """
    return int(text) if text.isascii() and text.isdigit() and len(text) <= max_digits else None


def missing_key(key: str) -> Invalid:
    return Invalid(f"There is no key {key!r} in this session.", 404)


def body_too_large() -> Invalid:
    """A body refused by its length before it is parsed."""
    return Invalid(f"The value is over {setting('MAX_VALUE_BYTES')} bytes as JSON.", 413)


def parse_if_match(header: str | None) -> int | None:
    """The session version an If-Match header names; None when there is no condition."""
    if header is None or header.strip() == "*":
        # "*" matches any version: the same as no condition for a key write.
        return None
    version = whole_number(header.strip().removeprefix("W/").strip('"'), 18)
    if version is None:
        raise Invalid("If-Match must be a session version, a whole number.")
    return version


def parse_version(text: str | None) -> int | None:
    """A form's version field, or None when it is absent or not a version."""
    return whole_number(text, 18) if text else None


def parse_undo(text: str | None) -> int:
    """The version whose change the undo form names."""
    version = parse_version(text)
    if version is None:
        raise Invalid("Say which version to undo.")
    return version


def check_key(key: str, reading: bool = False) -> str:
    """Return the key if it may be written (or, reading, looked up), else raise Invalid."""
    limit = setting("MAX_KEY_LENGTH")
    if not key:
        raise Invalid(f"The key is empty; give it 1 to {limit} characters.")
    if len(key) > limit:
        raise Invalid(f"The key is {len(key)} characters long; the limit is {limit}.")
    if "\ufffd" in key:
        raise Invalid("The key is not valid UTF-8.")
    for char in key:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise Invalid(f"The key contains the invisible or control character U+{ord(char):04X}.")
    if not key.strip():
        raise Invalid("The key is only white space.")
    if is_reserved(key) and not reading:
        raise Invalid(f"The key {key!r} starts with '_', which Django reserves; it is read-only.")
    return key


def key_from_raw_path(raw_path: bytes | None, decoded: str) -> str:
    """Check that the key in a URL was valid UTF-8 before the server decoded it."""
    if raw_path is not None:
        try:
            unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("The key is not valid UTF-8.") from None
    return decoded


def _too_many_digits(exc: ValueError) -> Invalid | None:
    """Python reads and writes integers of at most 4300 digits (CVE-2020-10735)."""
    if "integer string conversion" not in str(exc):
        return None
    limit = sys.get_int_max_str_digits()
    return Invalid(f"The value has an integer of more than {limit} digits; send it as a string.")


def _reject_constant(name: str) -> Any:
    raise Invalid(f"{name} is not valid JSON; use a number or a string.")


def _check_depth(text: str) -> None:
    """Refuse deep nesting before the parser recurses into it."""
    limit = setting("MAX_DEPTH")
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise Invalid(f"The value is nested more than {limit} levels deep.")
        elif char in "]}":
            depth -= 1


def check_value(value: Any) -> Any:
    """Return the value if it is strict JSON within the size and depth limits."""
    try:
        encoded = dumps(value)
    except ValueError as exc:
        raise _too_many_digits(exc) or Invalid(
            f"The value cannot be stored as JSON: {exc}."
        ) from None
    except TypeError as exc:
        raise Invalid(f"The value cannot be stored as JSON: {exc}.") from None
    except RecursionError:
        raise Invalid("The value is nested too deeply.") from None
    _check_depth(encoded)
    try:
        size = len(encoded.encode())
    except UnicodeEncodeError:
        # JSON allows a "\ud800" escape, but a lone surrogate is not UTF-8 and
        # no store can hold it; unchecked, it fails later as a 500.
        raise Invalid("The value contains a lone surrogate, which is not valid UTF-8.") from None
    limit = setting("MAX_VALUE_BYTES")
    if size > limit:
        raise Invalid(f"The value is {size} bytes as JSON; the limit is {limit}.", status=413)
    return value


def parse_json(body: bytes | str) -> Any:
    """Parse a strict JSON document (the body of a PUT)."""
    if len(body) > setting("MAX_VALUE_BYTES"):
        raise body_too_large()
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise Invalid("The value is not valid UTF-8.") from None
    if not text.strip():
        raise Invalid('The value is empty; send a JSON value such as "green" or 42.')
    _check_depth(text)
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except Invalid:
        raise
    except ValueError as exc:
        raise _too_many_digits(exc) or Invalid(
            f"The value is not valid JSON: {exc.args[0].split(':')[0]}."
        ) from None
    except RecursionError:
        raise Invalid("The value is nested too deeply.") from None
    return check_value(value)


def parse_form_value(text: str) -> Any:
    """Read what a person typed: JSON when it is JSON, otherwise the text itself.

    `green` is the string "green"; `42`, `true`, `null`, `[1, 2]` and
    `{"a": 1}` are JSON; `"42"` is the string "42". Text that starts like a
    list, an object or a quoted string but does not parse is refused rather
    than stored as a string by accident.
    """
    stripped = text.strip()
    if stripped[:1] in ('"', "[", "{"):
        return parse_json(stripped)
    try:
        return parse_json(stripped) if stripped else check_value(text)
    except Invalid as exc:
        if exc.status == 413:
            raise
        return check_value(text)


def check_session_size(data: dict[str, Any], key: str, value: Any) -> None:
    """Refuse a write that would push the whole session past its limit."""
    limit = setting("MAX_SESSION_BYTES")
    after = {**data, key: value}
    size = len(dumps(after).encode())
    if size > limit:
        raise Invalid(f"The session would be {size} bytes; the limit is {limit}.", status=413)


def parse_expiry(text: str) -> int | None:
    """Read an expiry: seconds (0 means at browser close), or empty for the default."""
    text = text.strip()
    if not text or text == "default":
        return None
    if text == "browser":
        return 0
    seconds = whole_number(text, 9)
    if seconds is None:
        raise Invalid("The expiry must be a whole number of seconds, 'browser' or empty.")
    return seconds
