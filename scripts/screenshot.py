"""Take the README's screenshots: a dashboard with a few keys, and My sessions, in a real browser.

Usage: python scripts/screenshot.py docs/screenshot.png

It serves the project with daphne on a free port and a throwaway SQLite
database, opens two tabs of one session in Debian's chromium, adds keys through
the form in the first tab, visits /color/ in a third, and saves a full-page
screenshot of the first tab, 1280 pixels wide. Then it signs in as demo in two
browsers and saves "My sessions" beside it, as my-sessions.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The test suite's daphne launcher and browser flags, so that the two never drift apart.
from tests.conftest import CHROMIUM_ARGS, Server, free_port, migrate, server_env  # noqa: E402

WIDTH = 1280
# What the first tab types into the form, in order: illustrative, not exhaustive.
KEYS = [
    ("theme", "dark"),
    ("cart", '["apple", "pear", "fig"]'),
    ("profile", json.dumps({"name": "Ada", "prefs": {"lang": "en", "beta": True}})),
    ("visits", "3"),
]


@contextmanager
def serve() -> Iterator[str]:
    """Run daphne on a fresh database with the demo accounts; yield its base URL."""
    with tempfile.TemporaryDirectory(prefix="live-screenshot-") as tmp:
        # Debug on: on plain http at 127.0.0.1 the cookies would otherwise be Secure-only.
        env = server_env(Path(tmp))
        migrate(env)
        subprocess.run([sys.executable, "manage.py", "demo_user"], cwd=ROOT, env=env, check=True)
        server = Server(port=free_port(), env=env, log=Path(tmp) / "daphne.log")
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def open_dashboard(page: Page, url: str) -> None:
    page.goto(url + "/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "open")


def add(page: Page, key: str, value: str) -> None:
    page.bring_to_front()
    page.locator("#editor input[name=key]").fill(key)
    page.locator("#editor input[name=value]").fill(value)
    page.locator("#editor").get_by_role("button", name="Save").click()
    expect(page.locator(f'#session-keys [data-session-key="{key}"]')).to_be_attached()
    # The answer replaces the form; wait for its empty key field before typing again.
    expect(page.locator("#editor input[name=key]")).to_have_value("")


def sign_in(page: Page, url: str) -> None:
    """Open the dashboard and sign in as demo through its account box."""
    open_dashboard(page, url)
    account = page.locator("#account")
    account.locator("input[name=username]").fill("demo")
    account.locator("input[name=password]").fill("demo")
    account.get_by_role("button", name="Log in").click()
    expect(account).to_contain_text("Signed in")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="where to write the PNG")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("Debian's chromium is not installed (apt-get install chromium).")

    with serve() as url, sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": WIDTH, "height": 800})
        first, second = context.new_page(), context.new_page()
        open_dashboard(first, url)
        open_dashboard(second, url)
        for key, value in KEYS:
            add(first, key, value)
        color = context.new_page()
        color.goto(url + "/color/")
        color.close()
        first.bring_to_front()
        expect(first.locator('[data-session-key="favorite_color"]')).to_be_attached()
        expect(second.locator('[data-session-key="favorite_color"]')).to_be_attached()
        expect(first.locator("[data-live-tabs]")).to_have_text("2")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        first.screenshot(path=str(args.output), full_page=True)
        # Two browsers signed in as the same user: My sessions lists both, this one marked.
        laptop = browser.new_context(viewport={"width": WIDTH, "height": 600})
        phone = browser.new_context(viewport={"width": WIDTH, "height": 600})
        sign_in(phone.new_page(), url)
        mine = laptop.new_page()
        sign_in(mine, url)
        mine.goto(url + "/my-sessions/")
        expect(mine.locator("[data-my-session]")).to_have_count(2)
        sessions = args.output.with_name("my-sessions.png")
        mine.screenshot(path=str(sessions), full_page=True)
        browser.close()
    print(f"wrote {args.output} and {sessions}")


if __name__ == "__main__":
    main()
