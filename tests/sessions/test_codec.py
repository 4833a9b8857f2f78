"""The stored JSON: the codec gives the json module's answer for every value."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live.sessions import codec
from live.types import same

# What the json module does, as Django's JSONSerializer and this project use it.
STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # any size, also past 64 bits
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_dumps_and_loads_give_back_exactly_what_the_json_module_does(value: Any) -> None:
    text = codec.dumps(value)
    # The same JSON as the json module's (floats may be spelled otherwise).
    assert same(json.loads(text), json.loads(STRICT.encode(value)))
    # Read back exactly: 1 stays an int, 1.0 a float, every digit of a long int kept.
    assert same(codec.loads(text), value)
    assert same(codec.loads(STRICT.encode(value)), value)


@pytest.mark.parametrize("number", [2**63, 2**64, -(2**63) - 1, 10**30, -(10**40)])
def test_integers_beyond_64_bits_are_kept_to_the_last_digit(number: int) -> None:
    text = codec.dumps({"n": number, "list": [number]})
    assert text == STRICT.encode({"n": number, "list": [number]})
    back = codec.loads(text)
    assert back == {"n": number, "list": [number]} and type(back["n"]) is int


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        uuid.UUID(int=1),
        Colour.RED,
        datetime.datetime(2026, 1, 1),
        datetime.date(2026, 1, 1),
        Point(1),
        {1, 2},
        b"bytes",
        object(),
    ],
    ids=["uuid", "enum", "datetime", "date", "dataclass", "set", "bytes", "object"],
)
@pytest.mark.parametrize("where", ["alone", "in a dict", "in a list", "nested"])
def test_what_the_json_module_refuses_is_refused_with_its_message(value: Any, where: str) -> None:
    wrapped = {
        "alone": value,
        "in a dict": {"a": 1, "b": value},
        "in a list": [1, value],
        "nested": {"a": [{"b": value}]},
    }[where]
    with pytest.raises(TypeError) as expected:
        STRICT.encode(wrapped)
    with pytest.raises(TypeError) as refused:
        codec.dumps(wrapped)
    assert str(refused.value) == str(expected.value)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_not_stored_as_null(number: float) -> None:
    for wrapped in (number, {"a": number}, [1.5, number], {"a": [{"b": number}]}):
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            codec.dumps(wrapped)


class Level(enum.IntEnum):
    HIGH = 3


class Label(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        {"t": (1, [2, (3,)])},
        {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
        {"level": Level.HIGH},
        {"label": Label("x")},
        {Label("key"): 1},
        {"subclass": {"of": Level.HIGH}},
    ],
    ids=[
        "tuple",
        "nested tuples",
        "keys not str",
        "int enum",
        "str subclass",
        "key subclass",
        "deep",
    ],
)
def test_values_outside_json_types_are_encoded_as_the_json_module_does(value: Any) -> None:
    assert codec.dumps(value) == STRICT.encode(value)


@pytest.mark.parametrize("key", [1, 2.5, True, None, Label("key"), "ключ"])
def test_key_versions_under_any_session_key_encode_as_the_json_module_does(key: Any) -> None:
    versions = {"a": 1, key: 2}
    assert codec.dumps(versions) == STRICT.encode(versions)


def test_a_lone_surrogate_is_encoded_and_read_as_the_json_module_does() -> None:
    assert codec.dumps({"a": "\ud800"}) == STRICT.encode({"a": "\ud800"})
    assert codec.loads('{"a":"\\ud800"}') == {"a": "\ud800"}


def test_text_with_a_long_digit_run_in_a_string_reads_back_exactly() -> None:
    value = {"phone": "12345678901234567890123", "n": 1, "x": 0.1234567890123456789}
    assert same(codec.loads(codec.dumps(value)), json.loads(STRICT.encode(value)))
