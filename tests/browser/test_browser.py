"""The dashboard in a real browser, driven like a person: type, click, switch tabs, watch.

Every test gets its own daphne (with its own SQLite file) and a fresh browser
context, that is a fresh cookie jar, so a context is one visitor and its pages
are that visitor's tabs. Nothing here sleeps: each check waits for what a
person would see, with a timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import (
    BrowserContext,
    expect,
)

from tests.conftest import Server
from tests.helpers import WAIT_MS, BrowserTab, demo_users, shown
from tests.proxy import Proxy

pytestmark = pytest.mark.browser

# Stamps the time of every click (capture phase, so before htmx sees it) and
# of the moment a watched key's row appears, on the browser's one clock.
TIMING_SCRIPT = """
window.__clickedAt = null;
window.__arrivedAt = {};
window.__watch = [];
document.addEventListener("click", () => {
  window.__clickedAt = performance.timeOrigin + performance.now();
}, true);
new MutationObserver(() => {
  for (const key of window.__watch) {
    if (!(key in window.__arrivedAt)
        && document.querySelector(`[data-session-key="${CSS.escape(key)}"]`)) {
      window.__arrivedAt[key] = performance.timeOrigin + performance.now();
    }
  }
}).observe(document, {subtree: true, childList: true});
"""


def assert_no_reload(*tabs: BrowserTab) -> None:
    for n, tab in enumerate(tabs):
        assert tab.same_document(), f"tab {n} was reloaded or navigated (now at {tab.page.url})"


@pytest.fixture
def new_context(
    new_context: Callable[[], BrowserContext],
) -> Callable[[], BrowserContext]:
    """Contexts whose pages stamp clicks and arrivals on the browser's clock."""

    def make() -> BrowserContext:
        context = new_context()
        context.add_init_script(TIMING_SCRIPT)
        return context

    return make


@pytest.fixture
def context(new_context: Callable[[], BrowserContext]) -> BrowserContext:
    return new_context()


@pytest.fixture
def open_tab(live_server: Server) -> Iterator[Callable[[BrowserContext], BrowserTab]]:
    """Open dashboard tabs; after the test, check that none raised or popped a dialog."""
    opened: list[BrowserTab] = []

    def open_in(context: BrowserContext) -> BrowserTab:
        tab = BrowserTab(context.new_page(), live_server)
        opened.append(tab)
        return tab

    yield open_in
    for tab in opened:
        assert tab.errors == [], tab.errors
        assert tab.dialogs == [], tab.dialogs


def visit_color(context: BrowserContext, server: Server) -> None:
    """Open /color/, a plain view that knows nothing of the dashboard, in another tab."""
    page = context.new_page()
    page.goto(server.url + "/color/")
    expect(page.locator("body")).to_have_text("Your favorite color is green.")
    page.close()


