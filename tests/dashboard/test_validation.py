"""The write rules of dashboard.validation, one by one (docs/design.md, section 6)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from live.conf import is_reserved
from live.web.validation import (
    Invalid,
    check_key,
    check_session_size,
    check_value,
    key_from_raw_path,
    parse_expiry,
    parse_form_value,
    parse_json,
)


def refused(call: Any, *args: Any) -> Invalid:
    """Run a check that must refuse, and return its Invalid for the status and reason."""
    with pytest.raises(Invalid) as info:
        call(*args)
    message = info.value.message
    # One sentence that says why.
    assert message and message.endswith(".") and ". " not in message
    return info.value


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# --- keys ---------------------------------------------------------------------


def test_check_key_empty_refused():
    assert refused(check_key, "").status == 400


def test_check_key_one_character_accepted():
    assert check_key("a") == "a"


def test_check_key_128_characters_accepted():
    assert check_key("k" * 128) == "k" * 128


def test_check_key_129_characters_refused():
    error = refused(check_key, "k" * 129)
    assert error.status == 400
    assert "128" in error.message


@pytest.mark.parametrize(
    "key",
    [
        "a\x00b",  # NUL
        "a\nb",  # newline
        "a\x1b[31mb",  # escape
        "a\tb",  # tab
        "a\u202eb",  # right-to-left override
        "a\u200bb",  # zero-width space
        "a\ud800b",  # lone surrogate
    ],
    ids=["nul", "newline", "escape", "tab", "rtl-override", "zero-width", "lone-surrogate"],
)
def test_check_key_control_and_invisible_characters_refused(key: str):
    error = refused(check_key, key)
    assert error.status == 400
    assert "U+" in error.message


def test_check_key_only_spaces_refused():
    error = refused(check_key, "   ")
    assert "white space" in error.message


def test_check_key_leading_underscore_reserved():
    error = refused(check_key, "_auth_user_id")
    assert error.status == 400
    assert "reserve" in error.message
    assert is_reserved("_x")
    assert not is_reserved("x_")


@pytest.mark.parametrize("key", ["🎨", "好きな色", "couleur préférée", "a b"])
def test_check_key_emoji_and_cjk_accepted_unchanged(key: str):
    assert check_key(key) == key


def test_check_key_replacement_character_refused():
    assert refused(check_key, "a\ufffdb").status == 400


def test_key_from_raw_path_invalid_utf8_refused():
    # What daphne gives for /api/session/keys/%FF: a replacement character in
    # the decoded path, the original bytes in raw_path.
    error = refused(key_from_raw_path, b"/api/session/keys/%FF", "\ufffd")
    assert "UTF-8" in error.message


def test_key_from_raw_path_valid_utf8_kept():
    raw = b"/api/session/keys/%F0%9F%8E%A8"
    assert key_from_raw_path(raw, "🎨") == "🎨"
    assert key_from_raw_path(None, "plain") == "plain"


def test_check_key_limit_is_a_setting():
    with override_settings(LIVE_SESSIONS={"MAX_KEY_LENGTH": 4}):
        assert check_key("abcd") == "abcd"
        assert "4" in refused(check_key, "abcde").message


# --- values -------------------------------------------------------------------


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "[1, NaN]", '{"a": Infinity}'])
def test_parse_json_non_finite_constants_refused(text: str):
    assert refused(parse_json, text).status == 400


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), [1, float("nan")]])
def test_check_value_non_finite_floats_refused(value: Any):
    assert refused(check_value, value).status == 400


def test_check_value_depth_32_accepted():
    value = nested(32)
    assert check_value(value) is value
    assert parse_json(json.dumps(value)) == value


def test_check_value_depth_33_refused():
    assert "32" in refused(check_value, nested(33)).message
    assert refused(parse_json, json.dumps(nested(33))).status == 400


def test_check_value_depth_counts_objects_too():
    value: Any = 1
    for _ in range(33):
        value = {"a": value}
    assert refused(check_value, value).status == 400


def test_check_value_brackets_inside_strings_do_not_count_as_depth():
    value = "[" * 100 + "{" * 100
    assert check_value(value) == value
    assert parse_json(json.dumps(value)) == value


def test_check_value_100000_levels_refused_without_recursion_error():
    # Refused as Invalid, never a RecursionError escaping to a 500.
    assert refused(check_value, nested(100_000)).status == 400


def test_parse_json_100000_levels_refused_without_recursion_error():
    text = "[" * 100_000 + "]" * 100_000
    # Over the size limit first...
    assert refused(parse_json, text).status == 413
    # ...and, with the size limit raised, refused by depth before parsing.
    with override_settings(LIVE_SESSIONS={"MAX_VALUE_BYTES": 1_000_000}):
        assert "nested" in refused(parse_json, text).message


def test_check_value_64_kib_exact_boundary_accepted():
    value = "x" * (64 * 1024 - 2)  # plus two quotes: exactly 65536 bytes
    assert len(json.dumps(value)) == 64 * 1024
    assert check_value(value) == value
    assert parse_json(json.dumps(value)) == value


def test_check_value_one_byte_over_64_kib_refused_413():
    value = "x" * (64 * 1024 - 1)
    assert refused(check_value, value).status == 413
    assert refused(parse_json, json.dumps(value)).status == 413


def test_check_value_size_counts_utf8_bytes():
    value = "é" * (32 * 1024)  # 32768 characters, 65536 bytes, plus quotes
    assert refused(check_value, value).status == 413


@pytest.mark.parametrize(
    "value",
    [{1, 2}, object(), b"bytes", 1 + 2j],
    ids=["set", "object", "bytes", "complex"],
)
def test_check_value_non_json_python_objects_refused(value: Any):
    error = refused(check_value, value)
    assert error.status == 400
    assert "JSON" in error.message


def test_check_value_circular_reference_refused():
    value: list[Any] = []
    value.append(value)
    assert refused(check_value, value).status == 400


def test_check_value_lone_surrogate_refused():
    # Valid JSON text ("\ud800" is a legal escape) that no UTF-8 store can hold.
    assert refused(parse_json, '"\\ud800"').status == 400
    assert refused(check_value, {"a\udc00": 1}).status == 400


@pytest.mark.parametrize("body", [b"", b"   ", b"{", b"[1, 2", b"'single'", b"\xff\xfe"])
def test_parse_json_broken_documents_refused(body: bytes):
    assert refused(parse_json, body).status == 400


def test_value_limits_are_settings():
    with override_settings(LIVE_SESSIONS={"MAX_VALUE_BYTES": 10, "MAX_DEPTH": 2}):
        assert check_value("12345678") == "12345678"  # 10 bytes with quotes
        assert refused(check_value, "123456789").status == 413
        assert check_value([[1]]) == [[1]]
        assert refused(check_value, [[[1]]]).status == 400


# --- what a person types in the form -----------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("green", "green"),
        ("42", 42),
        ('"42"', "42"),
        ("true", True),
        ("null", None),
        ("[1,2]", [1, 2]),
        ('{"a":1}', {"a": 1}),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("", ""),
        ("two words", "two words"),
    ],
)
def test_parse_form_value_reads_json_or_text(typed: str, stored: Any):
    value = parse_form_value(typed)
    assert value == stored
    assert type(value) is type(stored)


@pytest.mark.parametrize("typed", ["[1,2", '{"a":', '"unclosed'])
def test_parse_form_value_broken_json_refused(typed: str):
    assert refused(parse_form_value, typed).status == 400


def test_parse_form_value_too_large_refused_413():
    with override_settings(LIVE_SESSIONS={"MAX_VALUE_BYTES": 8}):
        assert refused(parse_form_value, "x" * 20).status == 413
        assert refused(parse_form_value, "[" + "1," * 10 + "1]").status == 413


# --- the whole session ----------------------------------------------------------


def test_check_session_size_within_limit_accepted():
    check_session_size({"a": "x" * 1000}, "b", "y" * 1000)


def test_check_session_size_past_1_mib_refused_413():
    data = {f"k{i}": "x" * 60_000 for i in range(17)}  # about 1 MB
    error = refused(check_session_size, data, "one_more", "x" * 60_000)
    assert error.status == 413
    assert str(1024 * 1024) in error.message


def test_check_session_size_counts_replaced_value_once():
    with override_settings(LIVE_SESSIONS={"MAX_SESSION_BYTES": 30}):
        check_session_size({"a": "x" * 15}, "a", "y" * 15)
        assert refused(check_session_size, {"a": "x" * 15}, "b", "y" * 15).status == 413


# --- expiry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "seconds"),
    [("", None), ("  ", None), ("default", None), ("browser", 0), ("0", 0), ("300", 300)],
)
def test_parse_expiry_accepted(typed: str, seconds: int | None):
    assert parse_expiry(typed) == seconds


@pytest.mark.parametrize("typed", ["-5", "1.5", "soon", "1e3", "1234567890", "²", "٣"])
def test_parse_expiry_refused(typed: str):
    assert refused(parse_expiry, typed).status == 400
