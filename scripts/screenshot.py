"""Take the README's screenshot: a dashboard with a few keys, in a real browser.

Usage: python scripts/screenshot.py docs/screenshot.png

It serves the project with daphne on a free port and a throwaway SQLite
database, opens two tabs of one session in Debian's chromium, adds keys through
the form in the first tab, visits /color/ in a third, and saves a full-page
screenshot of the first tab, 1280 pixels wide.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 1280
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What the first tab types into the form, in order: illustrative, not exhaustive.
KEYS = [
    ("theme", "dark"),
    ("cart", '["apple", "pear", "fig"]'),
    ("profile", json.dumps({"name": "Ada", "prefs": {"lang": "en", "beta": True}})),
    ("visits", "3"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"daphne did not listen on port {port}")


@contextmanager
def serve() -> Iterator[str]:
    """Run daphne on a fresh database; yield its base URL."""
    with tempfile.TemporaryDirectory(prefix="live-screenshot-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "asgi_config.settings",
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'db.sqlite3'}",
            # Plain http on 127.0.0.1: without debug the cookies would be Secure-only.
            "DJANGO_DEBUG": "1",
        }
        env.pop("REDIS_URL", None)
        python = sys.executable
        subprocess.run(
            [python, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
        )
        port = free_port()
        daphne = str(Path(python).parent / "daphne")
        with (Path(tmp) / "daphne.log").open("wb") as log:
            process = subprocess.Popen(
                [daphne, "-b", "127.0.0.1", "-p", str(port), "asgi_config.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(port)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


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
        browser.close()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
