"""What more than one test module calls: clients, sockets, users, rows, hostile cases, tabs.

Fixtures live in conftest.py; these are plain functions and classes, imported.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_from_bytes, unquote

import aiohttp
from axe_playwright_python.sync_playwright import Axe
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from playwright.sync_api import BrowserContext, ConsoleMessage, Dialog, Locator, Page, expect

from asgi_config.asgi import application
from live.conf import session_store
from live.sessions import connections
from live.sessions import sql as rows
from live.sessions.base import LiveSessionBase
from live.sessions.codec import dumps
from live.sessions.db import SessionStore
from live.sessions.keys import digest
from live.types import Applied, Changes, Snapshot

if TYPE_CHECKING:
    from tests.conftest import Server

COOKIE = settings.SESSION_COOKIE_NAME
HTMX = {"HX-Request": "true"}
ORIGIN = "http://127.0.0.1:8000"


# --- sessions and clients, in process ------------------------------------------------


async def new_session(
    store_class: type[LiveSessionBase] = SessionStore, /, **data: Any
) -> LiveSessionBase:
    """A stored session holding `data`, of the database engine unless another is given."""
    session = store_class()
    for key, value in data.items():
        await session.aset(key, value)
    await session.acreate()
    return session


def client_for(session_key: str) -> AsyncClient:
    """A client that sends this session's cookie (and enforces no CSRF)."""
    client = AsyncClient()
    client.cookies[COOKIE] = session_key
    return client


class DaphneClient(AsyncClient):
    """Decode the path as daphne does (UTF-8, bad bytes replaced) and pass raw_path.

    Django's test client decodes paths as Latin-1, which no ASGI server does,
    so non-ASCII keys would arrive as something else.
    """

    _raw_path = b""

    def _get_path(self, parsed: Any) -> str:
        self._raw_path = parsed.path.encode("ascii")
        return unquote(parsed.path)

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope = super()._base_scope(**request)  # type: ignore[misc]
        scope["raw_path"] = self._raw_path
        return scope


async def csrf_client(cls: type[AsyncClient] = AsyncClient) -> AsyncClient:
    """A client that enforces CSRF and holds the token cookie from a rendered form."""
    client = cls(enforce_csrf_checks=True)
    assert (await client.get("/")).status_code == 200
    assert client.cookies["csrftoken"].value
    return client


def token(client: AsyncClient, **headers: str) -> dict[str, str]:
    return {"X-CSRFToken": client.cookies["csrftoken"].value, **headers}


def key_of(client: AsyncClient) -> str:
    """The session key in the client's cookie."""
    return client.cookies[COOKIE].value


def key_path(key: str) -> str:
    """The API path of a key, as given: percent-encode it first where it needs to be."""
    return f"/api/session/keys/{key}"


async def put(client: AsyncClient, key: str, value: Any, **headers: str) -> Any:
    """PUT a value through the API with the client's CSRF token; the response."""
    return await client.put(
        key_path(key),
        json.dumps(value),
        content_type="application/json",
        headers=token(client, **headers),
    )


async def state(client: AsyncClient) -> dict[str, Any]:
    """The session as GET /api/session shows it, minus the expiry a read recomputes."""
    response = await client.get("/api/session")
    assert response.status_code == 200
    body = response.json()
    body["meta"].pop("expires_at")
    return body


async def make_user(username: str = "demo", *, staff: bool = False) -> None:
    """A user whose password is its name."""
    await get_user_model().objects.acreate_user(username, password=username, is_staff=staff)


async def logged_in_client(username: str) -> AsyncClient:
    """A client logged in as a user made by make_user."""
    client = AsyncClient()
    assert await client.alogin(username=username, password=username)
    return client


# --- sockets, in process ---------------------------------------------------------------


