"""The engines benchmark's figures: paired ratios, scaling, and the API's wrk script."""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

from tests.conftest import ROOT


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    for name in ("bench_engines", "bench_session", "report"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import bench_engines

    return bench_engines


def test_ratios_pair_each_round_with_its_own_bare_view(engines: ModuleType) -> None:
    write_1, write_2 = ("write", "redis", "redis", 1), ("write", "redis", "redis", 2)
    results = {
        engines.BARE_1: [100.0, 200.0, 100.0],
        engines.BARE_2: [150.0, 300.0, 200.0],
        write_1: [80.0, 160.0, 50.0],
        write_2: [120.0, 240.0, 100.0],
    }
    ratios = engines.Ratios(results)
    assert ratios.to_bare(write_1) == pytest.approx(0.8)
    assert ratios.scaling(write_1, write_2) == pytest.approx(1.5)
    assert ratios.scaling_share(write_1, write_2) == pytest.approx(1.0)


def test_the_api_script_sends_each_sessions_cookies_and_token(engines: ModuleType) -> None:
    import bench_session

    made = [{"csrftoken": "t1", "sessionid": "s1"}, {"csrftoken": "t2", "sessionid": "s2"}]
    script = bench_session.wrk_put_script("http://127.0.0.1:8000", "/api/session/keys/n", made)
    assert '{"csrftoken=t1; sessionid=s1", "t1"}' in script
    assert '{"csrftoken=t2; sessionid=s2", "t2"}' in script
    assert 'wrk.format("PUT", "/api/session/keys/n"' in script
    assert '["Origin"] = "http://127.0.0.1:8000"' in script


def test_a_ratio_bought_by_dropping_pushes_fails_its_goal(engines: ModuleType) -> None:
    assert engines.least("write", 0.9, 0.8)["pass"]
    dropped = engines.least("write", 0.9, 0.8, drops=2)
    assert not dropped["pass"]
    assert "pushes dropped 2 times" in str(dropped["value"])


def test_the_drop_pattern_matches_what_the_outbox_logs(
    engines: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from live.realtime import events

    async def lose() -> None:
        outbox = events._Outbox()
        outbox.waiting.extend([(None, "g", {"type": events.TOUCHED})] * events.MAX_PENDING)
        outbox.post(None, "g", {"type": events.TOUCHED})
        outbox._failed([{"type": events.TOUCHED}], ConnectionError())

    with caplog.at_level("INFO", logger="live.realtime.events"):
        asyncio.run(lose())
    assert len(engines.DROPPED.findall(caplog.text)) == 2


def test_a_row_is_read_against_the_bare_run_made_just_before_it(engines: ModuleType) -> None:
    write = ("write", "redis", "redis", 1)
    results = {engines.BARE_1: [100.0, 100.0, 100.0], write: [80.0, 90.0, 60.0]}
    before = {write: [80.0, 100.0, 75.0]}
    assert engines.Ratios(results).to_bare(write) == pytest.approx(0.8)
    assert engines.Ratios(results, before).to_bare(write) == pytest.approx(0.9)


def test_costs_beyond_the_bare_view_add_up_in_a_combined_ratio(engines: ModuleType) -> None:
    write = ("write", "redis", "redis", 1)
    results = {
        engines.BARE_1: [100.0, 100.0, 100.0],
        engines.STACK_PUT: [50.0, 50.0, 40.0],
        write: [80.0, 80.0, 80.0],
    }
    # The middleware costs a bare request more, the write a quarter: 2.25 bare requests.
    assert engines.Ratios(results).combined(engines.STACK_PUT, write) == pytest.approx(1 / 2.25)
    assert engines.Ratios(results).combined(write) == pytest.approx(0.8)


def test_the_api_is_framed_per_daphne_cpu_second_too(engines: ModuleType) -> None:
    write = ("write", "sqlite", "memory", 1)
    results = {engines.BARE_1: [100.0], engines.STACK_PUT: [80.0], write: [90.0]}
    bench = engines.Bench.__new__(engines.Bench)
    # 5 s runs: the bare view used 2.5 daphne CPU-seconds, the others all 5.
    bench.cpu = {
        row: [
            engines.Cpu(
                daphne=2.5 if row == engines.BARE_1 else 5.0,
                redis=0,
                postgres=0,
                machine=5.0,
                wall=5.0,
            )
        ]
        for row in results
    }
    per = engines.per_cpu_second(bench, results)
    assert per[engines.BARE_1] == [200.0] and per[write] == [90.0]
    cpu = engines.Ratios(per)
    # Per CPU-second: the stack 0.4 (2.5 bare requests), the write 0.45 (1.22 more).
    assert cpu.combined(engines.STACK_PUT, write) == pytest.approx(1 / (2.5 + 200 / 90 - 1))
    shown = engines.api_frame(cpu, "sqlite", write)
    assert shown.startswith("the site's middleware on the API's PUT 0.40x, with the engine's write")
    assert "leanest" not in shown


def test_a_writes_floor_is_a_lean_read_and_a_lean_write_added(engines: ModuleType) -> None:
    results = {
        engines.BARE_1: [100.0],
        engines.STACK_PUT: [50.0],
        engines.LEAN_PG_READ: [80.0],
        engines.LEAN_PG: [50.0],
        ("write", "postgres", "redis", 1): [40.0],
    }
    ratios = engines.Ratios(results)
    floor = engines.FLOORS["postgres", "write"]
    # 1.25 bare requests for the read, 2 for the write: 2.25 in all.
    assert ratios.combined(*floor) == pytest.approx(1 / 2.25)
    shown = engines.api_frame(ratios, "postgres", ("write", "postgres", "redis", 1))
    # The middleware on its PUT (2) with both (0.25 + 1 more): 3.25 bare requests.
    assert shown.endswith(f"with a read and a write at their leanest {1 / 3.25:.2f}x")


def test_a_redis_floor_shows_djangos_session_api_on_the_same_commands(
    engines: ModuleType,
) -> None:
    results = {
        engines.BARE_1: [100.0],
        engines.LEAN_READ: [80.0],
        engines.LEAN: [80.0],
        engines.LEAN_ENGINE_WRITE: [70.0],
        engines.LEAN_ENGINE_READ: [90.0],
        engines.LEAN_PG_READ: [80.0],
        engines.LEAN_PG: [50.0],
    }
    ratios = engines.Ratios(results)
    # 1.25 bare requests each for the read and the write: 1.5 in all.
    assert engines.floor_note(ratios, "redis", "write") == (
        f"a read and a write at their leanest {1 / 1.5:.2f}x, Django's session API on them 0.70x"
    )
    assert engines.floor_note(ratios, "redis", "read").endswith("on them 0.90x")
    assert "Django" not in engines.floor_note(ratios, "postgres", "write")
    # The site's middleware on its PUT (1 more bare request) with Django's write (3/7 more).
    results[engines.STACK_PUT] = [50.0]
    api = engines.api_frame(ratios, "redis", engines.LEAN_ENGINE_WRITE)
    assert api.endswith(f"with Django's session API on them {1 / (2 + 3 / 7):.2f}x")
    assert "Django" not in engines.api_frame(ratios, "postgres", engines.LEAN_PG)
