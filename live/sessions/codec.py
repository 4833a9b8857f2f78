"""Session data as JSON text: the strict encoding every engine stores, and its reading.

Every save encodes the session, its key versions and its timeline entry, and
every row read from the database is parsed. The json module spends about
2,500 machine instructions per value on that (about a quarter of a save's own
work, counted with callgrind); orjson does the same about eight times cheaper. The two
differ at the edges, so orjson is used only where both give the same answer:

- encoding: values of JSON's own types, exactly (orjson would store an enum,
  a UUID, a dataclass or a datetime as something else, where the json module
  refuses them), no NaN or infinity (orjson would store null) and no integer
  beyond 64 bits (orjson refuses those);
- decoding: text with no run of 19 digits, so that every integer in it fits
  in 64 bits (orjson reads larger ones as floats, losing digits).

The rest goes through the json module, as before: what is stored, read back
or refused is always the json module's answer.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

# Django's JSONSerializer, strictly (no NaN or Infinity), built once: json.dumps
# with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

# JSON's types, exactly: a subclass (a SafeString, an IntEnum) is not what the
# stored text gives back.
_SCALARS = frozenset({str, int, float, bool, type(None)})
_NESTED = frozenset({dict, list, float})
_JSON = _SCALARS | {dict, list}
_STR = frozenset({str})
# 2**63 has 19 digits; any shorter integer fits in 64 bits.
_LONG_NUMBER = re.compile(r"[0-9]{19}")


def dumps(value: Any) -> str:
    """Encode like Django's JSONSerializer, strictly: NaN and Infinity raise ValueError."""
    return dumps_plain(value) if plain(value) else _ENCODER.encode(value)


def dumps_plain(value: Any) -> str:
    """dumps() of a value known to pass plain(): parsed from JSON, or checked already."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        # A key that is not a str, an integer beyond 64 bits, a lone surrogate:
        # the json module's answer, whether text or error.
        return _ENCODER.encode(value)


def loads(text: str) -> Any:
    """Parse stored JSON text exactly as json.loads would."""
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # deeper than orjson goes, or an escaped lone surrogate
    return json.loads(text)


def flat(data: dict[str, Any]) -> bool:
    """Whether every key is a str and every value a JSON scalar, of exactly those types."""
    return _STR.issuperset(map(type, data)) and _SCALARS.issuperset(map(type, data.values()))


def plain(value: Any) -> bool:
    """Whether value holds JSON's own types only, of exactly those types, and finite floats."""
    kind = type(value)
    if kind is dict:
        if not _STR.issuperset(map(type, value)):
            return False
        items = value.values()
    elif kind is list:
        items = value
    elif kind is float:
        return math.isfinite(value)
    else:
        return kind in _SCALARS
    kinds = set(map(type, items))
    if not _JSON.issuperset(kinds):
        return False
    # Strings, integers, booleans and None need no further look; the rest does.
    return kinds.isdisjoint(_NESTED) or all(map(plain, [v for v in items if type(v) in _NESTED]))
