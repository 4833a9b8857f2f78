"""The machine under the benchmarks: what it is, core pinning, and who else is using it."""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVER_CORE, CLIENT_CORE = 0, 1
# Other processes' CPU (% of a core) worth a note.
BUSY_PCT = 10.0


def pinning() -> bool:
    """Server and load on different cores, when there are two and taskset."""
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if pinning() else []


def pin_self() -> None:
    """Put this process (the clients, and wrk through taskset) on the load core."""
    if pinning():
        os.sched_setaffinity(0, {CLIENT_CORE})


def busy_cpu() -> float:
    """CPU seconds used so far by everything on the machine, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this process and its finished children (wrk, py-spy)."""
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def revision() -> str:
    """The commit measured, and whether the server's code differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "live", "dashboard", "asgi_config", "templates")
    return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"


def environment(label: str) -> dict[str, Any]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    names = ("Django", "daphne", "channels", "Twisted", "aiohttp")
    return {
        "nproc": os.cpu_count(),
        "cpu": models[0] if models else platform.processor(),
        "python": platform.python_version(),
        **{name: metadata.version(name) for name in names},
        "pinned": pinning(),
        "code": label or revision(),
    }


async def settle(cpu_seconds: Callable[[], float], limit: float = 15.0) -> None:
    """Wait until a server is idle (its queued events have drained), at most `limit` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds()
        await asyncio.sleep(0.5)
        if cpu_seconds() - before <= 0.02:
            return


async def quiet(limit: float) -> float:
    """Wait, at most `limit` s, until the rest of the machine uses under BUSY_PCT of a core.

    Returns the share of a core that it used last. Our servers idle meanwhile.
    """
    deadline = time.monotonic() + limit
    while True:
        busy, own, t0 = busy_cpu(), own_cpu(), time.time()
        await asyncio.sleep(0.5)
        other = busy_cpu() - busy - (own_cpu() - own)
        share = 100 * other / (time.time() - t0)
        if share <= BUSY_PCT or time.monotonic() >= deadline:
            return share
