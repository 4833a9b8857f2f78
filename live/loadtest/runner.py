"""Run a load test in this process or in several, showing progress, and merge the results.

With --processes N the users are split among N spawned processes, each with
its own event loop. They set up independently, then start at one wall-clock
instant chosen here once all are ready, and report progress through shared
counters (no lock, one writer per slot) that this process reads for the
live line. Histograms and counters come back pickled and are merged.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import signal
import time
from collections import deque
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from multiprocessing.synchronize import Event
from time import perf_counter
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from live.loadtest import worker
from live.loadtest.config import Config
from live.loadtest.tab import SetupError
from live.loadtest.worker import Outcome, Part, Phase

_LABELS = {
    Phase.SETUP: "setting up",
    Phase.READY: "ready",
    Phase.RUNNING: "running",
    Phase.DRAINING: "draining pushes",
    Phase.VERIFYING: "verifying",
    Phase.DONE: "done",
}


class LoadTestError(Exception):
    """The test could not run (server unreachable, a worker crashed); the message says why."""


class Display:
    """The live line: phase, a bar over duration or requests, elapsed, rate, errors."""

    def __init__(self, config: Config, console: Console) -> None:
        self.config = config
        self.progress = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[requests]:>9,} req  {task.fields[rate]:>8,.0f}/s"),
            TextColumn("errors {task.fields[errors]:,}"),
            console=console,
            transient=False,
        )
        total = config.duration if config.requests is None else config.requests
        self.task = self.progress.add_task(
            "setting up", total=total, requests=0, rate=0.0, errors=0
        )
        self.started: float | None = None
        # When the run phase ended: from then on the line shows the run's overall
        # rate, which is what a person reads off the last line.
        self.ended: float | None = None
        # (time, requests) over the last second, for the current rate.
        self.window: deque[tuple[float, int]] = deque()

    def __enter__(self) -> Display:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, phase: Phase, requests: int, errors: int) -> None:
        now = perf_counter()
        if phase >= Phase.RUNNING and self.started is None:
            self.started = now
        window = self.window
        window.append((now, requests))
        while len(window) > 2 and now - window[0][0] > 1.0:
            window.popleft()
        span = now - window[0][0]
        rate = (requests - window[0][1]) / span if span > 0 else 0.0
        if phase > Phase.RUNNING and self.started is not None:
            if self.ended is None:
                self.ended = now
            run_time = self.ended - self.started
            rate = requests / run_time if run_time > 0 else 0.0
        if self.config.requests is not None:
            done: float = requests
        else:
            done = now - self.started if self.started is not None else 0.0
        self.progress.update(
            self.task,
            description=_LABELS[phase],
            completed=done,
            requests=requests,
            rate=rate if phase >= Phase.RUNNING else 0.0,
            errors=errors,
        )


def _cannot_start(config: Config, exc: BaseException) -> str:
    """Why the users could not start, in one sentence."""
    if isinstance(exc, SetupError):
        return f"Could not set up the users: {exc}"
    return f"Could not reach {config.url}: {exc}"


def run(config: Config, console: Console) -> Outcome:
    with Display(config, console) as display:
        if config.processes == 1:
            try:
                return asyncio.run(worker.run(config, worker.split(config)[0], display.update))
            except (SetupError, OSError, aiohttp.ClientError) as exc:
                raise LoadTestError(_cannot_start(config, exc)) from None
        return _run_processes(config, display)


# --- several processes --------------------------------------------------------------

_SLOTS = 3  # per process: phase, requests, errors


def _child(
    config: Config,
    part: Part,
    slot: int,
    shared: SynchronizedArray[int],
    go: Event,
    start_at: Synchronized[float],
    results: multiprocessing.Queue[tuple[str, Any]],
) -> None:
    def progress(phase: Phase, requests: int, errors: int) -> None:
        base = slot * _SLOTS
        shared[base], shared[base + 1], shared[base + 2] = phase, requests, errors

    async def begin() -> float:
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        # Wall clocks agree across processes; perf_counter is ours alone.
        return perf_counter() + (start_at.value - time.time())

    try:
        results.put(("ok", asyncio.run(worker.run(config, part, progress, begin))))
    except KeyboardInterrupt:
        results.put(("error", "Interrupted; no report."))
    except (SetupError, OSError, aiohttp.ClientError) as exc:
        results.put(("error", _cannot_start(config, exc)))
    except BaseException as exc:
        results.put(("error", f"A worker failed: {exc!r}"))


def _run_processes(config: Config, display: Display) -> Outcome:
    context = multiprocessing.get_context("spawn")
    parts = worker.split(config)
    shared = context.Array("q", len(parts) * _SLOTS, lock=False)
    go = context.Event()
    start_at = context.Value("d", 0.0, lock=False)
    results: multiprocessing.Queue[tuple[str, Any]] = context.Queue()
    children = [
        context.Process(
            target=_child,
            args=(config, part, slot, shared, go, start_at, results),
            name=f"loadtest-{slot}",
            daemon=True,
        )
        for slot, part in enumerate(parts)
    ]
    for child in children:
        child.start()
    merged, received, finished = Outcome(), 0, False
    presses = 0

    def interrupted(signum: int, frame: object) -> None:
        # Ctrl-C reaches the workers too, and they stop and report; a second one aborts.
        nonlocal presses
        presses += 1
        if presses > 1:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        while received < len(children):
            try:
                kind, payload = results.get(timeout=0.2)
            except queue.Empty:
                pass
            else:
                if kind == "error":
                    raise LoadTestError(payload)
                merged.merge(payload)
                received += 1
                continue
            phases = [Phase(shared[i * _SLOTS]) for i in range(len(children))]
            if not go.is_set() and all(p >= Phase.READY for p in phases):
                # A moment ahead, so that every process is waiting when it comes.
                start_at.value = time.time() + 0.05
                go.set()
            display.update(
                min(phases),
                sum(shared[i * _SLOTS + 1] for i in range(len(children))),
                sum(shared[i * _SLOTS + 2] for i in range(len(children))),
            )
            if any(not c.is_alive() and c.exitcode for c in children):
                raise LoadTestError("A worker process died; run with --processes 1 to see why.")
        display.update(Phase.DONE, merged.stats.requests, merged.stats.errors)
        finished = True
        return merged
    finally:
        signal.signal(signal.SIGINT, previous)
        for child in children:
            # After a failure the others may wait for a start that never comes.
            child.join(timeout=5 if finished else 0)
            if child.is_alive():
                child.terminate()
                child.join()
