"""`manage.py loadtest --scenario` on a real daphne: the examples, a lost write, bad scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from live.loadtest.scenario import Scenario, ScenarioError, between, load, task
from tests.conftest import ROOT, Server


def run_scenario(
    site: Server, scenario: str, out: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    command = [
        *("manage.py", "loadtest", "--url", site.url, "--scenario", scenario),
        *("--users", "2", "--tabs", "2", "--duration", "2", "--json", str(out), *args),
    ]
    run = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=site.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(out.read_text()) if out.exists() else {}
    return run, result


def write_scenario(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "my_scenario.py"
    path.write_text(textwrap.dedent(body))
    return path


# Each user picks its tasks from a generator seeded by --seed and its number. With seed 18,
# user 0 logs out in its first task and user 1 writes in its first three, so every step of
# the login example runs even when a slow machine leaves time for only a few tasks.
SEED = ("--seed", "18")


@pytest.mark.parametrize(
    ("scenario", "writing_steps", "other_steps"),
    [
        ("color", {"GET /color/", "forget color"}, set()),
        ("cart", {"POST /pitfalls/cart/", "POST /pitfalls/append/"}, set()),
        ("login", {"PUT note", "log out"}, {"log in"}),
    ],
)
def test_scenario_examples_report_their_steps_and_lose_no_write(
    site: Server, tmp_path: Path, scenario: str, writing_steps: set[str], other_steps: set[str]
):
    run, result = run_scenario(site, scenario, tmp_path / "report.json", *SEED)
    assert run.returncode == 0, run.stdout + run.stderr
    steps = result["steps"]
    assert set(steps) == writing_steps | other_steps
    for name, step in steps.items():
        assert step["count"] > 0, name
        assert step["errors"] == {}, name
        assert step["push"]["missed"] == 0, name
        latency = step["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"], name
    for name in writing_steps:
        assert steps[name]["push"]["deliveries"] > 0, name
    assert result["operations"] == {}
    consistency = result["consistency"]
    assert consistency["verified_keys"] > 0
    assert consistency["lost_writes"] == consistency["unverifiable_keys"] == 0
    assert consistency["tabs_diverged"] == 0
    assert result["push"]["missed"] == 0
    assert "PASS" in run.stdout


@pytest.mark.parametrize("scenario", ["color", "cart", "login"])
def test_scenario_examples_on_djangos_db_engine_end_with_every_tab_on_the_final_state(
    django_site: Server, tmp_path: Path, scenario: str
):
    # Django's engines version a snapshot by when it was read: tabs are
    # compared with the final state by their data.
    run, result = run_scenario(django_site, scenario, tmp_path / "report.json", *SEED)
    assert run.returncode == 0, run.stdout + run.stderr
    consistency = result["consistency"]
    assert consistency["verified_keys"] > 0
    assert consistency["lost_writes"] == 0
    assert consistency["tabs_diverged"] == 0
    assert result["push"]["deliveries"] > 0


def test_scenario_declared_write_the_server_never_made_is_a_lost_write(
    site: Server, tmp_path: Path
):
    path = write_scenario(
        tmp_path,
        """
        from live.loadtest.scenario import Scenario, task

        class Liar(Scenario):
            @task
            async def pick(self):
                # The view stores "green": the declared "blue" is never written.
                await self.client.get("/color/", writes={"favorite_color": "blue"})
        """,
    )
    run, result = run_scenario(site, str(path), tmp_path / "report.json")
    assert run.returncode == 1, run.stdout + run.stderr
    assert result["consistency"]["lost_writes"] == 2  # one key per user
    assert result["steps"]["GET /color/"]["push"]["missed"] > 0
    assert any("acknowledged writes were lost" in f for f in result["failures"])
    assert "lost write" in run.stdout


BAD_STEPS = """
from live.loadtest.scenario import Scenario, step, task

class Bad(Scenario):
    @task
    async def fine(self):
        await self.client.get("/api/session")

    @task
    async def raises(self):
        with step("compute"):
            raise ValueError("no such product")

    @task
    async def missing(self):
        await self.client.get("/no-such-page/")

    @task
    async def forged(self):
        await self.client.post("/pitfalls/cart/", headers={"X-CSRFToken": "forged"})
"""


def test_scenario_bad_steps_are_errors_with_one_reason_per_kind_and_the_run_goes_on(
    site: Server, tmp_path: Path
):
    path = write_scenario(tmp_path, BAD_STEPS)
    run, result = run_scenario(site, str(path), tmp_path / "report.json", "--max-error-rate", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    steps = result["steps"]
    assert steps["GET /api/session"]["count"] > 0
    assert steps["GET /api/session"]["errors"] == {}
    assert set(steps["compute"]["errors"]) == {"ValueError"}
    assert steps["compute"]["reasons"]["ValueError"].startswith(
        "ValueError: no such product (my_scenario.py:"
    )
    assert set(steps["GET /no-such-page/"]["errors"]) == {"404"}
    assert steps["GET /no-such-page/"]["reasons"]["404"] == (
        "GET /no-such-page/ answered 404 Not Found"
    )
    assert set(steps["POST /pitfalls/cart/"]["errors"]) == {"csrf"}
    assert "CSRF" in steps["POST /pitfalls/cart/"]["reasons"]["csrf"]
    errors = sum(sum(s["errors"].values()) for s in steps.values())
    assert result["requests"]["errors"] == errors > 3
    # Each kind once in the printed report, however often it happened.
    for reason in ("answered 404 Not Found", "was refused for its CSRF token", "no such product"):
        assert run.stdout.count(reason) == 1, run.stdout


def test_scenario_errors_above_max_error_rate_fail_the_run(site: Server, tmp_path: Path):
    path = write_scenario(tmp_path, BAD_STEPS)
    run, result = run_scenario(site, str(path), tmp_path / "report.json")
    assert run.returncode == 1
    assert any("--max-error-rate" in failure for failure in result["failures"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("import no_such_module_here\n", "does not import: ModuleNotFoundError"),
        ("def broken(:\n", "does not import: SyntaxError"),
        ("x = 1\n", "defines no Scenario subclass"),
    ],
)
def test_scenario_that_does_not_load_is_one_sentence(tmp_path: Path, body: str, reason: str):
    path = tmp_path / "broken.py"
    path.write_text(body)
    run = subprocess.run(
        [sys.executable, "manage.py", "loadtest", "--scenario", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    message = run.stderr.strip()
    assert reason in message
    assert message.startswith("CommandError: Scenario") and message.count("\n") == 0


def test_scenario_load_finds_modules_classes_and_examples(tmp_path: Path):
    assert load("color").__name__ == "Color"
    assert load("live.loadtest.scenarios.cart").__name__ == "Cart"
    assert load("live.loadtest.scenarios.login:Login").__name__ == "Login"
    assert load("live.loadtest.scenarios.login.Login").__name__ == "Login"
    with pytest.raises(ScenarioError, match="no Scenario class named 'Nope'"):
        load("color:Nope")
    with pytest.raises(ScenarioError, match="does not import"):
        load("no.such.module")


def test_scenario_tasks_weights_and_think_time():
    class Shop(Scenario):
        wait = between(1, 2)

        @task(3)
        async def browse(self) -> None: ...

        @task
        async def buy(self) -> None: ...

    assert dict(Shop.tasks) == {"browse": 3, "buy": 1}
    import random

    shop = Shop(client=None, index=7, rng=random.Random(0))  # type: ignore[arg-type]
    assert 1 <= shop.think_time() <= 2
    assert shop.username == "user7"
