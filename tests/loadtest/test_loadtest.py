"""`manage.py loadtest` against a real daphne, against a server that loses writes, and its model."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from rich.console import Console

from live.loadtest import report
from live.loadtest.config import Config, ConfigError, parse_mix
from live.loadtest.model import ABSENT, Consistency, SessionModel
from live.loadtest.stats import Histogram
from live.loadtest.worker import Outcome
from tests.conftest import ROOT, Server

# Weights that make every operation show up even in a short run on a slow machine.
MIX = "set=50,get=20,delete=15,clear=15"


def loadtest(server_url: str, out: Path, *args: str, env: dict[str, str] | None = None):
    command = ["manage.py", "loadtest", "--url", server_url, "--json", str(out), "--mix", MIX]
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_report(result: dict[str, Any], users: int, tabs: int) -> None:
    assert set(result["operations"]) == {"set", "get", "delete", "clear"}
    for name, op in result["operations"].items():
        assert op["count"] > 0, name
        assert op["errors"] == {}, name
        latency = op["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"], name
    assert result["requests"]["total"] == sum(op["count"] for op in result["operations"].values())
    assert result["requests"]["error_rate"] == 0
    push = result["push"]
    assert push["tabs"] == users * tabs
    assert push["deliveries"] > 0
    for spread in (push["latency_ms"], push["from_send_ms"]):
        assert 0 <= spread["p50"] <= spread["p99"] <= spread["max"]
    assert push["from_send_ms"]["p50"] > 0
    assert push["missed"] == 0
    assert push["gaps"] == 0
    assert push["reconnects"] == push["refused"] == 0 and push["drops"] == {}
    consistency = result["consistency"]
    assert consistency["sessions"] == users
    assert consistency["verified_keys"] > 0
    assert consistency["unverifiable_keys"] == 0
    assert consistency["lost_writes"] == 0
    assert consistency["stale_reads"] == consistency["inconsistent_reads"] == 0
    assert consistency["tabs_diverged"] == 0
    assert result["failures"] == [] and result["passed"] is True


def test_loadtest_reports_operations_pushes_and_no_lost_writes(live_server: Server, tmp_path: Path):
    out = tmp_path / "report.json"
    run = loadtest(
        live_server.url, out, "--users", "3", "--tabs", "2", "--duration", "3", env=live_server.env
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    check_report(result, users=3, tabs=2)
    assert result["generator"]["processes"] == 1
    assert "PASS" in run.stdout


def test_loadtest_merges_processes(live_server: Server, tmp_path: Path):
    out = tmp_path / "report.json"
    run = loadtest(
        live_server.url,
        out,
        *("--users", "3", "--tabs", "2", "--duration", "3", "--processes", "2"),
        env=live_server.env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    check_report(result, users=3, tabs=2)
    assert result["generator"]["processes"] == 2


# --- a server that acknowledges writes it never keeps ---------------------------------


class LossyApi:
    """The JSON API contract in memory, except that writes to the key "k0" are acked and dropped."""

    lost: str | None = "k0"

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.ids = count()
        self.refused = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_route("*", "/api/session", self.session)
        app.router.add_route("*", "/api/session/keys/{key}", self.key)
        return app

    def _state(self, request: web.Request) -> dict[str, Any]:
        return self.sessions[request.cookies["sessionid"]]

    def _csrf_ok(self, request: web.Request) -> bool:
        token = request.cookies.get("csrftoken")
        origin = f"http://{request.host}"
        return (
            bool(token)
            and request.headers.get("X-CSRFToken") == token
            and (request.headers.get("Origin") == origin)
        )

    async def page(self, request: web.Request) -> web.Response:
        sid = f"s{next(self.ids)}"
        self.sessions[sid] = {"version": 0, "data": {}}
        response = web.Response(text="<html></html>", content_type="text/html")
        response.set_cookie("csrftoken", f"token-{sid}")
        response.set_cookie("sessionid", sid)
        return response

    async def session(self, request: web.Request) -> web.Response:
        state = self._state(request)
        if request.method == "DELETE":
            if not self._csrf_ok(request):
                self.refused += 1
                return web.json_response({"error": "CSRF"}, status=403)
            state["data"].clear()
            state["version"] += 1
        return web.json_response({"version": state["version"], "data": state["data"]})

    async def key(self, request: web.Request) -> web.Response:
        state, key = self._state(request), request.match_info["key"]
        if request.method == "GET":
            if key not in state["data"]:
                return web.json_response({"error": "missing"}, status=404)
            value = state["data"][key]
            return web.json_response({"key": key, "value": value, "version": state["version"]})
        if not self._csrf_ok(request):
            self.refused += 1
            return web.json_response({"error": "CSRF"}, status=403)
        if request.method == "PUT":
            value = await request.json()
            if key != self.lost:
                state["data"][key] = value
            state["version"] += 1
            return web.json_response({"key": key, "value": value, "version": state["version"]})
        if state["data"].pop(key, None) is None:
            return web.json_response({"error": "missing"}, status=404)
        state["version"] += 1
        return web.json_response({"key": key, "version": state["version"]})


class UnreadableApi(LossyApi):
    """Keeps every write, but answers each session's final GET /api/session with 503."""

    lost = None

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    async def session(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            self.reads[request.cookies["sessionid"]] += 1
            if self.reads[request.cookies["sessionid"]] > 1:
                return web.json_response({"error": "The store is away."}, status=503)
        return await super().session(request)


@contextlib.asynccontextmanager
async def serving(api: LossyApi) -> AsyncIterator[str]:
    server = TestServer(api.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


@pytest.fixture
async def lossy() -> AsyncIterator[tuple[LossyApi, str]]:
    api = LossyApi()
    async with serving(api) as url:
        yield api, url


async def loadtest_beside(url: str, out: Path, *args: str) -> tuple[int | None, str, str]:
    """Run the command in a subprocess, so that this event loop keeps serving it meanwhile."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "manage.py", "loadtest", "--url", url, "--json", str(out), *args),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_loadtest_exits_1_when_an_acknowledged_write_is_lost(
    lossy: tuple[LossyApi, str], tmp_path: Path
):
    api, url = lossy
    out = tmp_path / "report.json"
    args = ("--users", "2", "--tabs", "0", "--keys", "2", "--requests", "40", "--mix", "set=1")
    returncode, stdout, stderr = await loadtest_beside(url, out, *args)
    assert returncode == 1, stdout + stderr
    result = json.loads(out.read_text())
    assert api.refused == 0  # every write carried the CSRF token and same-origin headers
    assert result["requests"]["total"] == 40
    assert result["consistency"]["lost_sets"] == 2  # k0 of each user
    assert result["consistency"]["lost_deletes"] == 0
    assert {(s["kind"], s["key"]) for s in result["consistency"]["samples"]} == {
        ("lost write", "k0")
    }
    assert result["passed"] is False
    assert "acknowledged writes were lost" in stderr


async def test_loadtest_exits_1_when_no_final_read_succeeds(tmp_path: Path):
    api = UnreadableApi()
    out = tmp_path / "report.json"
    args = ("--users", "2", "--tabs", "0", "--keys", "2", "--requests", "20", "--mix", "set=1")
    async with serving(api) as url:
        returncode, stdout, stderr = await loadtest_beside(url, out, *args, "--timeout", "1")
    assert returncode == 1, stdout + stderr
    consistency = json.loads(out.read_text())["consistency"]
    assert consistency["verified_keys"] == consistency["lost_writes"] == 0
    assert (consistency["unread_sessions"], consistency["unverifiable_keys"]) == (2, 4)
    assert "0 of 0 keys checked; 4 keys could not be verified" in stdout
    assert "4 keys could not be verified (4 belong to the 2 sessions whose final read failed)" in (
        stderr
    )


# --- the model and the verdict, without a server ----------------------------------------


def test_model_reports_acked_key_missing_from_server_as_lost():
    result = Consistency()
    model = SessionModel(0, result)
    model.seed(0, {})
    for key, version in (("a", 1), ("b", 2)):
        model.write_started()
        model.set_acked(key, f"{key}-value", version, at=version)
    model.final(2, {"b": "b-value"})
    assert result.lost_sets == 1 and result.lost_writes == 1
    assert result.verified_keys == 2
    assert result.samples[0]["key"] == "a"


def test_model_orders_by_version_not_by_answer_arrival():
    result = Consistency()
    model = SessionModel(0, result)
    model.seed(0, {})
    for _ in range(3):
        model.write_started()
    # Answers arrive out of order: the delete (version 3) before the set it follows.
    model.delete_acked("a", 3, at=1.0)
    model.set_acked("a", "old", 1, at=1.1)
    model.clear_acked(2, {"a": "old", "b": "kept"}, at=1.2)
    model.final(3, {"b": "kept"})
    assert result.lost_writes == 0
    model.final(3, {"a": "old", "b": "kept"})
    assert result.lost_deletes == 1


def test_model_verifies_keys_a_write_without_answer_cannot_hide_a_loss_behind():
    result = Consistency()
    model = SessionModel(0, result)
    model.seed(0, {})
    for _ in range(4):
        model.write_started()
    model.set_acked("a", "acked", 1, at=1.0)
    model.set_acked("b", "acked", 2, at=1.0)
    # Sent after every answer about its key: if it landed, it landed last.
    model.write_unknown("a", "unanswered", sent=2.0)
    model.write_unknown("b", ABSENT, sent=2.0)
    model.final(3, {"a": "unanswered", "b": "acked"})
    assert (result.verified_keys, result.unverifiable_keys, result.lost_writes) == (2, 0, 0)

    # Neither the acked value nor anything an unanswered write wrote: a lost write.
    model.final(3, {"a": "something else", "b": "acked"})
    assert result.lost_sets == 1 and result.unverifiable_keys == 0


def test_model_counts_undecidable_keys_as_unverifiable():
    result = Consistency()
    model = SessionModel(0, result)
    model.seed(0, {"c": "seeded"})
    for _ in range(3):
        model.write_started()
    # Sent before the acked write's answer: either may have landed last.
    model.write_unknown("a", "unanswered", sent=1.0)
    model.set_acked("a", "acked", 1, at=2.0)
    model.write_unknown(None, ABSENT, sent=1.5)  # a clear
    model.final(1, {"a": "unanswered"})
    assert result.lost_writes == 0
    assert result.undecided_keys == result.unverifiable_keys == 1  # a
    assert result.samples[0]["kind"] == "unverifiable" and result.samples[0]["key"] == "a"
    # c is absent, as the unanswered clear, sent after the seed, would leave it.
    assert result.verified_keys == 1
    model.final(1, {"a": "acked"})
    assert result.verified_keys == 3 and result.unverifiable_keys == 1


def test_model_counts_keys_of_a_session_not_read_at_the_end_as_unverifiable():
    result = Consistency()
    model = SessionModel(0, result)
    model.seed(0, {})
    for key, version in (("a", 1), ("b", 2)):
        model.write_started()
        model.set_acked(key, "value", version, at=version)
    model.unread()
    assert (result.unread_sessions, result.unread_keys, result.unverifiable_keys) == (1, 2, 2)
    assert result.verified_keys == result.lost_writes == 0


def test_model_flags_reads_that_contradict_acked_writes():
    result = Consistency()
    model = SessionModel(0, result)
    model.seed(0, {})
    model.write_started()
    model.set_acked("a", "new", 1, at=1.0)
    floor = model.read_started()
    model.read_done(floor, "a", "old", 0)  # older than the acked write: stale
    floor = model.read_started()
    model.read_done(floor, "a", "other", 1)  # right version, wrong value
    floor = model.read_started()
    model.read_done(floor, "a", "new", 1)
    assert (result.stale_reads, result.inconsistent_reads) == (1, 1)


def test_report_fails_on_lost_writes_and_on_error_rate():
    config = Config(users=1, max_error_rate=0.1)
    outcome = Outcome(elapsed=1.0, users=1)
    for _ in range(10):
        outcome.stats.operations["set"].latency.record(0.01)
    assert report.build(config, outcome)["passed"] is True

    outcome.consistency.lost_sets = 1
    built = report.build(config, outcome)
    assert built["passed"] is False
    assert built["failures"] == ["1 acknowledged writes were lost (1 sets, 0 deletes or clears)."]

    outcome.consistency.lost_sets = 0
    outcome.stats.operations["set"].errors["500"] = 2  # 2 of 10: above 10%
    built = report.build(config, outcome)
    assert built["passed"] is False and "error rate" in built["failures"][0]


def render_text(built: dict[str, Any]) -> str:
    out = io.StringIO()
    report.render(built, Console(file=out, width=200, no_color=True))
    return out.getvalue()


def test_report_fails_a_run_whose_keys_could_not_be_verified():
    config = Config(users=1)
    outcome = Outcome(elapsed=1.0, users=1)
    outcome.stats.operations["set"].latency.record(0.01)
    model = SessionModel(0, outcome.consistency)
    model.seed(0, {})
    for _ in range(2):
        model.write_started()
    model.write_unknown("a", "unanswered", sent=1.0)
    model.set_acked("a", "acked", 1, at=2.0)
    model.final(1, {"a": "unanswered"})

    built = report.build(config, outcome)
    assert built["passed"] is False
    assert built["consistency"]["lost_writes"] == 0
    assert built["consistency"]["unverifiable_keys"] == 1
    [failure] = built["failures"]
    assert failure.startswith("1 keys could not be verified (1 hold what a write without")
    assert failure.endswith("so the run cannot show that no acknowledged write was lost.")
    text = render_text(built)
    assert "0 of 0 keys checked; 1 keys could not be verified" in text
    assert "PASS" not in text and "FAIL" in text


def test_report_fails_a_run_that_checked_no_key_after_acked_writes():
    config = Config(users=1)
    outcome = Outcome(elapsed=1.0, users=1)
    outcome.consistency.acked_writes = 5
    built = report.build(config, outcome)
    assert built["passed"] is False
    assert built["failures"] == [
        "No key could be checked although 5 writes were acknowledged, so the run shows "
        "nothing about lost writes."
    ]
    # No writes, nothing to check: nothing to fail on.
    outcome.consistency.acked_writes = 0
    assert report.build(config, outcome)["passed"] is True


def test_report_shows_reconnects_and_fails_on_diverged_tabs():
    config = Config(users=1, tabs=2)
    outcome = Outcome(elapsed=1.0, users=1, tabs=2)
    push = outcome.stats.push
    push.drops["1006"] = 2
    push.reconnects, push.refused = 2, 7
    outcome.consistency.tabs_diverged = 1
    built = report.build(config, outcome)
    assert built["push"]["reconnects"] == 2 and built["push"]["drops"] == {"1006": 2}
    assert built["failures"] == ["1 tabs did not end on their session's final state."]
    assert "2 after 2 dropped sockets (close codes: 1006×2), 7 attempts refused" in render_text(
        built
    )


def test_histogram_percentiles_are_within_one_percent():
    histogram = Histogram()
    for ms in range(1, 1001):
        histogram.record(ms / 1000)
    assert histogram.percentile(50) == pytest.approx(500, rel=0.01)
    assert histogram.percentile(99) == pytest.approx(990, rel=0.01)
    assert histogram.summary()["max"] == 1000
    merged = Histogram()
    merged.merge(histogram)
    merged.merge(histogram)
    assert merged.total == 2000 and merged.percentile(50) == histogram.percentile(50)


def test_mix_parsing_refuses_unknown_operations():
    assert parse_mix("set=3, get=1") == (("set", 3.0), ("get", 1.0))
    with pytest.raises(ConfigError):
        parse_mix("set=1,flush=1")
    with pytest.raises(ConfigError):
        parse_mix("set=0")


def test_progress_ends_with_the_runs_overall_rate(monkeypatch: pytest.MonkeyPatch):
    from live.loadtest import runner
    from live.loadtest.worker import Phase

    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(runner, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    console = Console(file=out, width=200, no_color=True, force_terminal=False)
    with runner.Display(Config(users=1, duration=2), console) as display:
        display.update(Phase.RUNNING, 0, 0)
        display.update(Phase.RUNNING, 100, 0)
        display.update(Phase.RUNNING, 200, 0)
        # Draining and verifying add no requests: the line keeps 200 over 3 s of running.
        display.update(Phase.DRAINING, 200, 0)
        display.update(Phase.DONE, 200, 0)
    last = out.getvalue().strip().splitlines()[-1]
    assert "done" in last and "67/s" in last, last
    assert " 0/s" not in last, last
