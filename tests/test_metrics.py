"""The counters, the sampler that closes each second of them, and the charts drawn from samples."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.test import AsyncClient

from live import metrics, redis_client, sampler
from live.metrics import History, Sample, Snapshot
from live.web import charts

NOW = 1_700_000_000.0


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.reset()
    sampler.reset()
    yield
    metrics.reset()
    sampler.reset()


def sample(at: float, **values: float) -> Sample:
    fields: dict[str, Any] = {
        "sessions": 0,
        "sockets": 0,
        "requests": 0.0,
        "writes": 0.0,
        "pushes": 0.0,
        "errors": 0.0,
        "lag_p50_ms": 0.0,
        "lag_p99_ms": 0.0,
    }
    return Sample(at=at, **{**fields, **values})


def snapshot(*samples: Sample, processes: int | None = None) -> Snapshot:
    return Snapshot(list(samples), NOW, 4242, processes)


# --- the history ----------------------------------------------------------------------


def test_history_rates_are_per_second_since_the_sample_before():
    history = History(now=NOW)
    for _ in range(6):
        metrics.wrote()
    metrics.responded(200)
    metrics.responded(500)
    first = history.sample(sessions=3, now=NOW + 2)
    assert (first.writes, first.requests, first.errors, first.sessions) == (3.0, 1.0, 0.5, 3)
    assert history.sample(sessions=3, now=NOW + 3).writes == 0.0


def test_history_counts_nothing_from_before_it_began():
    metrics.wrote()
    history = History(now=NOW)
    assert history.sample(sessions=0, now=NOW + 1).writes == 0.0


def test_history_keeps_five_minutes():
    history = History(now=NOW)
    for second in range(1, 401):
        history.sample(sessions=0, now=NOW + second)
    assert len(history.samples) == metrics.HISTORY_SECONDS == 300
    assert history.samples[0].at == NOW + 101
    assert history.samples[-1].at == NOW + 400


def test_lags_are_bounded_when_nothing_samples():
    for _ in range(metrics.MAX_LAGS + 10):
        metrics.pushed(NOW)
    assert len(metrics.counters.lags) == metrics.MAX_LAGS
    assert metrics.counters.pushes == metrics.MAX_LAGS + 10


# --- the sampler ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_sampler_samples_without_any_socket():
    running = sampler.Sampler()
    assert running.task is None
    metrics.wrote()
    first = await running.tick()
    assert list(running.history.samples) == [first] and first.writes > 0
    second = await running.tick()
    assert [s.at for s in running.history.samples] == [first.at, second.at]
    assert running.snapshot().samples == [first, second]


async def test_a_slow_count_of_the_sessions_spaces_out_the_next_ones(
    monkeypatch: pytest.MonkeyPatch,
):
    # Counting reads every session; however many there are, it takes at most
    # COUNT_SHARE of the time.
    counted: list[float] = []
    times = iter([100.0, 102.0, 150.0, 299.0, 302.0, 303.0, 400.0])

    async def count(now: float, before: int) -> int:
        counted.append(now)
        return len(counted)

    async def processes(now: float) -> None:
        return None

    monkeypatch.setattr(sampler, "_count_sessions", count)
    monkeypatch.setattr(sampler, "_count_processes", processes)
    running = sampler.Sampler(clock=lambda: next(times))
    for second in range(4):
        await running.tick(NOW + second)
    # The count at 100 took 2 s: the next is due 200 s later, at 300, and
    # took 1 s, so the one after is due at 402 (COUNT_EVERY is the least).
    assert counted == [NOW, NOW + 3]
    assert running.count_due == 302.0 + 100.0
    assert [s.sessions for s in running.history.samples] == [1, 1, 1, 2]


@pytest.mark.django_db(transaction=True)
async def test_first_request_starts_the_loops_sampler_and_later_ones_keep_it():
    assert (await AsyncClient().get("/")).status_code == 200
    running = sampler.start()
    assert running.task is not None and not running.task.done()
    task = running.task
    assert (await AsyncClient().get("/")).status_code == 200
    assert sampler.start().task is task


@pytest.mark.django_db(transaction=True)
async def test_sampler_hands_each_sample_to_its_listeners():
    heard: list[Snapshot] = []
    got = asyncio.Event()

    async def listener(shot: Snapshot) -> None:
        heard.append(shot)
        got.set()

    running = sampler.start()
    running.listeners.add(listener)
    await asyncio.wait_for(got.wait(), timeout=5)
    assert heard[0].samples and heard[0].pid > 0


@pytest.fixture
async def close_redis() -> AsyncIterator[None]:
    yield
    await redis_client.aclose()


@pytest.mark.django_db(transaction=True)
async def test_sampler_counts_the_processes_in_redis(
    redis_url: str, settings: Any, close_redis: None
):
    settings.REDIS_URL = redis_url
    running = sampler.Sampler()
    await running.tick()
    assert running.processes is not None and running.processes >= 1
    assert running.snapshot().processes == running.processes


# --- the charts ---------------------------------------------------------------------------


def test_chart_x_follows_each_samples_timestamp():
    assert charts.x_of(NOW - 300, NOW) == charts.LEFT
    assert charts.x_of(NOW, NOW) == charts.RIGHT
    assert charts.x_of(NOW - 150, NOW) == (charts.LEFT + charts.RIGHT) / 2


def points(html: str, chart: str) -> list[list[float]]:
    """The x of every point of the chart's first series, one list per stretch of line."""
    section = html.split(f'data-chart="{chart}"')[1].split("</section>")[0]
    return [
        [float(point.split(",")[0]) for point in found.split()]
        for found in re.findall(r'<polyline points="([^"]*)" class="s0"', section)
    ]


