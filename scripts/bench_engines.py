"""Session throughput per engine and process count, and push latency per channel layer.

    python scripts/bench_engines.py [--duration 5] [--connections 32] [--sessions 32]
                                    [--rounds 3] [--tabs 100] [--pushes 100]

Starts its own daphne processes (SQLite in a temporary folder, a temporary
PostgreSQL database, the Redis at REDIS_URL) and drives them with wrk, each
request picking one of --sessions sessions. For each engine setup (SQLite
engine + in-memory layer, PostgreSQL engine + Redis layer, Redis engine +
Redis layer) it measures, on the benchmark's stripped settings (the session
middleware only):

- write: a view doing `await request.session.aset(...)`, 1 and 2 processes;
- read: a view doing `await request.session.aget(...)`, 1 process;

and, on the site's real settings (asgi_config.settings, every middleware it
installs), the JSON API as served: `PUT /api/session/keys/n` with each
session's cookies, CSRF token, Origin and Referer (scripts/bench_session.py);
and the bare view behind that same middleware, on a GET and on the API's own
PUT, which no API call can beat: the ceiling the API's figure is read against.
Costs per request add, so the API's floor is that ceiling with the engine's
write added (Ratios.combined). More rows set the engine figures beside what
frames them: the leanest Redis-backed session write (the cookie's key, one SET
on the loop's own connection, the cookie set again: no load, no merge, no
push) and read (one HGET of the session's stored value), the same two on
PostgreSQL (one upsert; one SELECT of the session's row; on the loop's own
psycopg connections), Django's own SessionMiddleware on its cache engine
(locmem), a session write with no storage I/O at all, and Django's session API
at its leanest on Redis (LEAN_ENGINE: one GET to load, one SET to save, the
push the middleware sends for any Django engine), the floor of any engine on
Redis.

Every throughput is a ratio to a bare async Django view (no middleware)
measured in the same round, 1 or 2 processes; each round runs every row once,
in the same order, each 1-process row right after a bare view run of its own
(the machine's speed drifts within a round), and a ratio is the median of the
rounds' ratios to those runs. With 2 processes, wrk's connections are split
between them; an engine's scaling is its 2-process writes over its 1-process
writes, set against the bare view's.

Push latency: tabs (session.json) on one session, one API write at a time,
from the event's server timestamp (the commit) to its arrival at each tab;
with 2 processes the writes go to the first and the tabs alternate between
the two, so half of them hear it across the Redis layer.

The issue's goals are printed beside their figures with PASS or FAIL, each
figure rounded toward failing (scripts/bench/report.py).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))

import report as goals  # noqa: E402
from bench_session import session_cookies, wrk_put_script  # noqa: E402
from machine import busy_cpu  # noqa: E402
from yarl import URL  # noqa: E402

from tests.conftest import Server, free_port, migrate  # noqa: E402

WRK = "/usr/bin/wrk"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
ADMIN_URL = os.environ.get("DATABASE_TEST_URL") or "postgres://postgres@127.0.0.1:5432/test"
API_PATH = "/api/session/keys/n"

# The benchmark's own settings and views, written next to a throwaway database.
# The API rows keep the site's middleware and URLs, the stack rows its middleware;
# the others strip it. Every row but the API's takes the benchmark's URLs, which
# end with the site's own.
SITE = """
import os
from asgi_config.settings import *  # noqa: F403

VIEW = os.environ["BENCH_VIEW"]
if VIEW != "api":
    ROOT_URLCONF = "bench_urls"
# The stack rows keep every middleware the site installs: the API's ceiling.
if VIEW not in ("api", "stack", "stack-put"):
    SESSION_ONLY = ["live.middleware.LiveSessionMiddleware"]
    MIDDLEWARE = [] if VIEW == "bare" else SESSION_ONLY
# Django's own session write, for comparison: its middleware, its in-memory engine.
if os.environ.get("SESSION_STORE") == "django-cache":
    MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
# Django's session API at its leanest on Redis (bench_lean_engine), behind the session
# middleware, which tells the tabs of each change as it does for any Django engine.
if os.environ.get("SESSION_STORE") == "lean":
    SESSION_ENGINE = "bench_lean_engine"
