"""The benchmark suite of the performance issue: throughput, push latency, idle tabs, lost writes.

    python scripts/bench/run.py [--rounds 3] [--duration 5] [--connections 32]
                                [--quick] [--json PATH] [--profile DIR] [--strict]

It starts its own daphne processes (each with a throwaway migrated SQLite
file) pinned to core 0, and runs wrk and its WebSocket clients on core 1.
Throughput runs alternate: each round runs every configuration once, in
order; the table shows medians, as ratios to the bare async Django view of
this same run. See docs/performance.md for the method.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import load
import machine
import pyspy
import report
import server
import services
import tabs

DJANGO_APP = "scripts.bench.asgi:application"
BENCH_SETTINGS = "scripts.bench.settings"
PROBE = 64  # concurrent writes of distinct keys to one session, after each write run
SESSIONS = 100  # sessions that the idle tabs and the 1,000-tab push run spread over


@dataclass(frozen=True)
class Config:
    what: str
    stack: str
    path: str
    write: bool = False
    connections: int | None = None  # None: --connections
    goal: float | None = None  # the least ratio to the bare view that the issue asks for


CONFIGS = [
    Config("raw ASGI hello on daphne (the ceiling)", "raw", "/"),
    Config("bare async Django view, no middleware", "bare", "/bench/hello"),
    # What any cookie-based session costs a response before the engine does
    # anything: the cookie and the Vary header, as the middleware sets them.
    Config("bare view + session cookie and Vary, no session", "bare", "/bench/cookie"),
    Config("stock db engine (SQLite): aget", "db", "/bench/read"),
    Config("stock db engine (SQLite): aget+aset", "db", "/bench/write", write=True),
    Config("stock cache engine (locmem): aget+aset", "cache", "/bench/write", write=True),
    Config("live engine: read (aget)", "live", "/bench/read", goal=0.95),
    Config(
        "live engine: write (aget+aset+save+publish)", "live", "/bench/write", write=True, goal=0.85
    ),
    Config(
        "live engine: write, 64 connections", "live", "/bench/write", write=True, connections=64
    ),
    # The same views served as the project serves them: through its own
    # handler, which lends each request a reused thread (asgi_config.handler).
    # The goals hold these to the same bare view: what a user of the product
    # gets, against what a bare async Django view gives.
    Config("bare view, the project's ASGI handler", "bare-handler", "/bench/hello"),
    Config(
        "live engine: read, the project's ASGI handler", "live-handler", "/bench/read", goal=0.95
    ),
    Config(
        "live engine: write, the project's ASGI handler",
        "live-handler",
        "/bench/write",
        write=True,
        goal=0.85,
    ),
    # The scale-out engines, when this machine runs PostgreSQL and Redis.
    Config("live engine on PostgreSQL: write", "live-pg", "/bench/write", write=True),
    Config("live Redis engine, Redis layer: write", "live-redis", "/bench/write", write=True),
]
BASELINE = CONFIGS[1].what
LIVE_WRITE = next(c for c in CONFIGS if c.stack == "live" and c.write and c.connections is None)
LIVE_STACKS = ("live", "live-handler", "live-pg", "live-redis")
# Stacks served through the project's handler: the stack of the same name without it.
ON_PROJECT_HANDLER = {"bare-handler": "bare", "live-handler": "live"}


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tabs", type=int, default=1000, help="idle tabs, over 100 sessions")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measure")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, fewer writes")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--profile", type=Path, help="py-spy a live write run into this folder")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each measure, wait up to S s for other processes to calm down",
    )
    parser.add_argument("--label", default="", help="what code is measured (default: git)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal fails")
    opts = parser.parse_args()
    if opts.quick:
        opts.rounds, opts.duration, opts.idle = 1, 2, 3.0
    opts.writes_one, opts.writes_many = (30, 100) if opts.quick else (100, 300)
    return opts


def start_servers(tmp: Path, services_at: ExitStack) -> dict[str, server.Daphne]:
    """One daphne per stack; the scale-out stacks only where their services answer."""
    template = tmp / "template.sqlite3"
    server.migrate(server.sqlite_url(template))
    servers = {}
    # "idle" is a fresh raw app for the idle sockets' baseline: one that served
    # the wrk runs keeps their memory, and new sockets would seem to cost nothing.
    stacks = ("raw", "idle", "bare", "db", "cache", "live", *ON_PROJECT_HANDLER, "project")
    for stack in stacks:
        db = tmp / f"{stack}.sqlite3"
        shutil.copy(template, db)
        if stack == "project":
            env = server.environment(server.sqlite_url(db), "asgi_config.settings")
            app = "asgi_config.asgi:application"
        elif stack in ON_PROJECT_HANDLER:
            env = server.environment(
                server.sqlite_url(db),
                BENCH_SETTINGS,
                BENCH_STACK=ON_PROJECT_HANDLER[stack],
                BENCH_HANDLER="project",
            )
            app = DJANGO_APP
        else:
            env = server.environment(server.sqlite_url(db), BENCH_SETTINGS, BENCH_STACK=stack)
            raw = stack in ("raw", "idle")
            app = "scripts.bench.hello:application" if raw else DJANGO_APP
        servers[stack] = server.Daphne(stack, app, env, tmp / f"{stack}.log")
    postgres = services_at.enter_context(services.postgres())
    if postgres:
        server.migrate(postgres)
        env = server.environment(postgres, BENCH_SETTINGS, BENCH_STACK="live")
        servers["live-pg"] = server.Daphne("live-pg", DJANGO_APP, env, tmp / "live-pg.log")
    else:
        print(f"skipped the PostgreSQL row: no server at {services.ADMIN_URL}", flush=True)
    redis = services_at.enter_context(services.redis_url())
    if redis:
        # Sessions live in Redis; the database holds only Django's own tables.
        shutil.copy(template, tmp / "live-redis.sqlite3")
        own = server.sqlite_url(tmp / "live-redis.sqlite3")
        env = server.environment(own, BENCH_SETTINGS, BENCH_STACK="live-redis", REDIS_URL=redis)
        servers["live-redis"] = server.Daphne("live-redis", DJANGO_APP, env, tmp / "redis.log")
    else:
        print(f"skipped the Redis row: no server at {services.REDIS_URL}", flush=True)
    for srv in servers.values():
        srv.start()
    return servers


async def one_run(
    http: aiohttp.ClientSession,
    srv: server.Daphne,
    config: Config,
    opts: argparse.Namespace,
    seconds: int,
    wait: float = 0.0,
) -> dict[str, Any]:
    """One wrk run; a write run is followed by its lost-write check."""
    live = config.stack in LIVE_STACKS
    session = live or config.stack in ("db", "cache")
    cookie = await load.new_session(http, srv.url) if session else None
    acked = version = 0
    if config.write and cookie:
        acked = await load.acked(http, srv.url)
        version = (await load.stored(http, srv.url, cookie, live)).get("version") or 0
    connections = config.connections or opts.connections
    await machine.quiet(wait)
    busy, own, cpu, t0 = machine.busy_cpu(), machine.own_cpu(), srv.cpu_seconds(), time.time()
    result: dict[str, Any] = asdict(
        await load.wrk(srv.url + config.path, cookie, connections, seconds)
    )
    wall, cpu = time.time() - t0, srv.cpu_seconds() - cpu
    # Whatever else ran on the machine meanwhile (other people's tests) skews the figures.
    other = machine.busy_cpu() - busy - cpu - (machine.own_cpu() - own)
    result["server_cpu_pct"], result["other_cpu_pct"] = 100 * cpu / wall, 100 * other / wall
    if config.write and cookie:
        result["acked"] = await load.acked(http, srv.url) - acked
        if live:
            saved = (await load.stored(http, srv.url, cookie, live))["version"] - version
            result["saved"], result["lost"] = saved, max(0, result["acked"] - saved)
        result["probe_acked"], result["probe_kept"] = await load.probe(
            http, srv.url, cookie, live, PROBE
        )
    return result


def measured(servers: dict[str, server.Daphne]) -> list[Config]:
    return [config for config in CONFIGS if config.stack in servers]


def same_handler(configs: list[Config]) -> dict[str, str]:
    """Each live row on the project's handler -> the bare view on that same handler."""
    bare = next((c.what for c in configs if c.stack == "bare-handler"), None)
    return {c.what: bare for c in configs if bare and c.stack == "live-handler"}


