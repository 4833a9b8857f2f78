"""Session write throughput per engine and process count, and push latency per channel layer.

    python scripts/bench_engines.py [--duration 5] [--connections 32] [--sessions 32] [--rounds 1]

Starts its own daphne processes (SQLite in a temporary folder, a temporary
PostgreSQL database, the Redis at REDIS_URL) and drives them with wrk. Every
throughput is printed as a ratio to a bare async Django view (no session
middleware) measured in the same run. The write view sets one key with
`await request.session.aset(...)`; wrk spreads the requests over --sessions
sessions. Push latency: tabs (session.json) on one session, one write at a
time, from the event's server timestamp to its arrival at each tab.

Needs wrk (/usr/bin/wrk), Redis (REDIS_URL, default redis://127.0.0.1:6379/0)
and PostgreSQL (DATABASE_TEST_URL, default postgres://postgres@127.0.0.1:5432/test,
used to create and drop a scratch database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from yarl import URL  # noqa: E402

from tests.conftest import Server, free_port, migrate  # noqa: E402

WRK = "/usr/bin/wrk"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
ADMIN_URL = os.environ.get("DATABASE_TEST_URL") or "postgres://postgres@127.0.0.1:5432/test"

# The benchmark's own settings and views, written next to a throwaway database.
SITE = """
import os
from asgi_config.settings import *  # noqa: F403

MIDDLEWARE = [] if os.environ["BENCH_VIEW"] == "bare" else ["live.middleware.LiveSessionMiddleware"]
ROOT_URLCONF = "bench_urls"
if os.environ.get("BENCH_LAYER") == "memory":
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "live.layers.LocalChannelLayer", "CONFIG": {"capacity": 1000}}
    }
LOGGING = {"version": 1, "disable_existing_loggers": False}
"""
URLS = """
import time
from django.http import HttpResponse
from django.urls import path

async def bare(request):
    return HttpResponse(b"ok")

async def write(request):
    await request.session.aset("n", time.time_ns())
    return HttpResponse(b"ok")

