"""A tour of every page and every control, as a person trying the site would take it.

Two tabs of one visitor follow each other through writes, a login, a logout,
a flush, a cycle and each expiry; the pitfalls are tried in several orders;
the staff pages are visited as nobody, as demo and as staff; the metrics page
stays open throughout. The tour ends with no console error, no uncaught
exception and no axe finding on any page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.conftest import Server
from tests.helpers import (
    WAIT_MS,
    BrowserTab,
    ConsoleErrors,
    accessibility_violations,
    dashboard,
    demo_users,
    shown,
)

pytestmark = pytest.mark.browser

START, APPEND, APPEND_MODIFIED = "Start a cart list", "Append in place", "Append with"
NOT_JSON, DEFAULT = "Store a datetime", "aget(key, default)"
# "Append before start" opens each order: the cart is cleared before it.
PITFALL_ORDERS = [
    [APPEND, START, APPEND, APPEND_MODIFIED, NOT_JSON, DEFAULT],
    [DEFAULT, NOT_JSON, APPEND_MODIFIED, START, APPEND_MODIFIED, APPEND],
    [NOT_JSON, APPEND, DEFAULT, START, APPEND, APPEND_MODIFIED],
]
OUTCOMES = {
    START: 'cart is ["apple"]',
    APPEND_MODIFIED: "Saved: the table shows the new item",
    NOT_JSON: "TypeError",
    DEFAULT: 'aget() returned "fallback"',
}


@pytest.fixture
def console() -> ConsoleErrors:
    # The tour provokes refusals on purpose: pitfalls out of order, conflicts, staff pages.
    return ConsoleErrors(refusals=(403, 409, 422))


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    made: list[BrowserContext] = []
    yield made
    for context in made:
        context.close()


def visitor(browser: Browser, contexts: list[BrowserContext]) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    contexts.append(context)
    return context


def page_at(context: BrowserContext, url: str, console: ConsoleErrors) -> Page:
    page = console.watch(context.new_page())
    page.goto(url)
    return page


def pitfall(tab: BrowserTab, button: str) -> Locator:
    """Click a pitfall's button and wait for its result."""
    page = tab.page
    page.bring_to_front()
    page.evaluate("document.getElementById('pitfall-result').dataset.stale = 'yes'")
    page.locator("#pitfalls").get_by_role("button", name=button).click()
    expect(page.locator("#pitfall-result:not([data-stale])")).to_be_attached(timeout=WAIT_MS)
    return page.locator("#pitfall-result [data-pitfall-outcome]")


def write_and_follow(writer: BrowserTab, reader: BrowserTab, key: str, value: str) -> None:
    # Each step writes a key of its own: the writer's form may predate the
    # other tab's last write, and a key changed since would be a conflict.
    writer.add(key, value)
    expect(reader.value(key)).to_have_text(shown(value), timeout=WAIT_MS)


def try_pitfalls(a: BrowserTab, b: BrowserTab) -> None:
    for order in PITFALL_ORDERS:
        a.press("Clear my keys")
        expect(b.rows).to_have_count(0, timeout=WAIT_MS)
        cart = None
        for button in order:
            outcome = pitfall(a, button)
            if button == START:
                cart = ["apple"]
            elif button in (APPEND, APPEND_MODIFIED) and cart is None:
                expect(outcome).to_have_text("Start the cart first: there is no list at 'cart'.")
                continue
            elif button == APPEND_MODIFIED:
                assert cart is not None
                cart = [*cart, "pear"]
            elif button == APPEND:
                expect(outcome).to_contain_text("Not saved")
            if button in OUTCOMES:
                expect(outcome).to_contain_text(OUTCOMES[button])
            if cart is not None:
                # The other tab shows what was saved, and only that.
                expect(b.value("cart")).to_have_text(shown(cart), timeout=WAIT_MS)
        expect(b.row("when")).to_have_count(0)
        expect(b.row("no_such_key")).to_have_count(0)