if os.environ.get("BENCH_LAYER") == "memory":
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "live.layers.LocalChannelLayer", "CONFIG": {"capacity": 1000}}
    }
LOGGING = {"version": 1, "disable_existing_loggers": False}
"""
URLS = """
import time
from django.conf import settings
from django.http import HttpResponse
from django.urls import include, path
from live.http.middleware import set_cookie, vary_on_cookie
from live.sessions.keys import digest

async def bare(request):
    return HttpResponse(b"ok")

async def write(request):
    await request.session.aset("n", time.time_ns())
    return HttpResponse(b"ok")

async def read(request):
    await request.session.aget("n")
    return HttpResponse(b"ok")

def named(request):
    # The session's digest, from the cookie's key.
    return digest(request.COOKIES.get(settings.SESSION_COOKIE_NAME, ""))

def cookie_set_again(request):
    # The answer of a session write: the cookie set again, as after a save.
    response = HttpResponse(b"ok")
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    set_cookie(response, key, settings.SESSION_COOKIE_AGE)
    vary_on_cookie(response)
    return response

async def lean(request):
    # A Redis-backed session write at its leanest, the floor of the engine's
    # write: the cookie's key in, one command on the loop's own connection,
    # the cookie set again as after a save. No load, no merge, no push.
    from live import redis_client
    line = await redis_client.async_wire().connection()
    await line.send("SET", f"bench:lean:{named(request)}", str(time.time_ns()), "EX", "60")
    return cookie_set_again(request)

async def lean_read(request):
    # A Redis-backed session read at its leanest, the floor of the engine's read:
    # the cookie's key in, one command on the loop's own connection reading the
    # value as the engine stored it (HGET of its data hash), nothing set.
    from live import redis_client
    from live.sessions.redis import session_keys
    line = await redis_client.async_wire().connection()
    await line.send("HGET", session_keys(named(request))[0], "n")
    return HttpResponse(b"ok")

async def lean_pg(request):
    # The same on PostgreSQL: one upsert on the loop's own connection, the cookie set again.
    from live.sessions import pg_loop

    async def upsert(db):
        await db.execute(LEAN_UPSERT, [named(request), time.time_ns()])

    await pg_loop.run("default", upsert)
    return cookie_set_again(request)

async def lean_pg_read(request):
    # And one SELECT on the loop's own connection of the session's row as the
    # engine stored it, nothing set.
    from live.sessions import pg_loop
    from live.sessions.sql import SESSIONS

    async def select(db):
        await db.execute(f"SELECT data FROM {SESSIONS} WHERE digest = %s", [named(request)])

    await pg_loop.run("default", select)
    return HttpResponse(b"ok")

LEAN_UPSERT = (
    "INSERT INTO bench_lean (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
)

urlpatterns = [
    path("bare", bare), path("stack", bare), path("stack-put", bare), path("write", write),
    path("read", read), path("lean", lean), path("lean-read", lean_read),
    path("lean-pg", lean_pg), path("lean-pg-read", lean_pg_read),
    # The site's own pages, where the stack-put row makes its sessions as the API row does.
    path("", include("asgi_config.urls")),
]
"""
# What a server logs when pushes are lost because the channel layer is not keeping up
# (live.realtime.events): a figure bought by dropping pushes does not count.
DROPPED = re.compile(r"The channel layer is not keeping up|Skipped \d+ pushes")
# A session engine with nothing but what Django's session API needs: it keeps the session
# as one JSON value, loaded by one GET and saved by one SET on the loop's own connection.
LEAN_ENGINE = """
import json
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, SessionBase
from django.utils.crypto import get_random_string
from live import redis_client
from live.sessions.keys import digest


class SessionStore(SessionBase):
    def _name(self):
        return "bench:lean-engine:" + digest(self.session_key)

    async def aload(self):
        line = await redis_client.async_wire().connection()
        text = await line.send("GET", self._name())
        return json.loads(text) if text else {}

    async def asave(self, must_create=False):
        if self.session_key is None:
            self._session_key = get_random_string(32, VALID_KEY_CHARS)
        line = await redis_client.async_wire().connection()
        text = json.dumps(self._get_session(no_load=must_create))
        # The benchmark's keys are gone a minute after its runs.
        await line.send("SET", self._name(), text, "EX", "60")
