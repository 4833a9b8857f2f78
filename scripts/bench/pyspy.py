"""Optional profile of a server during a run, with py-spy (pip install py-spy)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

Shares = list[tuple[str, float]]
# Frames where a thread waits rather than works; py-spy cannot always tell.
WAITING = ("EpollSelector.select", "Condition.wait", "Thread._wait_for_tstate_lock", "_worker ")
# Frames under which everything runs (thread and loop starters): no news in an inclusive list.
ROOTS = (
    "<module> ",
    "Thread._bootstrap",
    "Thread.run ",
    "_worker ",
    "_WorkItem.run ",
    "CommandLineInterface.",
    "Server.run (daphne",
    "AsyncioSelectorReactor.run ",
    "BaseEventLoop.run_forever ",
    "BaseEventLoop._run_once ",
    "Handle._run ",
)


def available() -> str | None:
    return shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, gil: bool) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds` into collapsed stacks at `out`.

    py-spy pauses the server for each sample (100 a second), which slows it
    by a fifth or so but keeps the stacks consistent. With `gil`, only the
    thread holding the GIL is sampled: the Python work itself, without threads
    that merely wait for the GIL (which py-spy otherwise counts as busy), but
    also without C work that releases it (SQLite).
    """
    cmd = [available() or "py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds))]
    cmd += ["--rate", "100", "--format", "raw", "--output", str(out), *(["--gil"] if gil else [])]
    out.unlink(missing_ok=True)
    with out.with_suffix(".log").open("wb") as log:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)


def _written(out: Path) -> bool:
    return out.exists() and out.stat().st_size > 0


async def finish(spy: subprocess.Popen[bytes], out: Path) -> bool:
    """Wait for py-spy to exit and have written `out`; False (and why) if it did not."""
    for _ in range(300):
        if spy.poll() is not None and _written(out):
            return True
        await asyncio.sleep(0.1)
    print(f"py-spy ended with {spy.poll()} and wrote nothing; see {out.with_suffix('.log')}")
    return False


def _function(frame: str) -> str:
    """`name (path:line)` -> `name (path)`: a function's lines count as one."""
    return re.sub(r":\d+\)$", ")", frame)


def _package(frame: str) -> str:
    match = re.search(r"\(([^()]*)\)$", frame)
    path = match[1] if match else "?"
    return path.split("/", 1)[0] if "/" in path else path


def top(raw: Path, n: int = 15) -> dict[str, Shares]:
    """Where the busy samples are: top functions by self and inclusive samples, and by package."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_function(frame) for frame in stack.split(";")]
        if frames[-1].startswith(WAITING):
            continue
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        packages[_package(frames[-1])] += samples
        for frame in set(frames):
            if not frame.startswith(ROOTS):
                inclusive[frame] += samples

    def share(counter: Counter[str]) -> Shares:
        return [(name, 100 * c / max(total, 1)) for name, c in counter.most_common(n)]

    return {"self": share(own), "inclusive": share(inclusive), "packages": share(packages)}