urlpatterns = [path("bare", bare), path("write", write)]
"""
# wrk: each request picks one of the sessions' cookies.
PICK = """
cookies = {%s}
request = function()
  return wrk.format(nil, nil, {["Cookie"] = cookies[math.random(#cookies)]})
end
"""


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path, postgres: str) -> None:
        self.args, self.folder, self.postgres = args, folder, postgres
        (folder / "bench_site.py").write_text(SITE)
        (folder / "bench_urls.py").write_text(URLS)
        self.migrated: set[str] = set()

    def env(self, view: str, store: str, layer: str) -> dict[str, str]:
        database = self.postgres if store == "postgres" else f"sqlite:///{self.folder}/s.sqlite3"
        env = {
            **os.environ,
            "PYTHONPATH": f"{self.folder}:{ROOT}",
            "DJANGO_SETTINGS_MODULE": "bench_site",
            "DJANGO_DEBUG": "0",
            "DJANGO_SSL_REDIRECT": "0",
            "DATABASE_URL": database,
            "SESSION_STORE": "redis" if store == "redis" else "db",
            "BENCH_VIEW": view,
            "BENCH_LAYER": layer,
        }
        env.pop("REDIS_URL", None)
        if layer == "redis" or store == "redis":
            env["REDIS_URL"] = REDIS_URL
        if database not in self.migrated:
            migrate({**env, "DJANGO_SETTINGS_MODULE": "asgi_config.settings"})
            self.migrated.add(database)
        return env

    def start(self, env: dict[str, str], count: int) -> list[Server]:
        servers = []
        for n in range(count):
            server = Server(free_port(), env, self.folder / f"daphne-{n}.log")
            server.start()
            servers.append(server)
        return servers

    async def throughput(self, view: str, store: str, layer: str, count: int) -> float:
        servers = self.start(self.env(view, store, layer), count)
        try:
            script = self.folder / "pick.lua"
            if view == "write":
                cookies = await sessions(servers[0].url, self.args.sessions)
                script.write_text(PICK % ",".join(f'"sessionid={c}"' for c in cookies))
            per = max(self.args.connections // count, 1)
            runs = [
                wrk(f"{s.url}/{view}", per, self.args.duration, script if view == "write" else None)
                for s in servers
            ]
            return sum(await asyncio.gather(*runs))
        finally:
            for server in servers:
                server.stop()

    async def push_latency(self, layer: str, count: int) -> list[float]:
        env = self.env("page", "sqlite", layer)
        env["DJANGO_SETTINGS_MODULE"] = "asgi_config.settings"
        env["DJANGO_DEBUG"] = "1"
        servers = self.start(env, count)
        try:
            return await tabs_latency(servers, self.args.tabs, self.args.pushes)
        finally:
            for server in servers:
                server.stop()


async def sessions(url: str, count: int) -> list[str]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        cookies = []
        for _ in range(count):
            async with http.get(f"{url}/write") as response:
                response.raise_for_status()
                cookies.append(response.cookies["sessionid"].value)
        return cookies


async def wrk(url: str, connections: int, seconds: int, script: Path | None) -> float:
    command = [WRK, "-t1", f"-c{connections}", f"-d{seconds}s"]
    if script:
        command += ["-s", str(script)]
    process = await asyncio.create_subprocess_exec(
        *command, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    text = out.decode()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors:
        print(f"  ({errors[1]} error answers from {url})")
    found = re.search(r"Requests/sec:\s+([\d.]+)", text)
    return float(found[1]) if found else 0.0


async def tabs_latency(servers: list[Server], tabs: int, pushes: int) -> list[float]:
    """Tabs on the last process, writes through the first: seconds from event to each tab."""
    writer, watched = servers[0], servers[-1]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(writer.url + "/") as response:
            response.raise_for_status()
        token = jar.filter_cookies(URL(writer.url))["csrftoken"].value
        headers = {"X-CSRFToken": token, "Origin": writer.url}
        sockets = [
            await http.ws_connect(
                watched.ws_url, protocols=["session.json"], headers={"Origin": watched.url}
            )
            for _ in range(tabs)
        ]
        for tab in sockets:
            await tab.receive_json(timeout=10)  # the snapshot
        lags: list[float] = []

        async def collect(tab: aiohttp.ClientWebSocketResponse) -> None:
            for _ in range(pushes):
                event = await tab.receive_json(timeout=10)
                lags.append(time.time() - event["ts"])

        readers = [asyncio.ensure_future(collect(tab)) for tab in sockets]
        for n in range(pushes):
            url = f"{writer.url}/api/session/keys/k{n}"
            async with http.put(url, data=json.dumps(n), headers=headers) as response:
                response.raise_for_status()
            await asyncio.sleep(0.02)
        await asyncio.gather(*readers)
        for tab in sockets:
            await tab.close()
    return lags


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(args: argparse.Namespace) -> None:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as folder:
            bench = Bench(
                args, Path(folder), urlparse(ADMIN_URL)._replace(path=f"/{name}").geturl()
            )
            await report(bench, args)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def report(bench: Bench, args: argparse.Namespace) -> None:
    rows = [
        ("bare async view", "bare", "sqlite", "memory", 1),
        ("SQLite engine", "write", "sqlite", "memory", 1),
        ("PostgreSQL engine", "write", "postgres", "memory", 1),
        ("Redis engine", "write", "redis", "memory", 1),
        ("PostgreSQL engine, Redis layer", "write", "postgres", "redis", 1),
        ("Redis engine, Redis layer", "write", "redis", "redis", 1),
        ("bare async view, 2 processes", "bare", "sqlite", "memory", 2),
        ("PostgreSQL engine, Redis layer, 2 processes", "write", "postgres", "redis", 2),
        ("Redis engine, Redis layer, 2 processes", "write", "redis", "redis", 2),
    ]
    results: dict[str, list[float]] = {label: [] for label, *_ in rows}
    for round_ in range(args.rounds):
        for label, view, store, layer, count in rows:
            rps = await bench.throughput(view, store, layer, count)
            results[label].append(rps)
            print(f"round {round_ + 1}: {label}: {rps:.0f}/s", flush=True)
    bare = statistics.median(results["bare async view"])
    print(f"\nwrites/s, median of {args.rounds}, {args.connections} connections, ", end="")
    print(f"{args.sessions} sessions, {os.cpu_count()} CPUs")
    for label, *_ in rows:
        rps = statistics.median(results[label])
        print(f"  {label:<46} {rps:8.0f}/s  {rps / bare:5.2f}x bare")
    print(f"\npush latency, {args.tabs} tabs, {args.pushes} sequential writes")
    for label, layer, count in [
        ("in-memory layer, 1 process", "memory", 1),
        ("Redis layer, 1 process", "redis", 1),
        ("Redis layer, tabs on another process", "redis", 2),
    ]:
        lags = await bench.push_latency(layer, count)
        p50, p99 = percentile(lags, 0.5), percentile(lags, 0.99)
        print(f"  {label:<46} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections in all")
    parser.add_argument("--sessions", type=int, default=32, help="sessions the writes spread over")
    parser.add_argument("--rounds", type=int, default=1, help="runs per row (median shown)")
    parser.add_argument("--tabs", type=int, default=20, help="tabs in the push test")
    parser.add_argument("--pushes", type=int, default=100, help="writes in the push test")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
