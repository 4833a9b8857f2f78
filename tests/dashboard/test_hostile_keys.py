"""Hostile keys through every write path: the JSON API's PUT and DELETE, and the form.

A refused key must answer 400 with one sentence and leave the stored session
byte for byte as it was; an accepted key must be stored exactly as sent; no
case may answer 5xx. The tally prints when the module ends (pytest -s shows it).
"""

from __future__ import annotations

import html
import json
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import (
    EXAMPLES,
    XSS,
    Cases,
    delete_later,
    encoded_key_path,
    form_later,
    put_later,
    request_later,
    visitor,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hostile_tally")]

FORM = "application/x-www-form-urlencoded"

# Each is refused by every write path with 400, and nothing is stored under any name.
BAD_KEYS: dict[str, str] = {
    "empty": "",
    "129 chars": "k" * 129,
    "129 emoji": "🎨" * 129,
    "NUL": "\x00",
    "NUL inside": "a\x00b",
    "SOH": "\x01",
    "bell": "a\x07",
    "backspace": "a\x08b",
    "tab": "tab\t",
    "newline": "a\nb",
    "vertical tab": "\x0b",
    "form feed": "\x0c",
    "carriage return": "a\r",
    "CRLF header split": "a\r\nSet-Cookie: x=1",
    "escape": "\x1b[31mred",
    "unit separator": "\x1f",
    "DEL": "a\x7f",
    "C1 NEL": "\x85",
    "C1 CSI": "\x9b31m",
    "lone high surrogate": "\ud800",
    "lone low surrogate": "a\udfffb",
    "surrogates as a pair of halves": "\udbff\udc00",
    "RTL override": "\u202egnp.exe",
    "LTR override": "a\u202d",
    "RTL isolate": "\u2067a",
    "zero-width space": "a\u200bb",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner emoji": "👩\u200d👩\u200d👧",
    "word joiner": "a\u2060",
    "BOM": "\ufeffkey",
    "soft hyphen": "ad\u00admin",
    "arabic letter mark": "\u061c",
    "language tag": "a\U000e0001",
    "interlinear annotation": "\ufff9a",
    "line separator": "a\u2028b",
    "paragraph separator": "\u2029",
    "private use": "\ue000",
    "private use plane 15": "\U000f0000",
    "replacement character": "a\ufffd",
    "one space": " ",
    "only spaces": "    ",
    "ideographic space": "\u3000",
    "no-break spaces": "\u00a0\u00a0",
    "em spaces": " \u2003 ",
    "underscore": "_",
    "leading underscore": "_x",
    "double underscore": "__proto__",
    "django expiry": "_session_expiry",
    "django auth id": "_auth_user_id",
    "django auth hash": "_auth_user_hash",
    "underscore with markup": "_<img src=x onerror=alert(1)>",
}

# Percent-encodings of bytes that are not UTF-8: the key arrived malformed.
BAD_PATHS: dict[str, str] = {
    "0xFF": "%FF",
    "truncated sequence": "%C3%28",
    "lone continuation byte": "%80",
    "encoded surrogate": "%ED%A0%80",
    "above U+10FFFF": "%F4%90%80%80",
    "overlong slash": "%C0%AF",
    "overlong 3-byte": "%E0%80%AF",
    "mixed": "ok%E2%28%A1",
}

# Each must be stored under exactly this key, and read back the same.
GOOD_KEYS: dict[str, str] = {
    "emoji": "🎨",
    "emoji with skin tone": "👍🏽",
    "emoji with variation selector": "❤️",
    "flag": "🇫🇷",
    "japanese": "好きな色",
    "korean": "한국어",
    "arabic": "مرحبا",
    "hebrew": "עברית",
    "combining accent": "e\u0301",
    "precomposed accent": "é",
    "sharp s": "straße",
    "dotted capital I": "İstanbul",
    "128 ascii": "k" * 128,
    "128 emoji": "🎨" * 128,
    "128 CJK": "色" * 128,
    "inner space": "two words",
    "padded": " padded ",
    "slash": "a/b",
    "dot": ".",
    "dot dot": "..",
    "query and fragment": "?q=1#frag",
    "literal percent escape": "%41",
    "percent": "100%",
    "plus": "a+b",
    "ampersand": "a&b=c",
    "backslash": "a\\b",
    "quotes": "\"'",
    "null": "null",
    "digits": "0",
    "trailing underscore": "key_",
    "inner underscore": "a_b",
    "noncharacter": "\uffff",
    "json": '{"a": 1}',
}


def key_allowed(key: str) -> bool:
    """The design's key rules, restated independently of dashboard.validation."""
    forbidden = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}
    return (
        0 < len(key) <= 128
        and bool(key.strip())
        and not key.startswith("_")
        and "\ufffd" not in key
        and all(unicodedata.category(char) not in forbidden for char in key)
    )


