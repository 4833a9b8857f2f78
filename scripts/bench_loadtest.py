"""How close does `manage.py loadtest` get to wrk on the same endpoint, and at what CPU cost?

Usage: python scripts/bench_loadtest.py [--rounds 3] [--seconds 5] [--connections 32]
                                        [--scenario]

It serves the project with daphne on a free port and a throwaway, migrated
SQLite database, then alternates rounds of wrk and of the load tester against
GET /api/session/keys/k0 of a session that holds k0, with the same number of
connections: `wrk -t1 -cN` with the session cookie in -H, and the load tester
in closed loop with N users, no tabs, one request in flight each and
`--mix get=1 --keys 1 --prefill` (each user its own session holding k0).
With two cores or more, daphne runs on core 0 and the load generators on core
1 (taskset), so that they do not steal each other's CPU.

It prints each round's requests per second, the ratio loadtest / wrk (1.0
means the tester is not the bottleneck) and the tester's CPU: during the
measured phase (from its report) and for the whole process (getrusage of the
child, start-up included).

With --scenario it measures a scenario instead: one task of one GET step
(GET /bench/hello, a view that does not touch the session) against daphne
with the benchmark settings (scripts.bench.settings, the project's own
middleware: the site stack), and
alternates wrk, `manage.py loadtest --scenario` (N users, no tabs) and
Locust's FastHttpUser (N users, no wait, headless, one process), each for
the same seconds; wrk and Locust send one session's cookie, each of the
tester's users its own. It prints the tester's requests per second as a
ratio to wrk's, and its CPU seconds per request as a ratio to Locust's:
while measuring (the tester's report; Locust's getrusage between its
test_start and test_stop events), the goal's figure, and for the whole
processes (getrusage of the children, start-up included). Goals: 0.95 or
more, and 0.5 or less.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_session import session_cookie  # noqa: E402

from tests.conftest import free_port, migrate, server_env, wait_for_port  # noqa: E402

VALUE_SIZE = 64
KEY_PATH = "/api/session/keys/k0"
# The scenario mode's endpoint: a view of the benchmark settings that does not touch the session.
HELLO_PATH = "/bench/hello"
SCENARIO = f"""
from live.loadtest.scenario import Scenario, task


class Hello(Scenario):
    @task
    async def hello(self) -> None:
        await self.client.get("{HELLO_PATH}")
"""
LOCUSTFILE = f"""
import json
import os
import resource

from locust import FastHttpUser, constant, events, task

COOKIE = {{"Cookie": os.environ["BENCH_COOKIE"]}}
_cpu = {{}}


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@events.test_start.add_listener
def _started(**_):
    _cpu["start"] = _cpu_seconds()


@events.test_stop.add_listener
def _stopped(**_):
    with open(os.environ["BENCH_CPU_OUT"], "w") as out:
        json.dump({{"cpu_s": _cpu_seconds() - _cpu["start"]}}, out)


class Hello(FastHttpUser):
    wait_time = constant(0)

    @task
    def hello(self) -> None:
        self.client.get("{HELLO_PATH}", headers=COOKIE)
