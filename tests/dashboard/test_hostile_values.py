"""Hostile values and version numbers through the JSON API and the form.

A refused value must answer 4xx with one sentence and leave the stored session
byte for byte as it was; an accepted one must be stored exactly as sent (or, in
the form, as typed); no case may answer 5xx. The tally prints when the module
ends (pytest -s shows it).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import (
    EXAMPLES,
    HTMX,
    HUGE_INT,
    MISSING,
    TALLY,
    XSS,
    Cases,
    encoded_key_path,
    form_body,
    form_later,
    put_later,
    token,
    visitor,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hostile_tally")]

# (body, status) for PUT /api/session/keys/v: all refused.
BAD_BODIES: dict[str, tuple[str | bytes, int]] = {
    "bare word": ("green", 400),
    "single quotes": ("'green'", 400),
    "unquoted member": ("{a: 1}", 400),
    "trailing comma in list": ("[1, 2,]", 400),
    "trailing comma in object": ('{"a": 1,}', 400),
    "leading zero": ("01", 400),
    "plus sign": ("+1", 400),
    "bare fraction": (".5", 400),
    "bare point": ("1.", 400),
    "hex": ("0x10", 400),
    "underscore digits": ("1_000", 400),
    "unterminated string": ('"green', 400),
    "truncated object": ('{"a": [1, 2', 400),
    "open bracket": ("[", 400),
    "open brace": ("{", 400),
    "lone quote": ('"', 400),
    "close bracket": ("]", 400),
    "colon": (":", 400),
    "NaN": ("NaN", 400),
    "Infinity": ("Infinity", 400),
    "-Infinity": ("-Infinity", 400),
    "NaN in list": ("[1, NaN]", 400),
    "Infinity in object": ('{"a": Infinity}', 400),
    "lowercase nan": ("nan", 400),
    "float overflow": ("1e400", 400),
    "negative float overflow": ("-1e400", 400),
    "float overflow in list": ("[1e999]", 400),
    "undefined": ("undefined", 400),
    "two documents": ("null null", 400),
    "two numbers": ("1 2", 400),
    "escaped lone surrogate": ('"\\ud800"', 400),
    "escaped low surrogate": ('"a\\udfffb"', 400),
    "surrogate in member name": ('{"\\ud800": 1}', 400),
    "surrogate deep inside": ('[[["ok", "\\udc00"]]]', 400),
    "BOM": ("\ufeff1", 400),
    "0xFF byte": (b"\xff", 400),
    "truncated UTF-8": (b'"\xc3"', 400),
    "raw surrogate bytes": (b'"\xed\xa0\x80"', 400),
    "raw NUL in string": ('"a\x00b"', 400),
    "raw newline in string": ('"a\nb"', 400),
    "empty": ("", 400),
    "blank": ("  \n\t ", 400),
    "33 levels": ("[" * 33 + "]" * 33, 400),
    "33 object levels": ('{"a":' * 33 + "1" + "}" * 33, 400),
    "unbalanced deep": ("[" * 40, 400),
    "huge integer": (HUGE_INT, 400),
    "huge negative integer": ("-" + HUGE_INT, 400),
    "huge integer in list": ("[" + HUGE_INT + "]", 400),
    "4301 digits": ("9" * 4301, 400),
    "100000 levels": ("[" * 100_000 + "]" * 100_000, 413),
    "value over 64 KiB": ('"' + "x" * 65_535 + '"', 413),
    "2 MiB body": ('"' + "x" * (2 * 1024 * 1024) + '"', 413),
}

# Valid strict JSON that must be stored exactly.
GOOD_BODIES: dict[str, str] = {
    "escaped NUL": '"a\\u0000b"',
    "escaped surrogate pair": '"\\ud83c\\udfa8"',
    "4300 digits": "9" * 4300,
    "largest float": "1.7976931348623157e308",
    "tiny float": "5e-324",
    "negative zero": "-0.0",
    "32 levels": "[" * 32 + "]" * 32,
    "brackets in a string": '"' + "[" * 100 + '"',
    "empty list": "[]",
    "empty object": "{}",
    "null": "null",
    "false": "false",
    "proto": '{"__proto__": {"admin": true}}',
    "markup": json.dumps(list(XSS.values())),
    "value of 64 KiB": '"' + "x" * 65_534 + '"',
}


async def test_bad_values_refused_by_api():
    cases = Cases(await visitor())
    for name, (body, status) in BAD_BODIES.items():
        reason = await cases.refused(f"PUT {name}", put_later(cases.client, "before", body), status)
        if name.startswith("huge") and reason and "digits" not in reason:
            cases.problems.append(f"{name}: the reason does not say why: {reason!r}")
    cases.check()


async def test_hundred_thousand_levels_refused_by_depth_without_recursion_error():
    # With the size limit out of the way the depth check is what refuses it.
    cases = Cases(await visitor())
    with override_settings(LIVE_SESSIONS={"MAX_VALUE_BYTES": 4 * 1024 * 1024}):
        for name, body in {
            "lists": "[" * 100_000 + "]" * 100_000,
            "objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
            "unclosed": "[" * 100_000,
        }.items():
            reason = await cases.refused(f"deep {name}", put_later(cases.client, "v", body), 400)
            assert reason and "32" in reason
            await cases.refused(
                f"form deep {name}", form_later(cases.client, "v", body, htmx=True), 400
            )
    cases.check()


async def test_good_values_stored_exactly_by_api():
    cases = Cases(await visitor())
    for name, body in GOOD_BODIES.items():
        value = json.loads(body)
        await cases.accepted(f"PUT {name}", put_later(cases.client, "v", body), "v", value)
    cases.check()


# What a person types in the form: refused (status) or stored as this value.
FORM_VALUES: dict[str, tuple[str, int | None, Any]] = {
    "broken list": ("[1, 2", 400, None),
    "broken object": ('{"a":', 400, None),
    "unterminated quote": ('"green', 400, None),
    "NaN in list": ("[NaN]", 400, None),
    "Infinity in object": ('{"a": Infinity}', 400, None),
    "escaped surrogate": ('"\\ud800"', 400, None),
    "surrogate in list": ('["ok", "\\udc00"]', 400, None),
    "33 levels": ("[" * 33 + "]" * 33, 400, None),
    "huge integer in list": ("[" + HUGE_INT + "]", 400, None),
    "100000 levels": ("[" * 100_000 + "]" * 100_000, 413, None),
    "over 64 KiB of text": ("x" * 70_000, 413, None),
    "2 MiB of text": ("x" * (2 * 1024 * 1024), 413, None),
    # Text that is not strict JSON is stored as the text itself, as typed.
    "word": ("green", None, "green"),
    "NaN": ("NaN", None, "NaN"),
    "Infinity": ("Infinity", None, "Infinity"),
    "float overflow": ("1e400", None, "1e400"),
    "huge integer": (HUGE_INT, None, HUGE_INT),
    "padded text": ("  padded  ", None, "  padded  "),
    "number": ("42", None, 42),
    "quoted number": ('"42"', None, "42"),
    "object": ('{"a": [1, null]}', None, {"a": [1, None]}),
    "empty": ("", None, ""),
    "img onerror": (XSS["img onerror"], None, XSS["img onerror"]),
    "close script": (XSS["close script"], None, XSS["close script"]),
    "hx-on": (XSS["hx-on"], None, XSS["hx-on"]),
    "template tag as json string": (json.dumps("{% debug %}"), None, "{% debug %}"),
}


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
async def test_form_values_refused_or_stored_as_typed(htmx: bool):
    cases = Cases(await visitor())
    for name, (typed, status, stored) in FORM_VALUES.items():
        send = form_later(cases.client, "v", typed, htmx)
        if status:
            await cases.refused(f"form {name}", send, status)
        else:
            await cases.accepted(f"form {name}", send, "v", stored)
    cases.check()


async def test_session_pushed_past_its_size_limit_refused_413():
    cases = Cases(await visitor())
    limit, chunk = 1024 * 1024, "x" * 61_500
    for n in range(17):
        send = put_later(cases.client, f"k{n}", json.dumps(chunk))
        await cases.accepted(f"fill {n}", send, f"k{n}", chunk)
    cases.check()
    room = limit - len((await cases.stored())[0].encode())
    assert 0 < room < 65_536 - len(chunk) - 2
    await cases.refused("PUT past 1 MiB", put_later(cases.client, "k17", json.dumps(chunk)), 413)
    await cases.refused("form past 1 MiB", form_later(cases.client, "k17", chunk, htmx=False), 413)
    await cases.refused("htmx past 1 MiB", form_later(cases.client, "k17", chunk, htmx=True), 413)
    # One byte past the limit is refused; exactly the limit is not.
    grown = chunk + "y" * (room + 1)
    await cases.refused("grow past 1 MiB", put_later(cases.client, "k0", json.dumps(grown)), 413)
    await cases.refused("form grow past", form_later(cases.client, "k0", grown, htmx=True), 413)
    grown = chunk + "y" * room
    await cases.accepted(
        "grow to 1 MiB", put_later(cases.client, "k0", json.dumps(grown)), "k0", grown
    )
    assert len((await cases.stored())[0].encode()) == limit
    await cases.accepted("shrink a key", put_later(cases.client, "k0", '"small"'), "k0", "small")
    cases.check()


@pytest.mark.parametrize(
    "header", ["9" * 5000, "9" * 19, "²", "-1", "1e3", "0x10", " ", "1, 2", "W/", '""']
)
async def test_api_if_match_hostile_versions_refused_400(header: str):
    cases = Cases(await visitor())
    await cases.refused(
        f"If-Match {header[:20]!r}",
        lambda: cases.client.put(
            encoded_key_path("before"),
            "1",
            content_type="application/json",
            headers=token(cases.client, **{"If-Match": header}),
        ),
        400,
    )
    cases.check()


@pytest.mark.parametrize("field", ["version", "undo"])
@pytest.mark.parametrize("number", ["9" * 5000, "9" * 19, "١٢"])
async def test_form_hostile_version_numbers_never_500(field: str, number: str):
    cases = Cases(await visitor())
    path = "/undo/" if field == "undo" else "/keys/"
    TALLY.cases += 1
    response = await cases.client.post(
        path,
        form_body(key="before", value="kept", version=number),
        content_type="application/x-www-form-urlencoded",
        headers=token(cases.client, **HTMX),
    )
    if response.status_code >= 500:
        TALLY.server_errors += 1
    assert response.status_code < 500, response.content[:500]


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(st.one_of(st.characters(codec="utf-8"), st.characters(categories=["Cs"])), max_size=8),
)
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


def _storable(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, list):
        return all(map(_storable, value))
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    return True


@EXAMPLES
@given(value=_values, wrap=st.integers(0, 36), ascii_only=st.booleans())
async def test_generated_values_stored_exactly_or_refused(value: Any, wrap: int, ascii_only: bool):
    for _ in range(wrap):
        value = [value]
    body = json.dumps(value, ensure_ascii=ascii_only)
    cases = Cases(await visitor())
    if _storable(value) and _depth(value) <= 32:
        await cases.accepted("PUT", put_later(cases.client, "v", body), "v", value)
    else:
        await cases.refused(f"PUT {body[:80]!r}", put_later(cases.client, "v", body), 400)
    cases.check()


_typed = st.text(st.sampled_from('[]{}",:0123456789.eE-+ aNnIfty\\u'), max_size=16)


def typed_value(text: str) -> Any:
    """What the form stores for typed text: strict JSON as JSON, other text as itself."""
    stripped = text.strip()
    try:
        value = json.loads(stripped, parse_constant=lambda name: float(name))
        if not _storable(value) or _depth(value) > 32:
            raise ValueError
    except (ValueError, RecursionError):
        return MISSING if stripped[:1] in ('"', "[", "{") else text
    return value


@EXAMPLES
@given(text=_typed)
async def test_generated_form_values_stored_as_typed_or_refused(text: str):
    cases = Cases(await visitor())
    expected = typed_value(text)
    if expected is MISSING:
        await cases.refused(f"form {text!r}", form_later(cases.client, "v", text, True), 400)
    else:
        await cases.accepted(
            f"form {text!r}", form_later(cases.client, "v", text, True), "v", expected
        )
    cases.check()
