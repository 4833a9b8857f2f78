"""Is this checkout faster or slower than another revision? wrk on both, alternating.

Usage: python scripts/bench_compare.py REV [REV ...] [--rounds 5] [--seconds 4]

Each revision is checked out in a temporary git worktree next to this one and
served, like this checkout, by daphne with the benchmark settings
(scripts/bench/settings.py, BENCH_STACK=live: the live engine and its
middleware only) on a throwaway SQLite database. The servers take turns, in
alternating order, for the write view (/bench/write: aget, aset, save and
publish) and the read view (/bench/read), with `wrk -t1 -cN -dS` on one
session. With two cores, daphne runs on core 0 and wrk on core 1.

It prints each server's median requests per second and its ratio to the first
revision given: the baseline, measured in the same run. A ratio is the figure
to read; the machine's speed drifts between runs, the ratio much less.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("/bench/write", "/bench/read")


def pin(core: int) -> list[str]:
    return (
        ["taskset", "-c", str(core)]
        if (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
        else []
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(checkout: Path, tmp: Path, n: int) -> tuple[subprocess.Popen[bytes], int, str]:
    """Start daphne on `checkout`; the process, its port and a session cookie holding k0."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scripts.bench.settings",
        "BENCH_STACK": "live",
        "DATABASE_URL": f"sqlite:///{tmp}/db{n}.sqlite3",
        "DJANGO_DEBUG": "0",
        "DJANGO_SSL_REDIRECT": "0",
        "DJANGO_SECRET_KEY": "compare-" + "k" * 50,
        "PYTHONPATH": str(checkout),
    }
    env.pop("REDIS_URL", None)
    migrate = {**env, "DJANGO_SETTINGS_MODULE": "asgi_config.settings"}
    manage = [sys.executable, "manage.py", "migrate", "--verbosity", "0"]
    subprocess.run(manage, cwd=checkout, env=migrate, check=True)
    port = free_port()
    daphne = [sys.executable, "-m", "daphne", "-p", str(port), "scripts.bench.asgi:application"]
    process = subprocess.Popen(
        [*pin(0), *daphne],
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"daphne on {checkout} does not start") from None
            time.sleep(0.1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/new") as response:
        found = re.search(r"sessionid=([^;]+)", response.headers["Set-Cookie"])
    assert found is not None
    return process, port, found.group(1)


def wrk(port: int, cookie: str, path: str, connections: int, seconds: int) -> float:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "-H",
        f"Cookie: sessionid={cookie}",
    ]
    done = subprocess.run(
        [*pin(1), *command, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert found is not None, done.stdout
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="+", help="the baseline first, then others")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed on the PATH (apt-get install wrk).")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        checkouts: list[tuple[str, Path]] = []
        for n, revision in enumerate(args.revisions):
            tree = tmp / f"tree{n}"
            subprocess.run(
                ["git", "worktree", "add", "-q", "--detach", str(tree), revision],
                cwd=ROOT,
                check=True,
            )
            checkouts.append((revision, tree))
        checkouts.append(("this checkout", ROOT))
        servers = []
        try:
            for n, (name, tree) in enumerate(checkouts):
                servers.append((name, *serve(tree, tmp, n)))
            for _name, _process, port, cookie in servers:
                wrk(port, cookie, PATHS[0], args.connections, 1)  # warm-up
            found: dict[tuple[str, str], list[float]] = {}
            for round_ in range(args.rounds):
                order = servers if round_ % 2 == 0 else servers[::-1]
                for path in PATHS:
                    for name, _process, port, cookie in order:
                        rate = wrk(port, cookie, path, args.connections, args.seconds)
                        found.setdefault((name, path), []).append(rate)
        finally:
            for _name, process, _port, _cookie in servers:
                process.terminate()
                process.wait(10)
            for _name, tree in checkouts[:-1]:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
                )
    baseline = checkouts[0][0]
    for path in PATHS:
        base = statistics.median(found[(baseline, path)])
        for name, _tree in checkouts:
            rates = found[(name, path)]
            median = statistics.median(rates)
            spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
            print(f"{path:13} {name:16} {median:8,.0f} req/s ({spread})  ratio {median / base:.3f}")


if __name__ == "__main__":
    main()
