"""The /metrics/ page: counters move under load and arrive over the socket."""

from __future__ import annotations

import json
import re

import pytest
from django.test import AsyncClient

from live import metrics, sampler
from tests.helpers import client_for, communicator, new_session, receive

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_metrics():
    metrics.reset()
    sampler.reset()
    yield
    metrics.reset()
    sampler.reset()


def value(html: str, name: str) -> float:
    found = re.search(
        rf'data-metric="{name}">{name} <strong data-metric-value>([0-9.]+)[^<]*</strong>', html
    )
    assert found, f"no {name} in the fragment"
    return float(found.group(1))


async def test_metrics_page_renders_empty_charts():
    page = (await AsyncClient().get("/metrics/")).content.decode()
    assert 'id="metrics-charts"' in page and 'ws-connect="/ws/metrics/"' in page
    assert page.count("<svg") == 4
    assert page.count("data-time-label>now<") == 4
    assert "data-metrics-scope>This process (pid " in page


async def test_metrics_counters_move_under_load():
    watcher = communicator(None, json_mode=False, path="/ws/metrics/")
    connected, _ = await watcher.connect()
    assert connected
    first = await watcher.receive_from(timeout=3)
    assert value(first, "writes") == 0
    store = await new_session()
    tab = communicator(store.session_key)
    await tab.connect()
    await receive(tab)
    client = client_for(store.session_key)
    for n in range(20):
        await client.put(f"/api/session/keys/k{n}", json.dumps(n), "application/json")
        await receive(tab)
    # One of the next ticks reports the second in which the writes and pushes happened.
    ticks = [await watcher.receive_from(timeout=3) for _ in range(2)]
    assert max(value(t, "writes") for t in ticks) > 0
    assert max(value(t, "pushes") for t in ticks) > 0
    assert value(ticks[-1], "sockets") == 1
    assert "<polyline" in ticks[-1] and "<title>" in ticks[-1]
    await tab.disconnect()
    await watcher.disconnect()
