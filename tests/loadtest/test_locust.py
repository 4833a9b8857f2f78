"""LiveUser in Locust's distributed mode: a master and two workers against a real daphne."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, Server, free_port

# Looked up, never imported: importing locust patches the whole process for
# gevent, and every other test in this run would then run on gevent's sockets.
if importlib.util.find_spec("locust") is None:
    pytest.skip(
        "locust is not installed (pip install 'django-live-sessions[locust]')",
        allow_module_level=True,
    )

COLOR = """
from live.loadtest.locust import live_user

ColorUser = live_user("color", tabs=2)
"""

LIAR = """
from live.loadtest.locust import LiveUser
from live.loadtest.scenario import Scenario, task


class Liar(Scenario):
    @task
    async def pick(self):
        # The view stores "green": the declared "blue" is never written.
        await self.client.get("/color/", writes={"favorite_color": "blue"})


class LiarUser(LiveUser):
    scenario = Liar
"""


@dataclass
class Run:
    """The master's exit status, every process's output, and the master's CSV tables."""

    status: int
    output: str
    stats: list[dict[str, str]]
    failures: list[dict[str, str]]

    def rows(self, kind: str) -> dict[str, dict[str, str]]:
        """The stats rows of one request type, by name."""
        return {row["Name"]: row for row in self.stats if row["Type"] == kind}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as table:
        return list(csv.DictReader(table))


def run_distributed(site: Server, tmp_path: Path, locustfile: str) -> Run:
    """Run a master and two workers for a few seconds."""
    path = tmp_path / "locustfile.py"
    path.write_text(textwrap.dedent(locustfile))
    port, prefix = free_port(), tmp_path / "run"
    locust = [sys.executable, "-m", "locust", "-f", str(path)]
    logs = [(tmp_path / f"{name}.log").open("wb") for name in ("master", "worker1", "worker2")]
    master = subprocess.Popen(
        [
            *locust,
            *("--master", "--master-bind-port", str(port), "--expect-workers", "2"),
            *("--headless", "-u", "4", "-r", "4", "-t", "5s"),
            *("--host", site.url, "--csv", str(prefix)),
        ],
        cwd=ROOT,
        env=site.env,
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    workers = [
        subprocess.Popen(
            [*locust, "--worker", "--master-port", str(port)],
            cwd=ROOT,
            env=site.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for log in logs[1:]
    ]
    processes = [master, *workers]
    try:
        for process in processes:
            process.wait(timeout=90)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        for log in logs:
            log.close()
    output = "\n".join(log.read_text() for log in tmp_path.glob("*.log"))
    assert all(w.returncode == 0 for w in workers), output
    stats = read_csv(Path(f"{prefix}_stats.csv"))
    failures = read_csv(Path(f"{prefix}_failures.csv"))
    return Run(master.returncode, output, stats, failures)


def test_locust_master_and_workers_run_a_scenario_with_push_latency_and_no_lost_write(
    site: Server, tmp_path: Path
):
    run = run_distributed(site, tmp_path, COLOR)
    assert run.status == 0, run.output
    gets = run.rows("GET")
    assert int(gets["GET /color/"]["Request Count"]) > 0
    assert gets["GET /color/"]["Failure Count"] == "0"
    pushes = run.rows("PUSH")
    assert int(pushes["GET /color/"]["Request Count"]) > 0
    assert all(row["Failure Count"] == "0" for row in pushes.values())
    assert run.rows("LOST") == {}
    assert run.failures == [], run.failures


def test_locust_declared_write_the_server_never_made_is_a_lost_failure(
    site: Server, tmp_path: Path
):
    run = run_distributed(site, tmp_path, LIAR)
    assert run.status == 1, run.output  # Locust's exit status when requests failed
    lost = run.rows("LOST")
    # One key per user, named after the step that declared it.
    assert lost["GET /color/"]["Failure Count"] == "4"
    failures = [row for row in run.failures if row["Method"] == "LOST"]
    assert len(failures) == 1
    assert 'favorite_color: declared "blue", found "green"' in failures[0]["Error"]
    assert run.rows("GET")["GET /color/"]["Failure Count"] == "0"
    assert int(run.rows("PUSH")["GET /color/"]["Failure Count"]) > 0