"""


def pinned(core: int | None, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if core is not None else command


@contextmanager
def daphne(core: int | None, **serving: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Serve the project; `serving` adds to daphne's environment only (other settings)."""
    with tempfile.TemporaryDirectory() as tmp:
        # As deployed, minus TLS: no per-query debug bookkeeping, no redirect to
        # HTTPS. The tester sends Secure cookies to loopback, as browsers do.
        env = server_env(Path(tmp), DJANGO_DEBUG="0", DJANGO_SSL_REDIRECT="0")
        migrate(env)
        port = free_port()
        server = subprocess.Popen(
            pinned(
                core,
                [
                    str(Path(sys.executable).parent / "daphne"),
                    "-p",
                    str(port),
                    "-b",
                    "127.0.0.1",
                    "asgi_config.asgi:application",
                ],
            ),
            cwd=ROOT,
            env=env | serving,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "daphne.log", "wb"),  # noqa: SIM115
        )
        try:
            wait_for_port(port)
            yield f"http://127.0.0.1:{port}", env
        finally:
            server.terminate()
            server.wait(10)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str, cookie: str, args: argparse.Namespace, core: int | None, path: str = KEY_PATH
) -> float:
    output = subprocess.run(
        pinned(
            core,
            [
                "wrk",
                "-t1",
                f"-c{args.connections}",
                f"-d{args.seconds}s",
                *(("-H", f"Cookie: {cookie}") if cookie else ()),
                url + path,
            ],
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"wrk got errors:\n{output}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]


def run_loadtest(
    url: str, env: dict[str, str], args: argparse.Namespace, core: int | None
) -> tuple[float, float, float, float]:
    """Return (requests/s, CPU % of a core while measuring, CPU seconds of the process, wall)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable,
            "manage.py",
            "loadtest",
            "--url",
            url,
            "--json",
            out.name,
            "--users",
            str(args.connections),
            "--tabs",
            "0",
            "--concurrency",
            "1",
            "--mix",
            "get=1",
            "--keys",
            "1",
            "--prefill",
            "--value-size",
            str(VALUE_SIZE),
            "--duration",
            str(args.seconds),
        ]
        before, started = children_cpu(), time.monotonic()
        run = subprocess.run(
            pinned(core, command), cwd=ROOT, env=env, capture_output=True, text=True
        )
        wall, cpu = time.monotonic() - started, children_cpu() - before
        if run.returncode:
            raise SystemExit(f"loadtest failed:\n{run.stdout}\n{run.stderr}")
        report = json.loads(Path(out.name).read_text())
    return (report["requests"]["rate"], report["generator"]["cpu_percent_of_one_core"], cpu, wall)


def run_scenario(
    url: str, env: dict[str, str], args: argparse.Namespace, core: int | None, scenario: Path
) -> tuple[float, float, float]:
    """Return requests/s and CPU seconds per request, while measuring and for the process."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            *(sys.executable, "manage.py", "loadtest", "--url", url, "--json", out.name),
            *("--scenario", str(scenario), "--users", str(args.connections), "--tabs", "0"),
            *("--duration", str(args.seconds)),
        ]
        before = children_cpu()
        run = subprocess.run(
            pinned(core, command), cwd=ROOT, env=env, capture_output=True, text=True
        )
        cpu = children_cpu() - before
        if run.returncode:
            raise SystemExit(f"loadtest --scenario failed:\n{run.stdout}\n{run.stderr}")
        report = json.loads(Path(out.name).read_text())
    requests = report["requests"]["total"]
    return report["requests"]["rate"], report["generator"]["cpu_s"] / requests, cpu / requests


def run_locust(
    url: str, cookie: str, args: argparse.Namespace, core: int | None, locustfile: Path
) -> tuple[float, float, float]:
    """The same three figures for Locust's FastHttpUser, one process, no wait time."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix, cpu_out = str(Path(tmp) / "run"), Path(tmp) / "cpu.json"
        command = [
            *(sys.executable, "-m", "locust", "-f", str(locustfile), "--headless"),
            *("-u", str(args.connections), "-r", str(args.connections)),
            *("-t", f"{args.seconds}s", "--host", url, "--csv", prefix, "--only-summary"),
        ]
        env = os.environ | {"BENCH_COOKIE": cookie, "BENCH_CPU_OUT": str(cpu_out)}
        before = children_cpu()
        run = subprocess.run(
            pinned(core, command), cwd=ROOT, env=env, capture_output=True, text=True
        )
        cpu = children_cpu() - before
        if run.returncode:
            raise SystemExit(f"locust failed:\n{run.stdout}\n{run.stderr}")
        with open(prefix + "_stats.csv") as table:
            total = next(row for row in csv.DictReader(table) if row["Name"] == "Aggregated")
        measured = json.loads(cpu_out.read_text())["cpu_s"]
    requests = int(total["Request Count"])
    return float(total["Requests/s"]), measured / requests, cpu / requests


def scenario_rounds(
    args: argparse.Namespace, server_core: int | None, load_core: int | None
) -> None:
    bench = {"DJANGO_SETTINGS_MODULE": "scripts.bench.settings", "BENCH_STACK": "site"}
    with tempfile.TemporaryDirectory() as tmp, daphne(server_core, **bench) as (url, env):
        scenario, locustfile = Path(tmp) / "hello_scenario.py", Path(tmp) / "locustfile.py"
        scenario.write_text(SCENARIO)
        locustfile.write_text(LOCUSTFILE)
        # Every generator sends the same kind of request: a session's cookie to a view
        # that does not read it (the tester's users each have their own session).
        cookie = session_cookie(url, "x" * (VALUE_SIZE - 2))
        rates, cpus, wholes = [], [], []
        for round_ in range(1, args.rounds + 1):
            wrk_rate = 0.0
            rate = cpu = whole = locust_rate = locust_cpu = locust_whole = 0.0
            # The server's speed drifts within a round too: each round starts with
            # the next generator, so none always runs first.
            for turn in range(3):
                which = (round_ - 1 + turn) % 3
                if which == 0:
                    wrk_rate = run_wrk(url, cookie, args, load_core, HELLO_PATH)
                elif which == 1:
                    rate, cpu, whole = run_scenario(url, env, args, load_core, scenario)
                else:
                    locust_rate, locust_cpu, locust_whole = run_locust(
                        url, cookie, args, load_core, locustfile
                    )
            rates.append(rate / wrk_rate)
            cpus.append(cpu / locust_cpu)
            wholes.append(whole / locust_whole)
            print(
                f"round {round_}: wrk {wrk_rate:7.1f} req/s | loadtest {rate:7.1f} req/s, "
                f"ratio {rate / wrk_rate:.2f} | Locust {locust_rate:7.1f} req/s | CPU per "
                f"request while measuring: loadtest {cpu * 1e6:.0f} us, Locust "
                f"{locust_cpu * 1e6:.0f} us, ratio {cpu / locust_cpu:.2f}; whole processes: "
                f"{whole * 1e6:.0f} us and {locust_whole * 1e6:.0f} us, ratio "
                f"{whole / locust_whole:.2f}"
            )
    print(
        f"median: throughput loadtest/wrk {statistics.median(rates):.2f} (goal >= 0.95), "
        f"CPU per request loadtest/Locust {statistics.median(cpus):.2f} while measuring "
        f"(goal <= 0.5), {statistics.median(wholes):.2f} for the whole processes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--scenario", action="store_true", help="a one-step scenario against wrk and Locust"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    pin = bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2
    server_core, load_core = (0, 1) if pin else (None, None)
    print(
        f"cores: {os.cpu_count()}, " + ("daphne on core 0, load on core 1" if pin else "unpinned")
    )
    if args.scenario:
        scenario_rounds(args, server_core, load_core)
        return
    with daphne(server_core) as (url, env):
        cookie = session_cookie(url, "x" * (VALUE_SIZE - 2))
        wrk_rates, lt_rates = [], []
        for round_ in range(1, args.rounds + 1):
            wrk_rate = run_wrk(url, cookie, args, load_core)
            rate, cpu_percent, cpu_s, wall = run_loadtest(url, env, args, load_core)
            wrk_rates.append(wrk_rate)
            lt_rates.append(rate)
            print(
                f"round {round_}: wrk {wrk_rate:8.1f} req/s | loadtest {rate:8.1f} req/s, "
                f"ratio {rate / wrk_rate:.2f}, CPU {cpu_percent:.0f}% of a core while measuring, "
                f"{cpu_s:.2f} s for the whole process ({100 * cpu_s / wall:.0f}% over {wall:.1f} s)"
            )
    ratio = statistics.median(lt / w for lt, w in zip(lt_rates, wrk_rates, strict=True))
    print(
        f"median: wrk {statistics.median(wrk_rates):.1f} req/s, "
        f"loadtest {statistics.median(lt_rates):.1f} req/s, ratio loadtest/wrk {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
