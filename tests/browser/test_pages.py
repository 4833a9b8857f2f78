"""What a person checks on the pages by eye: names, wording, durations, a quiet console, and
what a screen reader hears. Each change is made in one tab and looked for in another.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, WebSocket, expect

from tests.conftest import Server
from tests.helpers import WAIT_MS, BrowserTab, ConsoleErrors, dashboard, demo_users

pytestmark = pytest.mark.browser

HUMAN_DURATION = re.compile(r"^\d+ (days?|h|min|s)$")


@pytest.fixture
def accounts(live_server: Server) -> None:
    demo_users(live_server)


def two_tabs(
    new_context: Callable[[], BrowserContext], server: Server, console: ConsoleErrors
) -> tuple[BrowserTab, BrowserTab]:
    """Two tabs of one new browser, so of one session."""
    context = new_context()
    return dashboard(context, server, console), dashboard(context, server, console)


def watch(staff: BrowserContext, owner: BrowserTab, server: Server, console: ConsoleErrors) -> Page:
    """A staff page watching the owner's session, opened from the staff list."""
    page = console.watch(staff.new_page())
    page.goto(server.url + "/staff/sessions/")
    masked = owner.page.locator("#session-meta").get_attribute("data-session-id")
    page.locator(f'[data-staff-session="{masked}"] a').first.click()
    expect(page.locator("#session-meta")).to_have_attribute("data-session-id", str(masked))
    expect(page.locator("#live-status")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    return page


def staff_member(
    new_context: Callable[[], BrowserContext], server: Server, console: ConsoleErrors
) -> BrowserContext:
    context = new_context()
    dashboard(context, server, console).sign_in("staff")
    return context


def test_account_box_names_the_user_in_every_tab_and_to_staff(
    new_context: Callable[[], BrowserContext], live_server: Server, accounts: None
) -> None:
    console = ConsoleErrors()
    a, b = two_tabs(new_context, live_server, console)
    a.sign_in("demo")
    # B learns of the login from a push, which has no request to ask who is signed in.
    expect(b.page.locator("#account [data-username]")).to_have_text("demo", timeout=WAIT_MS)
    expect(b.page.locator("#account")).to_contain_text("Signed in as demo (user id")
    expect(a.page.locator("#account [data-username]")).to_have_text("demo")
    a.add("after", "login")
    expect(b.row("after")).to_be_attached(timeout=WAIT_MS)
    expect(b.page.locator("#account [data-username]")).to_have_text("demo")

    # A staff member watching sees the owner's name, never their own.
    watcher = watch(staff_member(new_context, live_server, console), a, live_server, console)
    expect(watcher.locator("#account")).to_contain_text("Signed in as demo")
    b.add("watched", "yes")
    expect(watcher.locator("[data-session-key=watched]")).to_be_attached(timeout=WAIT_MS)
    expect(watcher.locator("#account [data-username]")).to_have_text("demo")
    expect(watcher.locator("#account")).not_to_contain_text("staff")
    assert console.seen == [], console.seen


def test_what_someone_types_into_the_login_form_stays_while_other_tabs_write(
    new_context: Callable[[], BrowserContext], live_server: Server, accounts: None
) -> None:
    console = ConsoleErrors()
    a, b = two_tabs(new_context, live_server, console)
    account = a.page.locator("#account")
    account.locator("input[name=username]").fill("demo")
    account.locator("input[name=password]").fill("demo")
    # Every push carries the account box; B's write reaches A while A's form is half done.
    b.add("meanwhile", "written")
    expect(a.row("meanwhile")).to_be_attached(timeout=WAIT_MS)
    expect(account.locator("input[name=username]")).to_have_value("demo")
    a.answer(account.get_by_role("button", name="Log in"))
    expect(b.page.locator("#account [data-username]")).to_have_text("demo", timeout=WAIT_MS)
    # Signed in, the box has no login form; after a logout it has an empty one again.
    b.press("Log out")
    expect(account.locator("input[name=username]")).to_have_value("", timeout=WAIT_MS)
    assert console.seen == [], console.seen


def test_logins_logouts_and_watching_leave_the_console_quiet(
    new_context: Callable[[], BrowserContext], live_server: Server, accounts: None
) -> None:
    console = ConsoleErrors()
    a, b = two_tabs(new_context, live_server, console)
    for round_ in range(3):
        a.add(f"round_{round_}", "before")
        watcher = watch(staff_member(new_context, live_server, console), a, live_server, console)
        (a if round_ % 2 == 0 else b).sign_in("demo")
        expect(b.page.locator("#account")).to_contain_text("Signed in as demo", timeout=WAIT_MS)
        expect(a.page.locator("#account")).to_contain_text("Signed in as demo", timeout=WAIT_MS)
        (b if round_ % 2 == 0 else a).press("Log out")
        for tab in (a, b):
            expect(tab.page.locator("#account")).not_to_contain_text("Signed in", timeout=WAIT_MS)
        watcher.close()
    # The watch page's pushes carry the account box too, and find it there.
    a.add("watched", "1")
    watcher = watch(staff_member(new_context, live_server, console), a, live_server, console)
    b.add("watched_too", "2")
    expect(watcher.locator("[data-session-key=watched_too]")).to_be_attached(timeout=WAIT_MS)
    assert console.seen == [], "\n".join(console.seen)


def test_error_pages_are_never_swapped_in_the_refusal_is_said_in_place(
    new_context: Callable[[], BrowserContext], live_server: Server
) -> None:
    # The answers are refusals on purpose; any other error (a CSP violation among them) counts.
    console = ConsoleErrors(refusals=(400, 403))
    context = new_context()
    a = dashboard(context, live_server, console)
    a.add("kept", "yes")

    # A body over Django's DATA_UPLOAD_MAX_MEMORY_SIZE: Django answers with its own page.
    a.field("key").fill("big")
    a.field("value").fill("x" * 2_700_000)
    # No answer replaces the editor: the refusal is added to it.
    a.page.locator("#editor").get_by_role("button", name="Save").click()
    expect(a.error).to_have_text(
        "The server refused this request (status 400), and nothing on this page changed."
    )
    # Without its CSRF cookie the form is refused by Django's CSRF check.
    context.clear_cookies(name="csrftoken")
    a.add("late", "1")
    expect(a.error).to_contain_text("security token is missing or out of date")
    for tab in (a,):
        expect(tab.page.locator("#session-keys")).to_be_attached()
        expect(tab.status).to_have_attribute("data-state", "open")
        expect(tab.page.locator("style")).to_have_count(0)
    expect(a.row("big")).to_have_count(0)
    expect(a.row("late")).to_have_count(0)
    assert a.same_document()
    assert console.seen == [], "\n".join(console.seen)


def test_staff_watch_page_reads_as_someone_elses_session(
    new_context: Callable[[], BrowserContext], live_server: Server, accounts: None
) -> None:
    console = ConsoleErrors()
    owner = dashboard(new_context(), live_server, console)
    watcher = watch(staff_member(new_context, live_server, console), owner, live_server, console)
    expect(watcher.locator("#session-meta h2")).to_have_text("This session")
    expect(watcher.locator("#session-keys .empty")).to_have_text("No keys yet.")
    expect(watcher.locator("#account")).to_contain_text("Not signed in.")
    expect(watcher.locator("#account form")).to_have_count(0)
    expect(watcher.locator("#editor")).to_have_count(0)
    # The same words after pushes: a key comes and goes in the owner's tab.
    owner.add("brief", "1")
    expect(watcher.locator("[data-session-key=brief]")).to_be_attached(timeout=WAIT_MS)
    owner.press("Clear my keys")
    expect(watcher.locator("#session-keys .empty")).to_have_text("No keys yet.", timeout=WAIT_MS)
    expect(watcher.locator("#session-meta h2")).to_have_text("This session")
    expect(watcher.locator("main")).not_to_contain_text("Your session")
    expect(watcher.locator("main")).not_to_contain_text("Add one above")
    assert console.seen == [], console.seen


def test_durations_read_as_words_in_pushes_and_the_staff_list(
    new_context: Callable[[], BrowserContext], live_server: Server, accounts: None
) -> None:
    console = ConsoleErrors()
    a, b = two_tabs(new_context, live_server, console)
    frames: list[str] = []

    def on_socket(socket: WebSocket) -> None:
        socket.on("framereceived", lambda frame: frames.append(str(frame)))

    b.page.on("websocket", on_socket)
    b.page.reload()
    expect(b.status).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    a.add("fruit", "pear")
    expect(b.row("fruit")).to_be_attached(timeout=WAIT_MS)
    pushed = "".join(frames)
    # As pushed, before any script runs: words, with the seconds for the script.
    assert re.search(r'data-countdown data-seconds="\d+">1[34] days<', pushed), pushed[:2000]
    assert not re.search(r"\d{4,} s\b", pushed)
    countdown = b.page.locator("[data-countdown]")
    expect(countdown).to_have_text(HUMAN_DURATION)
    expect(countdown).to_have_text(re.compile(r"^1[34] days$"))

    a.page.locator("input[name=expiry]").fill("3600")
    a.answer(a.page.get_by_role("button", name="Set expiry"))
    expect(countdown).to_have_text(re.compile(r"^(59 min|1 h)$"), timeout=WAIT_MS)

    staff = staff_member(new_context, live_server, console).new_page()
    console.watch(staff).goto(live_server.url + "/staff/sessions/")
    masked = a.page.locator("#session-meta").get_attribute("data-session-id")
    expires = staff.locator(f'[data-staff-session="{masked}"] [data-seconds]')
    expect(expires).to_have_text(re.compile(r"^(59 min|1 h)$"))
    assert int(expires.get_attribute("data-seconds") or 0) > 3500
    for cell in staff.locator("[data-staff-session] [data-seconds]").all():
        expect(cell).to_have_text(HUMAN_DURATION)
    assert console.seen == [], console.seen


def test_a_conflict_quotes_both_values_alike(
    new_context: Callable[[], BrowserContext], live_server: Server
) -> None:
    console = ConsoleErrors(refusals=(409,))
    a, b = two_tabs(new_context, live_server, console)
    a.add("fruit", "from A")
    expect(b.row("fruit")).to_be_attached(timeout=WAIT_MS)
    # B's form was rendered before A's write.
    b.add("fruit", "from B")
    conflict = b.page.locator("#editor [data-conflict]")
    expect(conflict.locator("[data-theirs]")).to_have_text('"from A"')
    expect(conflict.locator("[data-mine]")).to_have_text('"from B"')
    assert console.seen == [], console.seen


def test_timeline_scrolls_with_a_visible_bar_and_the_keyboard(
    new_context: Callable[[], BrowserContext], live_server: Server
) -> None:
    console = ConsoleErrors()
    a, b = two_tabs(new_context, live_server, console)
    for n in range(14):
        a.add(f"key_{n}", str(n))
    expect(b.row("key_13")).to_be_attached(timeout=WAIT_MS)
    region = b.page.get_by_role("region", name="Timeline")
    expect(region).to_have_attribute("tabindex", "0")
    box = region.evaluate(
        "el => {const style = getComputedStyle(el); return {scroll: el.scrollHeight,"
        " client: el.clientHeight, overflow: style.overflowY, width: style.scrollbarWidth,"
        " color: style.scrollbarColor}}"
    )
    assert box["scroll"] > box["client"], box
    # A drawn bar with its own colours: headless Chromium hides every bar, so
    # the style is what can be checked here.
    assert box["overflow"] in ("auto", "scroll") and box["width"] == "thin", box
    assert box["color"] != "auto", box
    b.page.bring_to_front()
    region.focus()
    expect(region).to_be_focused()
    b.page.keyboard.press("End")
    b.page.wait_for_function(
        "() => document.querySelector('.timeline-scroll').scrollTop > 0", timeout=WAIT_MS
    )
    assert console.seen == [], console.seen


def test_a_pushed_change_is_announced_once_in_the_other_tab(
    new_context: Callable[[], BrowserContext], live_server: Server
) -> None:
    console = ConsoleErrors()
    a, b = two_tabs(new_context, live_server, console)
    announcer = b.page.locator("#live-announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    expect(announcer).to_have_text("")
    b.page.evaluate(
        """() => {
          window.__announced = [];
          const region = document.getElementById("live-announcer");
          new MutationObserver(() => window.__announced.push(region.textContent))
            .observe(region, {childList: true, characterData: true, subtree: true});
        }"""
    )
    label = a.page.evaluate("sessionStorage.getItem('live-tab')")
    a.add("fruit", "pear")
    expect(announcer).to_have_text(f'fruit set to "pear" by tab {label}.', timeout=WAIT_MS)
    # Pushes that change no key (a tab opens) say nothing more.
    third = dashboard(a.page.context, live_server, console)
    expect(b.tabs).to_have_text("3", timeout=WAIT_MS)
    assert b.page.evaluate("window.__announced") == [f'fruit set to "pear" by tab {label}.']

    third.add("colour", "green")
    third.press("Clear my keys")
    third_label = third.page.evaluate("sessionStorage.getItem('live-tab')")
    expect(announcer).to_have_text(f"2 keys changed by tab {third_label}.", timeout=WAIT_MS)
    assert console.seen == [], console.seen