"""
# wrk: each request picks one of the sessions' cookies.
PICK = """
cookies = {%s}
request = function()
  return wrk.format(nil, nil, {["Cookie"] = cookies[math.random(#cookies)]})
end
"""


@dataclass(frozen=True)
class Setup:
    """An engine and a channel layer, and the issue's least ratios to the bare view."""

    label: str
    store: str
    layer: str
    write: float | None = None
    read: float | None = None
    api: float | None = None


SETUPS = [
    Setup("SQLite engine, in-memory layer (embedded default)", "sqlite", "memory", api=0.85),
    Setup("PostgreSQL engine, Redis layer", "postgres", "redis", write=0.6, read=0.8),
    Setup("Redis engine, Redis layer", "redis", "redis", write=0.8, read=0.9, api=0.6),
]
# The least share of the bare view's 1 -> 2 process scaling an engine keeps.
SCALING = 0.9
PUSH_P99_MS = 15.0

# One measured row: (view, store, layer, processes).
Row = tuple[str, str, str, int]
BARE_1: Row = ("bare", "sqlite", "memory", 1)
BARE_2: Row = ("bare", "sqlite", "memory", 2)
# The bare view behind every middleware the site installs: no API call can be faster.
STACK: Row = ("stack", "sqlite", "memory", 1)
# The same, on the API's request: a PUT of a JSON body with the session's cookies, CSRF
# token, Origin and Referer, which the site's middleware checks (and its write gate
# queues) as it does for the API: the ceiling of an API write.
STACK_PUT: Row = ("stack-put", "sqlite", "memory", 1)
# The floor of a Redis engine's write: one command and the cookie (the lean view).
LEAN: Row = ("lean", "redis", "redis", 1)
# The floor of a Redis engine's read: the cookie's key, one HGET (the lean-read view).
LEAN_READ: Row = ("lean-read", "redis", "redis", 1)
# The same two on PostgreSQL: one upsert and the cookie, one SELECT (lean-pg, lean-pg-read).
LEAN_PG: Row = ("lean-pg", "postgres", "redis", 1)
LEAN_PG_READ: Row = ("lean-pg-read", "postgres", "redis", 1)
# What a Django session write does at the least, a load then a save: a read and a write
# at their leanest, their costs added (Ratios.combined); and a read, one read.
FLOORS: dict[tuple[str, str], tuple[Row, ...]] = {
    ("redis", "write"): (LEAN_READ, LEAN),
    ("redis", "read"): (LEAN_READ,),
    ("postgres", "write"): (LEAN_PG_READ, LEAN_PG),
    ("postgres", "read"): (LEAN_PG_READ,),
}
# Django's SessionMiddleware on its cache engine (locmem): a session write without storage I/O.
DJANGO: Row = ("write", "django", "memory", 1)
# Django's session API at its leanest on Redis (LEAN_ENGINE), behind the session middleware:
# a write loads, saves and tells the tabs; a read loads. The floor of any engine on Redis.
LEAN_ENGINE_WRITE: Row = ("write", "lean", "redis", 1)
LEAN_ENGINE_READ: Row = ("read", "lean", "redis", 1)
DJANGO_FLOORS: dict[tuple[str, str], Row] = {
    ("redis", "write"): LEAN_ENGINE_WRITE,
    ("redis", "read"): LEAN_ENGINE_READ,
}


def rows() -> list[Row]:
    """Every row of a round, in the order each round runs them."""
    found = [BARE_1, BARE_2, STACK, STACK_PUT, LEAN, LEAN_READ, LEAN_PG, LEAN_PG_READ, DJANGO]
    found += [LEAN_ENGINE_WRITE, LEAN_ENGINE_READ]
    for s in SETUPS:
        found += [(v, s.store, s.layer, n) for v, n in (("write", 1), ("read", 1), ("api", 1))]
        found.append(("write", s.store, s.layer, 2))
    return found


def request_path(view: str) -> str:
    return API_PATH if view == "api" else f"/{view}"


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path, postgres: str) -> None:
        self.args, self.folder, self.postgres = args, folder, postgres
        (folder / "bench_site.py").write_text(SITE)
        (folder / "bench_urls.py").write_text(URLS)
        (folder / "bench_lean_engine.py").write_text(LEAN_ENGINE)
        self.migrated: set[str] = set()
        # Where the CPU went while each row ran, one figure a round.
        self.cpu: dict[Row, list[Cpu]] = {}
        # Times each row's servers logged dropping pushes (a layer not keeping up).
        self.drops: dict[Row, int] = {}
        # The bare view's run made just before each row, one a round (see measure).
        self.before: dict[Row, list[float]] = {}

    def env(self, view: str, store: str, layer: str) -> dict[str, str]:
        database = self.postgres if store == "postgres" else f"sqlite:///{self.folder}/s.sqlite3"
        env = {
            **os.environ,
            "PYTHONPATH": f"{self.folder}:{ROOT}",
            "DJANGO_SETTINGS_MODULE": "bench_site",
            "DJANGO_DEBUG": "0",
            "DJANGO_SSL_REDIRECT": "0",
            "DATABASE_URL": database,
            "SESSION_STORE": {"redis": "redis", "django": "django-cache", "lean": "lean"}.get(
                store, "db"
            ),
            "BENCH_VIEW": view,
            "BENCH_LAYER": layer,
        }
        env.pop("REDIS_URL", None)
        if layer == "redis" or store in ("redis", "lean"):
            env["REDIS_URL"] = REDIS_URL
        if database not in self.migrated:
            # The tables do not depend on the engine, which the site's checks judge.
            site = {"DJANGO_SETTINGS_MODULE": "asgi_config.settings", "SESSION_STORE": "db"}
            migrate({**env, **site})
            self.migrated.add(database)
        return env

    def start(self, env: dict[str, str], count: int) -> list[Server]:
        servers = []
        for n in range(count):
            server = Server(free_port(), env, self.folder / f"daphne-{n}.log")
            server.start()
            servers.append(server)
        return servers

    async def throughput(self, row: Row, paired: bool = False) -> float:
        """Requests/s of one row's run; a paired run (a baseline) keeps no CPU figure."""
        view, store, layer, count = row
        logs = [self.folder / f"daphne-{n}.log" for n in range(count)]
        seen = [log.stat().st_size if log.exists() else 0 for log in logs]
        servers = self.start(self.env(view, store, layer), count)
        try:
            script = await self.script(view, servers[0].url)
            per = max(self.args.connections // count, 1)
            path = request_path(view)
            runs = [wrk(s.url + path, per, self.args.duration, script) for s in servers]
            before = Cpu.now(servers)
            rps = sum(await asyncio.gather(*runs))
            if not paired:
                self.cpu.setdefault(row, []).append(Cpu.now(servers) - before)
            return rps
        finally:
            for server in servers:
                server.stop()
            for log, start in zip(logs, seen, strict=True):
                with log.open("rb") as text:
                    text.seek(start)
                    found = len(DROPPED.findall(text.read().decode(errors="replace")))
                self.drops[row] = self.drops.get(row, 0) + found

    def busy(self, row: Row) -> float:
        """How busy the machine's cores were while the row ran, in percent (median of rounds)."""
        cores = os.cpu_count() or 1
        return statistics.median(c.machine / c.wall / cores * 100 for c in self.cpu[row])

    async def script(self, view: str, url: str) -> Path | None:
        """The wrk script spreading the requests over --sessions sessions (none for bare)."""
        script = self.folder / "pick.lua"
        if view in ("api", "stack-put"):
            made = [
                await asyncio.to_thread(session_cookies, url, 0) for _ in range(self.args.sessions)
            ]
            script.write_text(wrk_put_script(url, request_path(view), made))
        elif view in ("write", "read") or view.startswith("lean"):
            cookies = await sessions(url, self.args.sessions)
            script.write_text(PICK % ",".join(f'"sessionid={c}"' for c in cookies))
        else:
            return None
        return script

    async def push_latency(self, layer: str, count: int) -> dict[str, list[float]]:
        env = self.env("page", "sqlite", layer)
        env["DJANGO_SETTINGS_MODULE"] = "asgi_config.settings"
        env["DJANGO_DEBUG"] = "1"
        servers = self.start(env, count)
        try:
            return await tabs_latency(servers, self.args.tabs, self.args.pushes)
        finally:
            for server in servers:
                server.stop()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@dataclass(frozen=True)
class Cpu:
    """CPU seconds: the daphne processes, Redis, PostgreSQL, and the whole machine."""

    daphne: float
    redis: float
    postgres: float
    machine: float
    wall: float

    @classmethod
    def now(cls, servers: list[Server]) -> Cpu:
        return cls(
            sum(_cpu_seconds(s.process.pid) for s in servers if s.process),
            sum(map(_cpu_seconds, _named("redis-server"))),
            sum(map(_cpu_seconds, _named("postgres"))),
            busy_cpu(),
            time.monotonic(),
        )

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(
            self.daphne - other.daphne,
            self.redis - other.redis,
            self.postgres - other.postgres,
            self.machine - other.machine,
            self.wall - other.wall,
        )


async def sessions(url: str, count: int) -> list[str]:
    """New sessions holding n, made through the write view; their session ids."""
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


async def tabs_latency(servers: list[Server], tabs: int, pushes: int) -> dict[str, list[float]]:
    """Writes through the first process, tabs alternating over all of them.

    Seconds from each event's server timestamp to each tab, under "all", and
    under "same" and "other": the tabs on the writing process and on the others.
    """
    writer = servers[0]
    jar = aiohttp.CookieJar(unsafe=True)
    # Every tab holds a connection, and the writes need one more: no pool limit.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(cookie_jar=jar, connector=connector) as http:
        async with http.get(writer.url + "/") as response:
            response.raise_for_status()
        token = jar.filter_cookies(URL(writer.url))["csrftoken"].value
        headers = {"X-CSRFToken": token, "Origin": writer.url}
        homes = [servers[n % len(servers)] for n in range(tabs)]
        sockets = [
            await http.ws_connect(
                home.ws_url, protocols=["session.json"], headers={"Origin": home.url}
            )
            for home in homes
        ]
        for tab in sockets:
            await tab.receive_json(timeout=10)  # the snapshot
        lags: dict[str, list[float]] = {"all": [], "same": [], "other": []}

        async def collect(tab: aiohttp.ClientWebSocketResponse, where: str) -> None:
            for _ in range(pushes):
                event = await tab.receive_json(timeout=10)
                lag = time.time() - event["ts"]
                lags["all"].append(lag)
                lags[where].append(lag)

        readers = [
            asyncio.ensure_future(collect(tab, "same" if home is writer else "other"))
            for tab, home in zip(sockets, homes, strict=True)
        ]
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
    """In milliseconds, from seconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(args: argparse.Namespace) -> None:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    postgres = urlparse(ADMIN_URL)._replace(path=f"/{name}").geturl()
    try:
        with psycopg.connect(postgres, autocommit=True) as conn:
            # The leanest PostgreSQL write's table: a value per session digest.
            conn.execute("CREATE TABLE bench_lean (k text PRIMARY KEY, v bigint)")
        with tempfile.TemporaryDirectory() as folder:
            bench = Bench(args, Path(folder), postgres)
            await measure_and_report(bench, args)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The reference rows, named by what they measure.
NAMED: dict[Row, str] = {
    LEAN: "leanest Redis session write: one SET and the cookie, no engine",
    LEAN_READ: "leanest Redis session read: one HGET, no engine",
    LEAN_PG: "leanest PostgreSQL session write: one upsert on the loop and the cookie",
    LEAN_PG_READ: "leanest PostgreSQL session read: one SELECT on the loop",
    LEAN_ENGINE_WRITE: (
        "Django's session API at its leanest on Redis (a GET, a SET, the push), write"
    ),
    LEAN_ENGINE_READ: "Django's session API at its leanest on Redis (a GET), read",
    DJANGO: "Django's SessionMiddleware and cache engine (locmem), write",
}


def label(row: Row) -> str:
    if row in NAMED:
        return NAMED[row]
    view, store, layer, count = row
    what = (
        "bare async view"
        if view in ("bare", "stack", "stack-put")
        else next(s.label for s in SETUPS if (s.store, s.layer) == (store, layer))
    )
    how = {
        "bare": "",
        "stack": "behind the site's middleware",
        "stack-put": "behind the site's middleware, the API's PUT",
        "write": "write",
        "read": "read",
        "api": "API PUT, site's middleware",
    }[view]
    return ", ".join(p for p in (what, how, "2 processes" if count == 2 else "") if p)


async def measure(bench: Bench, args: argparse.Namespace) -> dict[Row, list[float]]:
    """Each round runs every row once, in order: req/s per row, one figure a round.

    Each 1-process row but the bare view's own follows a bare view run made just
    before it (bench.before), which its ratio is taken against: the machine's
    speed drifts within a round by more than the differences measured.
    """
    results: dict[Row, list[float]] = {row: [] for row in rows()}
    for round_ in range(args.rounds):
        for row in rows():
            if row[3] == 1 and row != BARE_1:
                bench.before.setdefault(row, []).append(await bench.throughput(BARE_1, paired=True))
            rps = await bench.throughput(row)
            results[row].append(rps)
            print(f"round {round_ + 1}: {label(row)}: {rps:.0f}/s", flush=True)
    return results


class Ratios:
    """Medians over the rounds of figures paired within a round, or with the bare run before."""

    def __init__(
        self, results: dict[Row, list[float]], before: dict[Row, list[float]] | None = None
    ) -> None:
        self.results = results
        self.before = before or {}

    def paired(self, figure: Callable[[int], float]) -> float:
        return statistics.median(figure(n) for n in range(len(self.results[BARE_1])))

    def _to_bare(self, row: Row, n: int) -> float:
        # Round n's run of the row over the bare view's just before it, else the round's.
        return self.results[row][n] / self.before.get(row, self.results[BARE_1])[n]

    def to_bare(self, row: Row) -> float:
        """The row over the bare view, 1 process."""
        return self.paired(lambda n: self._to_bare(row, n))

    def combined(self, *rows: Row) -> float:
        """The ratio of a request that pays each row's cost beyond the bare view's.

        Costs per request add: a row at ratio r costs 1/r bare requests, 1/r - 1
        more than the bare view. So the API's PUT is about as fast at best as
        the site's middleware on a PUT plus the engine's write, each measured
        alone. (Each row of the session middleware pays its pass-through too, so
        a combination of several counts it more than once: a little low.)
        """
        return self.paired(
            lambda n: 1 / (sum(1 / self._to_bare(row, n) for row in rows) - (len(rows) - 1))
        )

    def scaling(self, row_1: Row, row_2: Row) -> float:
        return self.paired(lambda n: self.results[row_2][n] / self.results[row_1][n])

    def scaling_share(self, row_1: Row, row_2: Row) -> float:
        """The row's 1 -> 2 scaling over the bare view's, of the same round."""
        r, b1, b2 = self.results, BARE_1, BARE_2
        return self.paired(lambda n: (r[row_2][n] / r[row_1][n]) / (r[b2][n] / r[b1][n]))


def throughput_table(
    bench: Bench, results: dict[Row, list[float]], args: argparse.Namespace
) -> None:
    ratios = Ratios(results, bench.before)
    print(f"\nreq/s, median of {args.rounds} rounds, {args.connections} connections, ", end="")
    print(f"{args.sessions} sessions, {os.cpu_count()} CPUs; ratio to the bare view, 1 process")
    for row in rows():
        rps = statistics.median(results[row])
        drops = bench.drops.get(row, 0)
        dropped = f"  pushes dropped {drops} times" if drops else ""
        print(f"  {label(row):<80} {rps:8.0f}/s  {ratios.to_bare(row):5.2f}x bare{dropped}")
    bare = ratios.scaling(BARE_1, BARE_2)
    print(f"\nscaling from 1 to 2 processes (writes); the bare view's: {bare:.2f}x")
    for s in SETUPS:
        one, two = ("write", s.store, s.layer, 1), ("write", s.store, s.layer, 2)
        print(
            f"  {s.label:<50} {ratios.scaling(one, two):5.2f}x, "
            f"{ratios.scaling_share(one, two):.2f} of the bare view's scaling"
        )


def cpu_table(bench: Bench, results: dict[Row, list[float]]) -> None:
    """Where each row's CPU went: microseconds per request, and how busy the machine was."""
    cores = os.cpu_count() or 1
    print(
        "\nCPU per request while measuring, µs (median of the rounds): daphne, Redis, "
        f"PostgreSQL, the rest (wrk, the clients, anyone else); the machine's {cores} cores busy;"
        "\nand, for 1 process, the bare view's daphne CPU per request over the row's: requests per"
        " daphne CPU-second\nagainst the bare view, the reading least moved by other load"
    )
    bare = 0.0
    for row in rows():
        spent = [
            (cpu, rps * cpu.wall) for cpu, rps in zip(bench.cpu[row], results[row], strict=True)
        ]

        def per(part: Callable[[Cpu], float], spent: list[tuple[Cpu, float]] = spent) -> float:
            return statistics.median(part(cpu) / max(n, 1) * 1e6 for cpu, n in spent)

        rest = per(lambda c: c.machine - c.daphne - c.redis - c.postgres)
        busy = bench.busy(row)
        daphne = per(lambda c: c.daphne)
        bare = daphne if row == BARE_1 else bare
        ratio = f"   {bare / daphne:4.2f}x" if row[3] == 1 and daphne else ""
        print(
            f"  {label(row):<80} {daphne:6.0f} {per(lambda c: c.redis):6.0f}"
            f" {per(lambda c: c.postgres):6.0f} {rest:6.0f}   {busy:3.0f}% busy{ratio}"
        )


def least(
    goal: str, value: float, limit: float, note: str = "", drops: int = 0
) -> dict[str, object]:
    """A ratio goal; it fails whatever its figure when its servers dropped pushes."""
    shown = goals._judged(value, 2, at_most=False) + note
    if drops:
        shown += f" (pushes dropped {drops} times)"
    return {"goal": f"{goal} >= {limit:.2f}", "value": shown, "pass": value >= limit and not drops}


def per_cpu_second(bench: Bench, results: dict[Row, list[float]]) -> dict[Row, list[float]]:
    """Each row's requests per daphne CPU-second, one figure a round: the reading least
    moved by whatever else the machine runs."""
    return {
        row: [
            rps * cpu.wall / max(cpu.daphne, 1e-9)
            for cpu, rps in zip(bench.cpu[row], done, strict=True)
        ]
        for row, done in results.items()
    }


def floor_words(floor: tuple[Row, ...]) -> str:
    return "a read and a write at their leanest" if len(floor) == 2 else "a read at its leanest"


def floor_note(ratios: Ratios, store: str, view: str) -> str:
    """What an engine's write or read cannot beat: the commands it needs at their leanest,
    and, where measured, Django's session API at its leanest on them."""
    floor = FLOORS[store, view]
    shown = f"{floor_words(floor)} {ratios.combined(*floor):.2f}x"
    django = DJANGO_FLOORS.get((store, view))
    if django:
        shown += f", Django's session API on them {ratios.to_bare(django):.2f}x"
    return shown


def api_frame(ratios: Ratios, store: str, write: Row) -> str:
    """What the API's PUT cannot beat: the site's middleware on that PUT, then with a write:
    the engine's, a read and a write at their leanest and, where measured, Django's session
    API on them."""
    parts = [
        f"the site's middleware on the API's PUT {ratios.to_bare(STACK_PUT):.2f}x",
        f"with the engine's write {ratios.combined(STACK_PUT, write):.2f}x",
    ]
    floor = FLOORS.get((store, "write"))
    if floor:
        parts.append(f"with {floor_words(floor)} {ratios.combined(STACK_PUT, *floor):.2f}x")
    django = DJANGO_FLOORS.get((store, "write"))
    if django:
        parts.append(f"with Django's session API on them {ratios.combined(STACK_PUT, django):.2f}x")
    return ", ".join(parts)


def throughput_goals(bench: Bench, results: dict[Row, list[float]]) -> list[dict[str, object]]:
    """The issue's ratios to the bare view, each judged on the median of its rounds.

    Beside each 1-process figure, the same ratio per daphne CPU-second; beside
    the API's, what frames it (api_frame) in both readings.
    """
    ratios, found = Ratios(results, bench.before), []
    cpu = Ratios(per_cpu_second(bench, results))
    drops = bench.drops
    for s in SETUPS:
        write, read = ("write", s.store, s.layer, 1), ("read", s.store, s.layer, 1)
        api, two = ("api", s.store, s.layer, 1), ("write", s.store, s.layer, 2)
        for view, row, limit in (
            ("write", write, s.write),
            ("read", read, s.read),
            ("API PUT", api, s.api),
        ):
            if limit is None:
                continue
            note = f"per daphne CPU-second {cpu.to_bare(row):.2f}x"
            if row == api:
                note = (
                    f"{api_frame(ratios, s.store, write)}; {note}: {api_frame(cpu, s.store, write)}"
                )
            elif (s.store, view) in FLOORS:
                note = f"its floor, {floor_note(ratios, s.store, view)}; {note}, its floor"
                note += f" {floor_note(cpu, s.store, view)}"
            found.append(
                least(
                    f"{s.label}: {view}",
                    ratios.to_bare(row),
                    limit,
                    f" ({note})",
                    drops.get(row, 0),
                )
            )
        share = ratios.scaling_share(write, two)
        note = (
            f" ({ratios.scaling(write, two):.2f}x against {ratios.scaling(BARE_1, BARE_2):.2f}x;"
            f" the machine {bench.busy(two):.0f}% busy with 2 processes;"
            f" per daphne CPU-second {cpu.scaling_share(write, two):.2f})"
        )
        lost = drops.get(write, 0) + drops.get(two, 0)
        goal = f"{s.label}: 1 -> 2 processes, share of bare's scaling"
        found.append(least(goal, share, SCALING, note, lost))
    return found


async def push_report(bench: Bench, args: argparse.Namespace) -> dict[str, object]:
    """Push latency per layer; the cross-process case judged against its goal."""
    print(f"\npush latency from the commit, {args.tabs} tabs, {args.pushes} sequential writes")
    cross: dict[str, list[float]] = {}
    for title, layer, count in [
        ("in-memory layer, 1 process", "memory", 1),
        ("Redis layer, 1 process", "redis", 1),
        ("Redis layer, 2 processes, tabs split over both", "redis", 2),
    ]:
        lags = await bench.push_latency(layer, count)
        for where in ("all", "same", "other"):
            if lags[where] and (where == "all" or count == 2):
                p50, p99 = percentile(lags[where], 0.5), percentile(lags[where], 0.99)
                shown = title if where == "all" else f"  of which the tabs on the {where} process"
                print(f"  {shown:<72} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
        cross = lags
    p99 = percentile(cross["all"], 0.99)
    return {
        "goal": f"push across processes: p99 <= {PUSH_P99_MS:g} ms from the commit, "
        f"{args.tabs} tabs on one session, half on the other process",
        "value": f"{goals._judged(p99, 1, at_most=True, unit=' ms')} "
        f"(p50 {percentile(cross['all'], 0.5):.1f} ms)",
        "pass": p99 <= PUSH_P99_MS,
    }


async def measure_and_report(bench: Bench, args: argparse.Namespace) -> None:
    results = await measure(bench, args)
    throughput_table(bench, results, args)
    cpu_table(bench, results)
    push = await push_report(bench, args)
    print(goals.goal_table([*throughput_goals(bench, results), push]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections in all")
    parser.add_argument("--sessions", type=int, default=32, help="sessions the load spreads over")
    parser.add_argument("--rounds", type=int, default=3, help="runs per row (median shown)")
    parser.add_argument("--tabs", type=int, default=100, help="tabs in the push test")
    parser.add_argument("--pushes", type=int, default=100, help="writes in the push test")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