def communicator(
    session_key: str | None,
    json_mode: bool = True,
    origin: str | None = ORIGIN,
    path: str = "/ws/session/",
) -> WebsocketCommunicator:
    """A socket to the project, with the session's cookie and an Origin (None: no header)."""
    headers = [(b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if session_key:
        headers.append((b"cookie", f"{COOKIE}={session_key}".encode()))
    return WebsocketCommunicator(
        application,
        path,
        headers=headers,
        subprotocols=["session.json"] if json_mode else None,
    )


async def receive(comm: WebsocketCommunicator) -> dict[str, Any]:
    """The socket's next session.json message, awaited for at most three seconds."""
    return json.loads(await comm.receive_from(timeout=3))


async def closed_with(comm: WebsocketCommunicator, code: int) -> None:
    """The socket's next message is its close, with this code."""
    assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": code}


# --- rows of the SQL store, straight against the database -----------------------------


def row_expiry(_value: object) -> float:
    return (datetime.now(UTC) + timedelta(hours=1)).timestamp()


def create_row(**data: object) -> str:
    """Insert one session row holding `data`; its digest."""
    connections.call(rows.insert, "d" * 64, "abcd…wxyz", dict(data), row_expiry)
    return "d" * 64


def merge_row(row_digest: str, **changes: object) -> tuple[Snapshot, Applied]:
    """Merge Changes(**changes) into the row, as a request's save does."""
    return connections.call(rows.merge, row_digest, Changes(**changes), row_expiry)  # type: ignore[arg-type]


# --- real servers over aiohttp -----------------------------------------------------------


async def open_page(http: aiohttp.ClientSession, server: Server) -> dict[str, str]:
    """Load the page once: the session cookie, and the CSRF header for writes."""
    async with http.get(server.url + "/") as response:
        assert response.status == 200
    csrf = next(c.value for c in http.cookie_jar if c.key == "csrftoken")
    assert any(c.key == COOKIE and c.value for c in http.cookie_jar)
    return {"X-CSRFToken": csrf}


# --- hostile input: cases sent through every write path, and how they are judged -------

# Deterministic and quick: the same examples on every run, no example database.
EXAMPLES = hypothesis_settings(
    derandomize=True,
    database=None,
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

MISSING = object()


@dataclass
class Tally:
    """What a module's hostile cases did; conftest's hostile_tally prints it (pytest -s)."""

    cases: int = 0
    server_errors: int = 0
    refused_but_changed: int = 0

    def reset(self) -> None:
        self.cases = self.server_errors = self.refused_but_changed = 0


TALLY = Tally()

XSS: dict[str, str] = {
    "img onerror": "<img src=x onerror=alert(1)>",
    "close script": "</script><script>alert(1)</script>",
    "attribute break hx-get": '" hx-get="/x',
    "single-quote break": "' hx-get='/x",
    "hx-on": "hx-on:click=alert(1)",
    "attribute break hx-on": '" hx-on:click="alert(1)',
    "template variable": "{{x}}",
    "template tag": "{% debug %}",
    "svg onload": "<svg/onload=alert(1)>",
    "javascript url": "javascript:alert(1)",
    "pre-escaped": "&lt;b&gt;",
    "comment": "<!--",
    "oob swap": '<div id="session-keys" hx-swap-oob="true">pwned</div>',
}

HUGE_INT = "1" + "0" * 5000

# Socket messages that get no answer, change nothing, and leave the socket working.
IGNORED_MESSAGES: dict[str, str | bytes] = {
    "not json": "not json",
    "empty": "",
    "blank": "   ",
    "open brace": "{",
    "null": "null",
    "number": "0",
    "string resync": '"resync"',
    "list resync": '["resync"]',
    "padded type": '{"type": "resync "}',
    "upper case": '{"type": "RESYNC"}',
    "null type": '{"type": null}',
    "list type": '{"type": ["resync"]}',
    "object type": '{"type": {"$eq": "resync"}}',
    "no type": "{}",
    "fake change": json.dumps(
        {
            "type": "session.changed",
            "version": 10**6,
            "changes": [{"op": "set", "key": "pwned", "value": 1}],
            "source": "x",
            "expire_date": "2100-01-01T00:00:00+00:00",
        }
    ),
    "fake rotation": json.dumps({"type": "session.rotated", "next": "0" * 64}),
    "fake end": json.dumps({"type": "session.ended", "next": None}),
    "fake presence": json.dumps({"type": "session.presence", "tabs": -1}),
    "fake disconnect": json.dumps({"type": "websocket.disconnect", "code": 1000}),
    "write attempt": json.dumps({"type": "set", "key": "pwned", "value": 1}),
    "op attempt": json.dumps({"op": "set", "key": "pwned", "value": 1}),
    "NaN": '{"type": NaN}',
    "NUL": "\x00",
    "lone surrogate": "\ud800",
    "2000 levels": "[" * 2000 + "]" * 2000,
    "600 object levels": '{"a":' * 600 + "1" + "}" * 600,
    "unclosed 4000 levels": "[" * 4000,
    "binary": b"\x00\xff\xfe",
    "binary resync": b'{"type": "resync"}',
}

# Each closes the socket as too big (4009; daphne allows no 1009 from the app) and changes nothing.
HUGE_MESSAGES: dict[str, str | bytes] = {
    "4097 chars": "x" * 4097,
    "padded resync": json.dumps({"type": "resync", "pad": "x" * 5000}),
    "100000 levels": "[" * 100_000,
    "binary": b"\x00" * 5000,
    "emoji over 4096 bytes": "🎨" * 1100,
}


def encoded_key_path(key: str) -> str:
    """The URL of a key, percent-encoded as a browser would (lone surrogates as raw bytes)."""
    return key_path(quote_from_bytes(key.encode("utf-8", "surrogatepass"), safe=""))


def form_body(**fields: str) -> str:
    return "&".join(
        f"{name}={quote_from_bytes(value.encode('utf-8', 'surrogatepass'), safe='')}"
        for name, value in fields.items()
    )


async def visitor() -> AsyncClient:
    """A browser-like client with a stored session, a CSRF cookie and one key."""
    client = DaphneClient(enforce_csrf_checks=True, raise_request_exception=False)
    assert (await client.get("/")).status_code == 200
    response = await client.put(
        encoded_key_path("before"),
        '"kept"',
        content_type="application/json",
        headers=token(client),
    )
    assert response.status_code == 200
    return client


Send = Callable[[], Awaitable[Any]]


def request_later(
    client: AsyncClient, method: str, path: str, body: str | bytes, content_type: str, htmx: bool
) -> Send:
    """A request to make later, once the state before it has been read."""
    call = getattr(client, method)
    headers = token(client, **HTMX) if htmx else token(client)
    return lambda: call(path, body, content_type, headers=headers)


def put_later(client: AsyncClient, key: str, body: str | bytes) -> Send:
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    return request_later(client, "put", encoded_key_path(key), body, "application/json", False)


def delete_later(client: AsyncClient, key: str) -> Send:
    return request_later(client, "delete", encoded_key_path(key), "", "application/json", False)


def form_later(client: AsyncClient, key: str, value: str, htmx: bool, path: str = "/keys/") -> Send:
    body = form_body(key=key, value=value)
    return request_later(client, "post", path, body, "application/x-www-form-urlencoded", htmx)


def reason_of(response: Any) -> str | None:
    """The refusal's sentence: {"error"} for the API, the data-error element for forms."""
    if response.get("Content-Type", "").startswith("application/json"):
        message = response.json().get("error")
        return message if isinstance(message, str) else None
    found = re.search(r"<p [^>]*data-error[^>]*>(.*?)</p>", response.content.decode(), re.S)
    return html.unescape(found.group(1)) if found else None


def one_sentence(message: str) -> bool:
    # Quoted keys may hold anything, so only the words around them count.
    words = re.sub(r"'[^']*'|\"[^\"]*\"", "''", message)
    return message.endswith(".") and ". " not in words and "\n" not in words


class Cases:
    """Run cases against one visitor's session and collect every problem, not just the first."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.problems: list[str] = []

    async def stored(self) -> tuple[str, int]:
        """The stored row as bytes and version: what a refused write must not change."""
        snapshot = await session_store().aread(digest(self.client.cookies[COOKIE].value))
        assert snapshot is not None
        return dumps(snapshot.data), snapshot.version

    async def _send(self, name: str, send: Send) -> Any:
        TALLY.cases += 1
        response = await send()
        if response.status_code >= 500:
            TALLY.server_errors += 1
            self.problems.append(f"{name}: {response.status_code} {response.content[:300]!r}")
            return None
        return response

    async def refused(self, name: str, send: Send, status: int | None = None) -> str | None:
        before = await self.stored()
        cookie = self.client.cookies[COOKIE].value
        response = await self._send(name, send)
        after = await self.stored() if self.client.cookies[COOKIE].value == cookie else None
        if after != before:
            TALLY.refused_but_changed += 1
            self.problems.append(f"{name}: refused, yet the session changed")
        if response is None:
            return None
        reason = reason_of(response)
        if status in (400, 404) and response.asgi_request.headers.get("HX-Request"):
            status = 422  # htmx's "refused, here is why", which it swaps in
        if not 400 <= response.status_code < 500 or (status and response.status_code != status):
            self.problems.append(f"{name}: expected {status or '4xx'}, got {response.status_code}")
        elif reason is None or not one_sentence(reason):
            self.problems.append(f"{name}: {response.status_code} without one sentence: {reason!r}")
        if COOKIE in response.cookies:
            self.problems.append(f"{name}: a refused write set a session cookie")
        return reason

    async def accepted(self, name: str, send: Send, key: str, value: Any) -> None:
        response = await self._send(name, send)
        if response is None:
            return
        if response.status_code not in (200, 302) or reason_of(response):
            self.problems.append(f"{name}: refused {response.status_code}: {reason_of(response)!r}")
            return
        data = json.loads((await self.stored())[0])
        if key not in data or dumps(data[key]) != dumps(value):
            self.problems.append(f"{name}: stored {data.get(key, MISSING)!r}, sent {value!r}")

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


# --- the dashboard in a browser (playwright) ---------------------------------------------

# How long a push may take to show before a check fails. Pushes take tens of
# milliseconds; the margin is for slow, shared CI machines.
WAIT_MS = 5_000


def shown(value: Any) -> str:
    """The text the page shows for a stored value (pretty JSON, as the table renders it)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class BrowserTab:
    """One dashboard tab, with what a person can see in it and do to it."""

    def __init__(self, page: Page, server: Server) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.open(server)

    def open(self, server: Server) -> None:
        self.page.goto(server.url + "/")
        expect(self.status).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        # A full load wipes this marker: it proves later updates came without one.
        self.page.evaluate("window.__sameDocument = true")

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    # --- what a person sees -------------------------------------------------------

    @property
    def status(self) -> Locator:
        return self.page.locator("#live-status")

    @property
    def rows(self) -> Locator:
        return self.page.locator("#session-keys [data-session-key]")

    @property
    def tabs(self) -> Locator:
        return self.page.locator("[data-live-tabs]")

    @property
    def error(self) -> Locator:
        return self.page.locator("#editor [data-error]")

    def row(self, key: str) -> Locator:
        return self.page.locator(f"#session-keys [data-session-key={css_string(key)}]")

    def value(self, key: str) -> Locator:
        return self.row(key).locator("[data-session-value]")

    def version(self) -> int:
        return int(self.page.locator("#session-meta").get_attribute("data-session-version") or 0)

    def field(self, name: str) -> Locator:
        return self.page.locator(f"#editor input[name={name}]")

    def same_document(self) -> bool:
        return bool(self.page.evaluate("window.__sameDocument === true"))

    # --- what a person does -------------------------------------------------------

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Wait, after the block, for the answer that replaces the editor."""
        # A person looks at the tab they click in; Chromium also throttles
        # the animation frames of background pages, which slows clicks there.
        self.page.bring_to_front()
        self.page.evaluate("document.getElementById('editor').dataset.stale = 'yes'")
        yield
        expect(self.page.locator("#editor:not([data-stale])")).to_be_attached(timeout=WAIT_MS)

    def answer(self, control: Locator) -> None:
        """Click a control whose answer replaces the editor, and wait for that answer."""
        with self.answering():
            control.click()

    def add(self, key: str, value: str) -> None:
        self.page.bring_to_front()
        self.field("key").fill(key)
        self.field("value").fill(value)
        self.answer(self.page.locator("#editor").get_by_role("button", name="Save"))

    def press(self, button: str) -> None:
        self.answer(self.page.get_by_role("button", name=button, exact=True))

    def sign_in(self, username: str) -> None:
        """Sign in through the account box as a demo user (the password is the name)."""
        account = self.page.locator("#account")
        account.locator("input[name=username]").fill(username)
        account.locator("input[name=password]").fill(username)
        self.answer(account.get_by_role("button", name="Log in"))
        expect(account).to_contain_text(f"Signed in as {username}", timeout=WAIT_MS)


def demo_users(server: Server) -> None:
    """The accounts demo/demo and staff/staff, in the server's database."""
    root = Path(__file__).resolve().parent.parent
    demo_user = [sys.executable, "manage.py", "demo_user"]
    subprocess.run(demo_user, cwd=root, env=server.env, check=True, capture_output=True)


# --- what a page says in its console, and what axe finds -------------------------------

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


class ConsoleErrors:
    """Every console error (CSP violations and htmx's errors among them) and uncaught exception.

    Chromium also logs each answer of status 400 or more as an error ("Failed
    to load resource"); `refusals` names the statuses that the contract
    answers on purpose in what the test does (422 for a refused form, 409 for
    a conflict, 403 for the staff pages' refusal), which are not counted.
    """

    def __init__(self, refusals: tuple[int, ...] = ()) -> None:
        self.seen: list[str] = []
        self.refusals = refusals

    def watch(self, page: Page) -> Page:
        def on_console(message: ConsoleMessage) -> None:
            if message.type != "error":
                return
            status = re.match(
                r"Failed to load resource: the server responded with a status of (\d+)",
                message.text,
            )
            if status and int(status.group(1)) in self.refusals:
                return
            self.seen.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.seen.append(f"{page.url}: uncaught {exc}"))
        return page


def dashboard(context: BrowserContext, server: Server, console: ConsoleErrors) -> BrowserTab:
    """A new tab of this browser context on the dashboard, its console watched."""
    return BrowserTab(console.watch(context.new_page()), server)


def accessibility_violations(page: Page) -> list[str]:
    """What axe-core's WCAG 2.0 and 2.1 A and AA rules find on the page as it is now."""
    options = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]}
    results = Axe().run(page, options=options)
    return [
        f"{page.url}: {violation['id']}: {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:5])
        for violation in results.response["violations"]
    ]