def test_catalogue_keys_agree_with_the_design_rules():
    assert not any(key_allowed(key) for key in BAD_KEYS.values())
    assert all(key_allowed(key) for key in [*GOOD_KEYS.values(), *XSS.values()])


async def test_bad_keys_refused_by_api_put_and_delete():
    cases = Cases(await visitor())
    for name, key in BAD_KEYS.items():
        await cases.refused(f"PUT {name}", put_later(cases.client, key, "1"), 400)
        await cases.refused(f"DELETE {name}", delete_later(cases.client, key), 400)
    for name, raw in BAD_PATHS.items():
        for method in ("put", "delete"):
            path = "/api/session/keys/" + raw
            send = request_later(cases.client, method, path, b"1", "application/json", False)
            reason = await cases.refused(f"{method} {name}", send, 400)
            if reason is not None and "UTF-8" not in reason:
                cases.problems.append(f"{method} {name}: reason {reason!r} does not say UTF-8")
    cases.check()


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
async def test_bad_keys_refused_by_form(htmx: bool):
    cases = Cases(await visitor())
    for name, key in BAD_KEYS.items():
        await cases.refused(f"form {name}", form_later(cases.client, key, "1", htmx), 400)
        send = form_later(cases.client, key, "", htmx, path="/keys/delete/")
        await cases.refused(f"form delete {name}", send, 400)
    # Raw bytes that are not UTF-8 arrive in the form as U+FFFD: refused, not stored.
    for name, raw in BAD_PATHS.items():
        body = f"key={raw}&value=1"
        send = request_later(cases.client, "post", "/keys/", body, FORM, htmx)
        await cases.refused(f"form bytes {name}", send, 400)
    cases.check()


async def test_good_keys_round_trip_through_api_and_form():
    cases = Cases(await visitor())
    for name, key in GOOD_KEYS.items():
        value = {"key": key, "path": "api"}
        await cases.accepted(
            f"PUT {name}", put_later(cases.client, key, json.dumps(value)), key, value
        )
        response = await cases.client.get(encoded_key_path(key))
        if response.json() != {"key": key, "value": value, "version": response.json()["version"]}:
            cases.problems.append(f"GET {name}: {response.json()!r}")
    for htmx in (False, True):
        for name, key in GOOD_KEYS.items():
            typed = f"typed {key}"
            await cases.accepted(
                f"form {name}", form_later(cases.client, key, typed, htmx), key, typed
            )
    # The page names each row by exactly its key.
    body = (await cases.client.get("/")).content.decode()
    shown = {html.unescape(k) for k in re.findall(r'data-session-key="([^"]*)"', body)}
    assert shown == {"before", *GOOD_KEYS.values()}
    for name, key in GOOD_KEYS.items():
        await cases.accepted(f"DELETE {name}", delete_later(cases.client, key), "before", "kept")
        if key in json.loads((await cases.stored())[0]):
            cases.problems.append(f"DELETE {name}: still stored")
    cases.check()


# --- generated cases --------------------------------------------------------------

_key_chars = st.one_of(
    st.characters(codec="utf-8"),
    st.characters(categories=["Cc", "Cf", "Co", "Zs", "Zl", "Zp"]),
    st.characters(categories=["Cs"]),
    st.sampled_from("_ <>\"'&{}%/?#🎨好"),
)
_keys = st.one_of(
    st.text(_key_chars, max_size=12),
    st.text(st.sampled_from("ab🎨_ "), min_size=126, max_size=130),
)


@EXAMPLES
@given(key=_keys)
async def test_generated_keys_stored_exactly_or_refused(key: str):
    cases = Cases(await visitor())
    value = {"key": key.encode("utf-8", "surrogatepass").hex()}
    if key_allowed(key):
        await cases.accepted(
            f"PUT {key!r}", put_later(cases.client, key, json.dumps(value)), key, value
        )
        await cases.accepted(f"DELETE {key!r}", delete_later(cases.client, key), "before", "kept")
        await cases.accepted(f"form {key!r}", form_later(cases.client, key, "x", True), key, "x")
    else:
        await cases.refused(f"PUT {key!r}", put_later(cases.client, key, json.dumps(value)), 400)
        await cases.refused(f"DELETE {key!r}", delete_later(cases.client, key), 400)
        await cases.refused(f"form {key!r}", form_later(cases.client, key, "x", True), 400)
    cases.check()
