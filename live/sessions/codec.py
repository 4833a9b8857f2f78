"""Session data as JSON text: the strict encoding every engine stores, and its reading."""

from __future__ import annotations

import json
from typing import Any

# Django's JSONSerializer in its compact form, strictly (no NaN or Infinity),
# built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    """Encode like Django's JSONSerializer, strictly: NaN and Infinity raise ValueError.

    A value JSON cannot hold raises TypeError with the json module's message.
    """
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    """Parse stored JSON text."""
    return json.loads(text)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def scalars_only(data: dict[str, Any]) -> bool:
    """Whether every key is a str and every value a JSON scalar: then a shallow copy is a copy."""
    return all(type(k) is str and type(v) in _SCALARS for k, v in data.items())