async def throughput(
    servers: dict[str, server.Daphne], opts: argparse.Namespace
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    configs = measured(servers)
    async with tabs.client() as http:
        for stack in dict.fromkeys(config.stack for config in configs):
            warm = next(c for c in configs if c.stack == stack)
            await one_run(http, servers[stack], warm, opts, 1)
        baseline = next(c for c in configs if c.what == BASELINE)
        for round_ in range(1, opts.rounds + 1):
            for config in configs:
                paired = {}
                if config.goal is not None:
                    # A goal's ratio is also taken against a bare run made just
                    # before it, which a host that slows down for minutes moves less.
                    bare = await one_run(
                        http, servers[baseline.stack], baseline, opts, opts.duration
                    )
                    paired = {"paired_base_rps": bare["rps"]}
                srv = servers[config.stack]
                result = await one_run(http, srv, config, opts, opts.duration, opts.wait_quiet)
                runs.append({"round": round_, "what": config.what, **result, **paired})
                print(report.run_line(runs[-1], config.write), flush=True)
    return runs


async def profile(srv: server.Daphne, opts: argparse.Namespace) -> dict[str, Any]:
    """Extra live write runs (not in the medians) sampled by py-spy: all threads, then the GIL."""
    if not pyspy.available():
        print("--profile: py-spy is not on PATH (pip install py-spy); skipped")
        return {}
    opts.profile.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    async with tabs.client() as http:
        for gil in (False, True):
            out = opts.profile / f"live-write{'-gil' if gil else ''}.txt"
            await machine.quiet(opts.wait_quiet)
            spy = pyspy.record(srv.pid, opts.duration, out, gil)
            await asyncio.sleep(0.5)
            run = await one_run(http, srv, LIVE_WRITE, opts, opts.duration)
            if not await pyspy.finish(spy, out):
                continue
            top = pyspy.top(out, 20)
            print(report.profile(run, top, out, gil), flush=True)
            found["gil" if gil else "all"] = {"run": run, **top, "raw": str(out)}
    return found


async def idle_cost(
    srv: server.Daphne, opts: argparse.Namespace, open_all: Any
) -> tuple[dict[str, Any], list[Any]]:
    """CPU and memory of sockets that `open_all()` opens and then leaves idle."""
    rss_before = srv.rss_kib()
    started = time.perf_counter()
    sockets = await open_all()
    connect_s = time.perf_counter() - started
    await machine.settle(srv.cpu_seconds)
    await machine.quiet(opts.wait_quiet)
    cpu_before, busy, t0 = srv.cpu_seconds(), machine.busy_cpu(), time.monotonic()
    await asyncio.sleep(opts.idle)
    wall = time.monotonic() - t0
    cpu = (srv.cpu_seconds() - cpu_before) / wall * 100
    other = (machine.busy_cpu() - busy) / wall * 100 - cpu
    rss_after = srv.rss_kib()
    idle = {
        "tabs": len(sockets),
        "connect_s": connect_s,
        "cpu_pct": cpu,
        "other_cpu_pct": other,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_tab": (rss_after - rss_before) / max(len(sockets), 1),
    }
    return idle, sockets


async def idle_baseline(srv: server.Daphne, opts: argparse.Namespace) -> dict[str, Any]:
    """The same number of idle sockets on the raw ASGI app: daphne's own share."""
    async with tabs.client() as http:
        warm = await tabs.open_plain(http, srv.url, 1)
        await asyncio.gather(*(ws.close() for ws in warm))
        await asyncio.sleep(1)
        idle, sockets = await idle_cost(
            srv, opts, lambda: tabs.open_plain(http, srv.url, opts.tabs)
        )
        await asyncio.gather(*(ws.close() for ws in sockets))
    print(report.idle_line(idle, "bare daphne (raw ASGI app)"), flush=True)
    return idle


async def tabs_phase(
    srv: server.Daphne, opts: argparse.Namespace, baseline: dict[str, Any]
) -> dict[str, Any]:
    """Idle tabs, then push latency, on the project's own server."""
    async with tabs.client() as http:
        site = tabs.Site(srv.url, http)
        await site.start()
        keys = [await site.new_session() for _ in range(SESSIONS)]
        warm = tabs.Tabs(site)
        await warm.open(keys[:1], 1)
        await warm.close()
        await asyncio.sleep(1)
        many = tabs.Tabs(site)

        async def open_tabs() -> list[Any]:
            await many.open(keys, opts.tabs // SESSIONS)
            return many.sockets

        idle, _ = await idle_cost(srv, opts, open_tabs)
        idle |= {"failed": many.failed, "baseline": baseline}
        opened = idle["tabs"]
        print(report.idle_line(idle), flush=True)
        await machine.quiet(opts.wait_quiet)
        push_many = await tabs.push_latency(site, many, keys, opts.writes_many, 50)
        print(report.push_line(f"{opened} tabs over {SESSIONS} sessions", push_many), flush=True)
        await many.close()
        one = await site.new_session()
        hundred = tabs.Tabs(site)
        await hundred.open([one], 100)
        await machine.settle(srv.cpu_seconds)
        await machine.quiet(opts.wait_quiet)
        push_one = await tabs.push_latency(site, hundred, [one], opts.writes_one, 20)
        print(report.push_line(f"{len(hundred.sockets)} tabs on one session", push_one))
        spied = await profile_push(srv, site, hundred, one, opts) if opts.profile else {}
        await hundred.close()
    phase = {"idle": idle, "push_one": asdict(push_one), "push_many": asdict(push_many)}
    return phase | ({"push_profile": spied} if spied else {})


async def profile_push(
    srv: server.Daphne, site: tabs.Site, hundred: tabs.Tabs, key: str, opts: argparse.Namespace
) -> dict[str, Any]:
    """An extra push run on 100 tabs (not in the figures) sampled by py-spy: the fan-out."""
    if not pyspy.available():
        return {}
    out = opts.profile / "push-100-tabs.txt"
    seconds = opts.writes_one / 20
    spy = pyspy.record(srv.pid, seconds, out, gil=False)
    await asyncio.sleep(0.5)
    run = asdict(await tabs.push_latency(site, hundred, [key], opts.writes_one, 20))
    if not await pyspy.finish(spy, out):
        return {}
    top = pyspy.top(out, 20)
    print(report.profile(run, top, out, gil=False, what="a 100-tab push run"), flush=True)
    return {"run": run, **top, "raw": str(out)}


async def main(opts: argparse.Namespace) -> int:
    machine.pin_self()
    env = machine.environment(opts.label)
    env["busy_before_pct"] = await machine.quiet(0)
    print(report.header(env, opts), flush=True)
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp, ExitStack() as services_at:
        servers: dict[str, server.Daphne] = {}
        try:
            servers = start_servers(Path(tmp), services_at)
            runs = await throughput(servers, opts)
            spied = await profile(servers["live"], opts) if opts.profile else {}
            baseline = await idle_baseline(servers["idle"], opts)
            for name, srv in servers.items():
                if name != "project":
                    srv.stop()
            phase = await tabs_phase(servers["project"], opts, baseline)
        finally:
            for srv in servers.values():
                srv.stop()
    rows = report.rows(runs, [c.what for c in measured(servers)], BASELINE)
    least = {c.what: c.goal for c in measured(servers) if c.goal is not None}
    goals = report.goals(runs, phase, rows, least, same_handler(measured(servers)))
    print(report.table(rows))
    print(report.goal_table(goals))
    if opts.json:
        figures: dict[str, Any] = {
            "environment": env,
            "options": {k: str(v) for k, v in vars(opts).items()},
        }
        figures |= {"runs": runs, "rows": rows, **phase, "goals": goals, "profile": spied}
        opts.json.write_text(json.dumps(figures, indent=2, default=str))
    return 1 if opts.strict and not all(goal["pass"] for goal in goals) else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(options())))
