"""The /metrics/ page in a browser: a time axis, units, hover readouts, no axe violations."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.conftest import Server
from tests.helpers import WAIT_MS

pytestmark = pytest.mark.browser

WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
TIME_LABELS = ["−5 min", "−4 min", "−3 min", "−2 min", "−1 min", "now"]

# True once a readout of the requests chart shows at least `n` requests a second.
SHOWS_REQUESTS = """
n => [...document.querySelectorAll('[data-chart="requests"] .hover title')].some(
  title => parseFloat(title.textContent.split("requests ")[1]) >= n)
"""


@pytest.fixture
def page(browser: Browser, live_server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if is_error(m) else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors


def is_error(message: ConsoleMessage) -> bool:
    return message.type == "error"


def test_metrics_page_draws_five_minutes_with_units_and_passes_axe(
    page: Page, live_server: Server
) -> None:
    page.goto(live_server.url + "/metrics/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    for _ in range(30):
        assert page.request.get(live_server.url + "/api/session").ok
    # The next sample's push brings the requests in; the sampler ran before the page opened.
    page.wait_for_function(SHOWS_REQUESTS, arg=5, timeout=WAIT_MS)

    requests = page.locator('[data-chart="requests"]')
    expect(requests.locator("[data-time-label]")).to_have_text(TIME_LABELS)
    expect(requests.locator("h2")).to_have_text("HTTP requests and server errors (req/s)")
    expect(requests.locator("[data-gridline]").last).to_have_text(re.compile(r"^\d+ req/s$"))
    expect(requests.locator('[data-metric="requests"] [data-metric-value]')).to_have_text(
        re.compile(r"^\d+(\.\d+)? req/s$")
    )
    lag = page.locator('[data-chart="lag"] [data-metric="p50"] [data-metric-value]')
    expect(lag).to_have_text(re.compile(r"^\d+(\.\d+)? ms$"))
    for name in ("sessions", "sockets"):
        count = page.locator(f'[data-chart="sessions"] [data-metric="{name}"] [data-metric-value]')
        expect(count).to_have_text(re.compile(r"^\d+$"))
    sessions = page.locator('[data-chart="sessions"] [data-gridline]')
    for label in sessions.all_text_contents():
        assert re.fullmatch(r"\d+", label), label

    titles = requests.locator(".hover rect title")
    assert titles.count() > 0
    expect(titles.last).to_have_text(re.compile(r"^\d\d:\d\d:\d\d: requests .* req/s"))
    expect(page.locator("[data-metrics-scope]")).to_have_text(
        re.compile(r"^This process \(pid \d+")
    )

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG}})
    assert results.violations_count == 0, results.generate_report()
