"""The shared types: `same` compares as JSON does."""

from __future__ import annotations

from live.types import same


def test_same_tells_json_types_apart():
    assert same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not same(1, True)
    assert not same([1], [1.0])
    assert not same({"a": 1}, {"a": 1, "b": 2})
