"""Who holds which session, in real browsers: a user ends their other browser, staff end anyone's.

Each browser context is one browser (its own cookie jar). Ending a session
reaches its open tabs without a reload, in this process or another one.
Nothing here sleeps: each check waits for what a person would see.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import ROOT, Server, free_port, migrate, server_env
from tests.helpers import WAIT_MS, BrowserTab

pytestmark = pytest.mark.browser


def demo_users(server: Server) -> None:
    subprocess.run([sys.executable, "manage.py", "demo_user"], cwd=ROOT, env=server.env, check=True)


def sign_in(tab: BrowserTab, username: str) -> None:
    """Sign in through the page's account box, as a person would."""
    account = tab.page.locator("#account")
    account.locator("input[name=username]").fill(username)
    account.locator("input[name=password]").fill(username)
    tab.answer(account.get_by_role("button", name="Log in"))
    expect(account).to_contain_text("Signed in", timeout=WAIT_MS)


def ended(tab: BrowserTab) -> None:
    """The tab says its session ended, without a reload."""
    notice = tab.page.locator("[data-session-ended='final']")
    expect(notice).to_be_attached(timeout=WAIT_MS)
    assert tab.same_document(), "the tab was reloaded"


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    made: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def test_my_sessions_ends_the_users_other_browser_and_its_tabs_say_so(
    contexts: Callable[[], BrowserContext], live_server: Server
) -> None:
    demo_users(live_server)
    laptop, phone = contexts(), contexts()
    here = BrowserTab(laptop.new_page(), live_server)
    sign_in(here, "demo")
    there = [BrowserTab(phone.new_page(), live_server) for _ in range(2)]
    sign_in(there[0], "demo")
    expect(there[1].page.locator("#account")).to_contain_text("Signed in", timeout=WAIT_MS)

    mine = laptop.new_page()
    mine.goto(live_server.url + "/my-sessions/")
    rows = mine.locator("[data-my-session]")
    expect(rows).to_have_count(2)
    expect(mine.locator("[data-this-session]")).to_have_count(1)
    other = mine.locator("[data-my-session]:not([data-this-session])")
    expect(other.locator("td").nth(5)).to_have_text("2")  # the phone's two tabs
    other.get_by_role("button", name="End").click()

    expect(mine.locator("#my-sessions-notice")).to_contain_text("ended.", timeout=WAIT_MS)
    expect(rows).to_have_count(1)
    for tab in there:
        ended(tab)
    # The laptop's own session goes on.
    expect(here.page.locator("#account")).to_contain_text("Signed in")
    assert here.errors == [] and all(tab.errors == [] for tab in there)


@pytest.mark.services
def test_staff_end_a_users_session_held_on_another_process(
    contexts: Callable[[], BrowserContext],
    fresh_postgres: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    env = server_env(tmp_path, DATABASE_URL=fresh_postgres, REDIS_URL=redis_url)
    migrate(env)
    servers = [Server(free_port(), env, tmp_path / f"daphne-{n}.log") for n in range(2)]
    for server in servers:
        server.start()
    try:
        first, second = servers
        demo_users(first)
        user = BrowserTab(contexts().new_page(), second)
        sign_in(user, "demo")

        staff = BrowserTab(contexts().new_page(), first)
        sign_in(staff, "staff")
        page: Page = staff.page
        page.goto(first.url + "/staff/sessions/?user=demo")
        row = page.locator("[data-session-user='demo']")
        expect(row).to_have_count(1, timeout=WAIT_MS)
        row.get_by_role("button", name="End").click()

        expect(page.locator("#staff-notice")).to_contain_text("ended.", timeout=WAIT_MS)
        ended(user)
        expect(page.locator("[data-session-user='demo']")).to_have_count(0, timeout=WAIT_MS)
    finally:
        for server in servers:
            server.stop()