def test_tour_of_every_page_ends_without_errors(
    browser: Browser, contexts: list[BrowserContext], live_server: Server, console: ConsoleErrors
) -> None:
    demo_users(live_server)
    url = live_server.url
    found: list[str] = []
    visitor_context = visitor(browser, contexts)
    metrics = page_at(visitor_context, url + "/metrics/", console)
    expect(metrics.locator("#live-status")).to_have_attribute("data-state", "open")
    a = dashboard(visitor_context, live_server, console)
    b = dashboard(visitor_context, live_server, console)
    found += accessibility_violations(a.page)

    # Writes, and every control of a row and of the timeline.
    write_and_follow(a, b, "fruit", "apple")
    write_and_follow(b, a, "colour", "green")
    a.answer(a.row("fruit").get_by_role("link", name="Edit"))
    expect(a.field("key")).to_have_value("fruit")
    a.field("value").fill("pear")
    a.answer(a.page.locator("#editor").get_by_role("button", name="Save"))
    expect(b.value("fruit")).to_have_text(shown("pear"), timeout=WAIT_MS)
    b.answer(b.page.locator("#session-history").get_by_role("button", name="Undo").first)
    expect(a.value("fruit")).to_have_text(shown("apple"), timeout=WAIT_MS)
    a.answer(a.row("colour").get_by_role("button", name="Delete colour"))
    expect(b.row("colour")).to_have_count(0, timeout=WAIT_MS)
    # A stale form meets a newer value: keep mine, then take theirs.
    a.add("fruit", "from A")
    b.add("fruit", "from B")
    conflict = b.page.locator("#editor [data-conflict]")
    expect(conflict).to_be_visible()
    found += accessibility_violations(b.page)
    b.answer(conflict.get_by_role("button", name="Keep mine"))
    expect(a.value("fruit")).to_have_text(shown("from B"), timeout=WAIT_MS)
    # A's form predates B's write now: A meets the conflict, and takes B's value.
    a.add("fruit", "from A again")
    a.answer(a.page.locator("#editor [data-conflict]").get_by_role("link", name="Take theirs"))
    expect(a.field("value")).to_have_value("from B")

    try_pitfalls(a, b)
    try_pitfalls(b, a)

    # The staff pages, as nobody.
    nobody = visitor(browser, contexts)
    for path in ("/staff/sessions/", "/staff/sessions/" + "0" * 64 + "/"):
        refused = page_at(nobody, url + path, console)
        expect(refused.locator("[data-refusal]")).to_contain_text("Only staff users")
        found += accessibility_violations(refused)
        refused.close()

    # A login, then the staff pages as demo, who is not staff.
    a.add("before", "login")
    a.sign_in("demo")
    expect(b.page.locator("#account")).to_contain_text("Signed in as demo", timeout=WAIT_MS)
    write_and_follow(b, a, "after_login", "login")
    refused = page_at(visitor_context, url + "/staff/sessions/", console)
    expect(refused.locator("[data-refusal]")).to_contain_text("signed in as demo")
    found += accessibility_violations(refused)
    refused.close()

    # Staff watch the visitor's session while it changes.
    staff_context = visitor(browser, contexts)
    staff_tab = dashboard(staff_context, live_server, console)
    staff_tab.sign_in("staff")
    listing = page_at(staff_context, url + "/staff/sessions/", console)
    expect(listing.locator("#live-status")).to_have_attribute("data-state", "open")
    found += accessibility_violations(listing)
    # The visitor's session, by the masked key its own page shows.
    masked = a.page.locator("#session-meta").get_attribute("data-session-id")
    listing.locator(f'[data-staff-session="{masked}"] a').first.click()
    expect(listing.locator("#session-meta")).to_be_attached(timeout=WAIT_MS)
    expect(listing.locator("#live-status")).to_have_attribute("data-state", "open")
    expect(listing.locator("#account")).to_contain_text("Signed in as demo")
    write_and_follow(a, b, "watched", "by staff")
    expect(listing.locator("[data-session-key=watched]")).to_be_attached(timeout=WAIT_MS)
    found += accessibility_violations(listing)

    # A logout in one tab empties both; the next write starts a session both follow.
    b.press("Log out")
    expect(a.rows).to_have_count(0, timeout=WAIT_MS)
    expect(a.page.locator("#account")).not_to_contain_text("Signed in", timeout=WAIT_MS)
    write_and_follow(a, b, "after_logout", "logout")

    a.press("Flush")
    expect(b.page.locator("[data-session-ended]")).to_be_visible(timeout=WAIT_MS)
    write_and_follow(b, a, "after_flush", "flush")

    b.press("Cycle key")
    write_and_follow(a, b, "after_cycle", "cycle")

    a.page.locator("input[name=expiry]").fill("3600")
    a.answer(a.page.get_by_role("button", name="Set expiry"))
    expect(b.page.locator("[data-countdown]")).to_have_text(
        re.compile(r"^(59 min|1 h)$"), timeout=WAIT_MS
    )
    write_and_follow(b, a, "after_an_hour", "an hour")
    a.answer(a.page.get_by_role("button", name="At browser close"))
    expect(b.page.locator("#session-meta")).to_contain_text(
        "when the browser closes", timeout=WAIT_MS
    )
    write_and_follow(b, a, "after_browser_close", "browser close")
    a.answer(a.page.get_by_role("button", name="Default", exact=True))
    expect(b.page.locator("#session-meta")).to_contain_text("default policy", timeout=WAIT_MS)
    write_and_follow(b, a, "after_default", "default")
    a.press("Clear my keys")
    expect(b.rows).to_have_count(0, timeout=WAIT_MS)
    found += accessibility_violations(b.page)

    # The metrics page counted what the tour did, and stayed open throughout.
    expect(metrics.locator("#live-status")).to_have_attribute("data-state", "open")
    expect(metrics.locator("[data-chart]").first).to_be_visible()
    found += accessibility_violations(metrics)

    assert console.seen == [], "\n".join(console.seen)
    assert found == [], "\n".join(found)
