"""Who holds which session, in real browsers: a user ends their other browser, staff end anyone's.

Each browser context is one browser (its own cookie jar). Ending a session
reaches its open tabs without a reload, in this process or another one.
Nothing here sleeps: each check waits for what a person would see.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import Server, free_port, migrate, server_env
from tests.helpers import WAIT_MS, BrowserTab, demo_users

pytestmark = pytest.mark.browser


def ended(tab: BrowserTab) -> None:
    """The tab says its session ended, without a reload."""
    notice = tab.page.locator("[data-session-ended='final']")
    expect(notice).to_be_attached(timeout=WAIT_MS)
    assert tab.same_document(), "the tab was reloaded"


def test_my_sessions_ends_the_users_other_browser_and_its_tabs_say_so(
    new_context: Callable[[], BrowserContext], live_server: Server
) -> None:
    demo_users(live_server)
    laptop, phone = new_context(), new_context()
    here = BrowserTab(laptop.new_page(), live_server)
    here.sign_in("demo")
    there = [BrowserTab(phone.new_page(), live_server) for _ in range(2)]
    there[0].sign_in("demo")
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
    new_context: Callable[[], BrowserContext],
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
        user = BrowserTab(new_context().new_page(), second)
        user.sign_in("demo")

        staff = BrowserTab(new_context().new_page(), first)
        staff.sign_in("staff")
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