def test_chart_leaves_unsampled_seconds_empty():
    # Ten seconds sampled a minute ago, then the server was away, then ten more up to now.
    early = [sample(NOW - 70 + n, requests=5) for n in range(10)]
    late = [sample(NOW - 9 + n, requests=5) for n in range(10)]
    html = charts.render_metrics(snapshot(*early, *late))
    first, second = points(html, "requests")
    assert first[0] == pytest.approx(charts.x_of(NOW - 70, NOW), abs=0.1)
    assert first[-1] == pytest.approx(charts.x_of(NOW - 61, NOW), abs=0.1)
    assert second[-1] == pytest.approx(charts.RIGHT, abs=0.1)
    # Nothing is drawn before the server's first sample.
    assert min(first) > charts.LEFT + 100


def test_chart_draws_nothing_older_than_five_minutes():
    html = charts.render_metrics(snapshot(sample(NOW - 400), sample(NOW - 1), sample(NOW)))
    assert points(html, "sessions") == [[round(charts.x_of(NOW - 1, NOW), 1), charts.RIGHT]]


def test_number_shows_counts_as_integers():
    assert charts.number(44.0, integer=True) == "44"
    assert charts.number(44.6, integer=True) == "45"
    assert charts.number(0.0) == "0"
    assert charts.number(12.0) == "12"
    assert charts.number(2.345) == "2.3"
    assert charts.number(0.348) == "0.35"
    assert charts.number(1234.5) == "1234"


def test_fragment_labels_carry_units_and_integers():
    html = charts.render_metrics(
        snapshot(sample(NOW, sessions=44, sockets=3, requests=40.5, lag_p50_ms=0.0))
    )
    assert 'data-metric="sessions">sessions <strong data-metric-value>44</strong>' in html
    assert "44.0" not in html
    assert "<strong data-metric-value>40.5 req/s</strong>" in html
    assert "<strong data-metric-value>0 ms</strong>" in html
    assert "Active sessions and open sockets (count)" in html
    labels = re.findall(r"data-time-label>([^<]*)<", html)
    assert labels[:6] == ["−5 min", "−4 min", "−3 min", "−2 min", "−1 min", "now"]
    gridlines = re.findall(r"data-gridline>([^<]*)<", html)
    assert "50 req/s" in gridlines and "50" in gridlines
    assert re.search(r"<title>\d\d:\d\d:\d\d: sessions 44, sockets 3</title>", html)


def test_count_gridlines_are_whole_numbers():
    html = charts.render_metrics(snapshot(sample(NOW, sessions=1)))
    section = html.split('data-chart="sessions"')[1].split("</section>")[0]
    assert re.findall(r"data-gridline>([^<]*)<", section) == ["0", "1"]


def test_fragment_says_whose_samples_these_are():
    assert "This process (pid 4242)." in charts.render_metrics(snapshot())
    assert "This process (pid 4242) of 3" in charts.render_metrics(snapshot(processes=3))
    assert "the only one running" in charts.render_metrics(snapshot(processes=1))