def test_add_in_one_tab_shows_in_the_other_without_reload(
    context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a, b = open_tab(context), open_tab(context)
    latencies, walls = [], []
    for n in range(10):
        key = f"fruit_{n}"
        b.page.evaluate("key => window.__watch.push(key)", key)
        a.page.bring_to_front()
        a.field("key").fill(key)
        a.field("value").fill(f"apple {n}")
        with a.answering():
            started = time.perf_counter()
            a.page.locator("#editor").get_by_role("button", name="Save").click()
            expect(b.row(key)).to_be_attached(timeout=WAIT_MS)
            walls.append((time.perf_counter() - started) * 1000)
        expect(b.value(key)).to_have_text(shown(f"apple {n}"))
        clicked = a.page.evaluate("window.__clickedAt")
        arrived = b.page.evaluate("key => window.__arrivedAt[key]", key)
        latencies.append(arrived - clicked)
        expect(a.value(key)).to_have_text(shown(f"apple {n}"))
    assert_no_reload(a, b)
    expect(b.rows).to_have_count(10)
    print(
        "\npush latency, click in tab A to row in tab B, over 10 saves: "
        f"p50 {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms, "
        f"min {min(latencies):.1f} ms "
        f"(wall clock around playwright: p50 {statistics.median(walls):.0f} ms)"
    )


def test_color_view_in_a_third_tab_updates_both_dashboards(
    live_server: Server, context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a, b = open_tab(context), open_tab(context)
    visit_color(context, live_server)
    for tab in (a, b):
        expect(tab.value("favorite_color")).to_have_text(shown("green"), timeout=WAIT_MS)
        expect(tab.row("favorite_color").locator("td").first).to_have_text("string")
        assert_no_reload(tab)


def test_second_context_is_another_session(
    live_server: Server,
    new_context: Callable[[], BrowserContext],
    open_tab: Callable[[BrowserContext], BrowserTab],
) -> None:
    first, second = new_context(), new_context()
    a, b = open_tab(first), open_tab(first)
    a.add("mine", "first visitor")
    visit_color(first, live_server)
    expect(b.value("favorite_color")).to_have_text(shown("green"), timeout=WAIT_MS)

    other, other_b = open_tab(second), open_tab(second)
    expect(other.rows).to_have_count(0)
    expect(other.tabs).to_have_text("2", timeout=WAIT_MS)
    expect(a.tabs).to_have_text("2", timeout=WAIT_MS)
    session = {c["name"]: c["value"] for c in first.cookies()}["sessionid"]
    assert session != {c["name"]: c["value"] for c in second.cookies()}["sessionid"]

    other.add("theirs", "second visitor")
    expect(other_b.value("theirs")).to_have_text(shown("second visitor"), timeout=WAIT_MS)
    # One process, one in-memory layer: pushes are delivered in order, so once
    # a later change of the first visitor shows, a leaked one would have too.
    a.add("later", "1")
    expect(b.row("later")).to_be_attached(timeout=WAIT_MS)
    for tab in (a, b):
        expect(tab.row("theirs")).to_have_count(0)
    for tab in (other, other_b):
        expect(tab.rows).to_have_count(1)
        expect(tab.row("mine")).to_have_count(0)
        expect(tab.row("favorite_color")).to_have_count(0)


@pytest.mark.parametrize("payload", ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>"])
def test_markup_in_a_value_or_key_shows_as_text_and_runs_nothing(
    payload: str, context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a, b = open_tab(context), open_tab(context)
    a.add("html", payload)
    a.add(payload, "key with markup")
    for tab in (a, b):
        expect(tab.value("html")).to_have_text(shown(payload), timeout=WAIT_MS)
        expect(tab.row(payload).locator("th")).to_have_text(payload, timeout=WAIT_MS)
        expect(tab.value(payload)).to_have_text(shown("key with markup"))
        expect(tab.page.locator("#live img, #live script")).to_have_count(0)
        assert_no_reload(tab)
    expect(a.page.locator("#editor [data-call]")).to_contain_text(payload)
    # The full page, rendered by the HTTP view rather than pushed, escapes too.
    b.page.reload()
    expect(b.value("html")).to_have_text(shown(payload))
    expect(b.page.locator("#live img, #live script")).to_have_count(0)
    # Dialogs and errors are checked by the open_tab fixture after the test.


def test_tab_count_follows_tabs_opening_and_closing(
    context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a = open_tab(context)
    expect(a.tabs).to_have_text("1", timeout=WAIT_MS)
    b = open_tab(context)
    expect(a.tabs).to_have_text("2", timeout=WAIT_MS)
    expect(b.tabs).to_have_text("2", timeout=WAIT_MS)
    c = open_tab(context)
    for tab in (a, b, c):
        expect(tab.tabs).to_have_text("3", timeout=WAIT_MS)
    # Each tab names itself; the list shows the three names the timeline uses.
    expect(a.page.locator(".tab-labels code")).to_have_count(3, timeout=WAIT_MS)
    c.page.close()
    b.page.close()
    expect(a.tabs).to_have_text("1", timeout=WAIT_MS)
    assert_no_reload(a)


def test_tab_reconnects_after_server_restart_and_shows_current_state(
    live_server: Server, context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a = open_tab(context)
    a.add("before", "restart")
    live_server.kill()
    expect(a.status).to_have_attribute("data-state", "closed", timeout=WAIT_MS)
    live_server.start()
    started = time.perf_counter()
    visit_color(context, live_server)
    expect(a.value("favorite_color")).to_have_text(shown("green"), timeout=WAIT_MS)
    expect(a.status).to_have_attribute("data-state", "open")
    expect(a.status).to_have_text("live")
    print(
        f"\nrestart: the change showed {(time.perf_counter() - started) * 1000:.0f} ms "
        "after the new server listened"
    )
    expect(a.value("before")).to_have_text(shown("restart"))
    assert_no_reload(a)
    # The socket is a working one again, not just a late snapshot.
    b = open_tab(context)
    b.add("after", "restart")
    expect(a.value("after")).to_have_text(shown("restart"), timeout=WAIT_MS)
    expect(a.tabs).to_have_text("2", timeout=WAIT_MS)


def test_edit_and_delete_from_the_row(
    context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a, b = open_tab(context), open_tab(context)
    a.add("cart", '["apple", "pear"]')
    a.add("color", "blue")
    expect(b.value("cart")).to_have_text(shown(["apple", "pear"]), timeout=WAIT_MS)

    b.answer(b.row("cart").get_by_role("link", name="Edit"))
    expect(b.field("key")).to_have_value("cart")
    expect(b.field("value")).to_have_value('["apple", "pear"]')
    b.answer(b.row("color").get_by_role("link", name="Edit"))
    expect(b.field("key")).to_have_value("color")
    expect(b.field("value")).to_have_value("blue")
    b.field("value").fill("red")
    b.answer(b.page.locator("#editor").get_by_role("button", name="Save"))
    for tab in (a, b):
        expect(tab.value("color")).to_have_text(shown("red"), timeout=WAIT_MS)

    a.answer(a.row("cart").get_by_role("button", name="Delete cart", exact=True))
    for tab in (a, b):
        expect(tab.row("cart")).to_have_count(0, timeout=WAIT_MS)
        expect(tab.rows).to_have_count(1)
        assert_no_reload(tab)


def test_clear_my_keys_empties_every_tab(
    context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a, b = open_tab(context), open_tab(context)
    a.add("one", "1")
    a.add("two", "2")
    expect(b.rows).to_have_count(2, timeout=WAIT_MS)
    b.press("Clear my keys")
    for tab in (a, b):
        expect(tab.rows).to_have_count(0, timeout=WAIT_MS)
        expect(tab.page.locator("#session-keys .empty")).to_be_visible()
    a.add("three", "3")
    expect(b.value("three")).to_have_text(shown(3), timeout=WAIT_MS)


def test_flush_empties_every_tab_and_the_next_session_is_followed_by_all(
    context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a, b = open_tab(context), open_tab(context)
    a.add("one", "1")
    a.add("two", "2")
    expect(b.rows).to_have_count(2, timeout=WAIT_MS)
    a.press("Flush")
    for tab in (a, b):
        expect(tab.rows).to_have_count(0, timeout=WAIT_MS)
        expect(tab.page.locator("#session-keys .empty")).to_be_visible()
    expect(b.page.locator("[data-session-ended]")).to_have_attribute(
        "data-session-ended", "final", timeout=WAIT_MS
    )
    # Django's flush: the cookie is gone, nothing is stored.
    assert "sessionid" not in {c["name"] for c in context.cookies()}

    a.add("after", "flush")
    expect(b.value("after")).to_have_text(shown("flush"), timeout=WAIT_MS)
    b.add("back", "from b")
    expect(a.value("back")).to_have_text(shown("from b"), timeout=WAIT_MS)
    expect(a.tabs).to_have_text("2", timeout=WAIT_MS)
    assert_no_reload(a, b)


def test_cycle_key_keeps_data_and_pushes(
    context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a, b = open_tab(context), open_tab(context)
    a.add("kept", "yes")
    expect(b.row("kept")).to_be_attached(timeout=WAIT_MS)
    cookie = {c["name"]: c["value"] for c in context.cookies()}["sessionid"]
    b.press("Cycle key")
    expect(b.page.locator("#editor [data-call]")).to_contain_text("acycle_key()")
    assert {c["name"]: c["value"] for c in context.cookies()}["sessionid"] != cookie
    for tab in (a, b):
        expect(tab.value("kept")).to_have_text(shown("yes"))

    a.add("after", "cycle")
    expect(b.value("after")).to_have_text(shown("cycle"), timeout=WAIT_MS)
    b.add("back", "from b")
    expect(a.value("back")).to_have_text(shown("from b"), timeout=WAIT_MS)
    expect(a.tabs).to_have_text("2", timeout=WAIT_MS)
    assert_no_reload(a, b)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("_reserved", "x", "which Django reserves"),
        ("   ", "x", "only white space"),
        ("list", "[1, 2", "not valid JSON"),
    ],
)
def test_refused_write_says_why_and_changes_nothing(
    key: str,
    value: str,
    reason: str,
    context: BrowserContext,
    open_tab: Callable[[BrowserContext], BrowserTab],
) -> None:
    a, b = open_tab(context), open_tab(context)
    a.add("kept", "yes")
    expect(b.row("kept")).to_be_attached(timeout=WAIT_MS)
    before = a.version()

    a.add(key, value)
    expect(a.error).to_contain_text(reason)
    # Only the editor changed: the page around it, and its socket, are still there.
    expect(a.status).to_have_attribute("data-state", "open")
    expect(a.page.locator("#session-keys")).to_be_attached()
    message = a.error.inner_text().strip()
    # One sentence: a capital, one full stop, at the end.
    assert message[0].isupper() and message.endswith("."), message
    assert ". " not in message, message
    expect(a.error).to_have_attribute("role", "alert")
    # What was typed stays, to be corrected rather than retyped.
    expect(a.field("key")).to_have_value(key)
    expect(a.field("value")).to_have_value(value)
    assert a.version() == before
    expect(a.rows).to_have_count(1)
    expect(a.page.locator("[data-reserved-key='_reserved']")).to_have_count(0)

    # The next change is the next version in the other tab: nothing came between.
    a.add("next", "1")
    expect(b.row("next")).to_be_attached(timeout=WAIT_MS)
    assert b.version() == before + 1
    expect(b.rows).to_have_count(2)
    assert_no_reload(a, b)


def test_login_and_logout_in_one_tab_keep_every_tab_working(
    context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab], live_server: Server
) -> None:
    demo_users(live_server)
    a, b = open_tab(context), open_tab(context)
    a.add("before", "login")
    expect(b.rows).to_have_count(1, timeout=WAIT_MS)
    a.sign_in("demo")
    # B reconnects with the cookie the login set: the same keys, signed in.
    expect(b.page.locator("#account")).to_contain_text("Signed in", timeout=WAIT_MS)
    expect(b.row("before")).to_be_attached(timeout=WAIT_MS)
    # The login rotated the CSRF token; B's next write carries the new one.
    b.add("after", "login")
    expect(b.error).to_have_count(0)
    expect(a.value("after")).to_have_text(shown("login"), timeout=WAIT_MS)
    b.press("Log out")
    expect(a.rows).to_have_count(0, timeout=WAIT_MS)
    expect(a.page.locator("#account")).not_to_contain_text("Signed in", timeout=WAIT_MS)
    # A write in A starts the browser's next session, and B follows it too.
    a.add("next", "session")
    expect(b.value("next")).to_have_text(shown("session"), timeout=WAIT_MS)
    assert_no_reload(a, b)


class SlowAnswers(Proxy):
    """A proxy in front of a server that holds, while asked to, what the browser would hear.

    A browser sets a cookie when the answer reaches it, so an answer is held
    here, on its way, rather than in the browser. While holding, the answer to
    a login and what every socket opened meanwhile hears after its handshake
    wait, each in order, until let through.
    """

    def __init__(self, port: int) -> None:
        super().__init__("127.0.0.1", port)
        self.holding = False
        self.held: dict[str, list[tuple[asyncio.StreamWriter, bytes]]] = {"login": [], "socket": []}

    def _forward(
        self, line: dict[str, Any], chunk: bytes, writer: asyncio.StreamWriter, to_service: bool
    ) -> None:
        if to_service:
            if self.holding and "kind" not in line:
                if chunk.startswith(b"POST /login/submit/"):
                    line["kind"] = "login"
                elif chunk.startswith(b"GET /ws/") and b"again=" in chunk.split(b"\r\n", 1)[0]:
                    line["kind"] = "socket"
            writer.write(chunk)
            return
        kind = line.get("kind")
        if kind == "socket" and not line.get("open"):
            # The handshake goes through, so the page's socket opens.
            head, _, chunk = chunk.partition(b"\r\n\r\n")
            writer.write(head + b"\r\n\r\n")
            line["open"] = True
        held = self.held[kind] if kind else None
        if held is not None and (self.holding or held):
            held.append((writer, chunk))
        else:
            writer.write(chunk)

    def hold(self) -> None:
        self.holding = True

    def let_through(self, kind: str) -> None:
        """Deliver what is held of one kind, in order; from now on nothing is held."""

        async def deliver() -> None:
            self.holding = False
            for writer, chunk in self.held[kind]:
                writer.write(chunk)
            self.held[kind].clear()

        self._run(deliver())


def test_a_login_answered_after_its_push_ends_signed_in(
    context: BrowserContext, live_server: Server
) -> None:
    """The login's push (the key moved) reaches the tab before its answer sets the cookie.

    A socket opened before the answer came in would carry the retired key, and
    its "no session", heard after the answer, would be the tab's last word.
    """
    demo_users(live_server)
    proxy = SlowAnswers(live_server.port)
    proxy.start()
    try:
        tab = BrowserTab(context.new_page(), dataclasses.replace(live_server, port=proxy.port))
        page = tab.page
        tab.add("before", "login")
        proxy.hold()
        account = page.locator("#account")
        account.locator("input[name=username]").fill("demo")
        account.locator("input[name=password]").fill("demo")
        account.get_by_role("button", name="Log in").click()
        # The push closed the socket: the tab waits for its answer, or has opened a new socket.
        reconnected = "#live[ws-connect*='again='] #live-status[data-state='open']"
        waiting = "#live-status[data-state='waiting']"
        expect(page.locator(f"{reconnected}, {waiting}")).to_be_attached(timeout=WAIT_MS)
        proxy.let_through("login")
        expect(account).to_contain_text("Signed in", timeout=WAIT_MS)
        proxy.let_through("socket")
        expect(tab.status).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        expect(account).to_contain_text("Signed in")
        expect(tab.row("before")).to_be_attached()
        assert_no_reload(tab)
        assert tab.errors == []
    finally:
        proxy.stop()


def test_long_keys_and_values_wrap_inside_the_page(
    context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a, b = open_tab(context), open_tab(context)
    key, value = "k" * 128, "v" * 20_000
    a.add(key, value)
    expect(b.row(key)).to_be_attached(timeout=WAIT_MS)
    for tab in (a, b):
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        viewport = tab.page.evaluate("window.innerWidth")
        assert width <= viewport, (width, viewport)


def test_a_write_after_the_session_expired_starts_a_session_every_tab_follows(
    context: BrowserContext, open_tab: Callable[[BrowserContext], BrowserTab]
) -> None:
    a, b = open_tab(context), open_tab(context)
    a.add("old", "1")
    a.page.locator("input[name=expiry]").fill("2")
    a.answer(a.page.get_by_role("button", name="Set expiry"))
    for tab in (a, b):
        expect(tab.page.locator("[data-session-ended]")).to_be_visible(timeout=WAIT_MS)
        expect(tab.rows).to_have_count(0, timeout=WAIT_MS)
    b.add("new", "2")
    for tab in (a, b):
        expect(tab.value("new")).to_have_text(shown(2), timeout=WAIT_MS)
        expect(tab.status).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        # The ended notice goes once a live session is shown again.
        expect(tab.page.locator("[data-session-ended]")).to_have_count(0, timeout=WAIT_MS)
    assert_no_reload(a, b)
