"""Markup typed into keys and values is text wherever it is shown: page, pushes, editor, errors."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import quote_from_bytes

import pytest
from django.utils.html import escape

from tests.helpers import COOKIE, HTMX, XSS, communicator, form_later, put_later, visitor

pytestmark = pytest.mark.django_db(transaction=True)


class Markup(HTMLParser):
    """The elements and attributes of a document, to find any that the data created."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_inert(document: str, nonce: str | None = None) -> None:
    """No element or attribute in the document came from the stored markup."""
    parser = Markup()
    parser.feed(document)
    for tag, attrs in parser.tags:
        assert tag not in {"img", "svg", "iframe"}, (tag, attrs)
        if tag == "script":
            assert attrs.get("src") and nonce and attrs.get("nonce") == nonce, attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, attrs)
            assert not name.startswith("hx-on"), (tag, attrs)
            if name == "hx-get":
                assert (value or "").startswith("/?edit="), (tag, attrs)
    ids = [attrs["id"] for _, attrs in parser.tags if attrs.get("id")]
    assert len(ids) == len(set(ids)), ids
    for raw in XSS.values():
        if any(char in raw for char in "<>\"'&"):
            assert raw not in document, raw
        assert escape(raw) in document, raw


async def test_markup_in_keys_and_values_shown_as_text_on_page_and_in_pushes():
    client = await visitor()
    session_key = client.cookies[COOKIE].value
    socket = communicator(session_key, json_mode=False)
    connected, _ = await socket.connect()
    assert connected
    await socket.receive_from(timeout=3)  # the snapshot
    pushed: list[str] = []
    for n, raw in enumerate(XSS.values()):
        response = await put_later(client, raw, json.dumps(raw))()
        assert response.status_code == 200, response.content
        # Typed as a JSON string, so that the form stores it as text whatever it starts with.
        response = await form_later(client, f"form {n} {raw}", json.dumps(raw), htmx=True)()
        assert response.status_code == 200, response.content
        assert "pwned</div>" not in response.content.decode()
        while len(pushed) < 2 * (n + 1):
            fragment = await socket.receive_from(timeout=3)
            if 'id="session-keys"' in fragment:
                pushed.append(fragment)
    await socket.disconnect()
    last = pushed[-1]
    assert_inert(last)
    for raw in XSS.values():
        assert f'data-session-key="{escape(raw)}"' in last
    page = await client.get("/")
    nonce = re.search(r"'nonce-([^']+)'", page["Content-Security-Policy"])
    assert nonce
    assert_inert(page.content.decode(), nonce.group(1))
    for raw in XSS.values():
        edit = await client.get("/?edit=" + quote_from_bytes(raw.encode(), safe=""), headers=HTMX)
        body = edit.content.decode()
        assert f'<input name="key" value="{escape(raw)}"' in body
        parser = Markup()
        parser.feed(body)
        for tag, attrs in parser.tags:
            assert not any(name.startswith(("on", "hx-on")) for name in attrs), (tag, attrs)
    # A refused key shows its markup as text in the error too.
    refused = await form_later(client, "_" + XSS["img onerror"], "1", htmx=True)()
    assert refused.status_code == 422
    assert escape(XSS["img onerror"]) in refused.content.decode()
    assert XSS["img onerror"] not in refused.content.decode()
