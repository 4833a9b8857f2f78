"""How much does one session's flood of writes slow another session's writes?

Usage: python scripts/bench_flood.py [--flooders 64] [--writes 300] [--root PATH]

It serves the project (or the checkout at --root) with daphne on a free port
and a throwaway, migrated SQLite database. A neighbour session writes one key
at a time, first alone (idle), then while --flooders concurrent writers hammer
another session. It prints the neighbour's p50 and p99 in both phases, their
ratio (flooded / idle: 1.0 means the flood costs the neighbour nothing), and
what the flood got: writes per second and how many were refused with 429.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from yarl import URL

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def visitor(url: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"Origin": url, "Referer": url + "/"},
    )
    async with http.get(url + "/") as response:
        assert response.status == 200
    http.headers["X-CSRFToken"] = http.cookie_jar.filter_cookies(URL(url))["csrftoken"].value
    return http


async def put(http: aiohttp.ClientSession, url: str, key: str, value: int) -> tuple[int, float]:
    started = time.perf_counter()
    async with http.put(f"{url}/api/session/keys/{key}", data=json.dumps(value)) as response:
        await response.read()
        return response.status, time.perf_counter() - started


async def neighbour(http: aiohttp.ClientSession, url: str, writes: int) -> list[float]:
    latencies = []
    for n in range(writes):
        status, took = await put(http, url, "mine", n)
        assert status == 200, status
        latencies.append(took)
    return latencies


async def measure(url: str, flooders: int, writes: int) -> None:
    calm, flood = await visitor(url), await visitor(url)
    stop = asyncio.Event()
    statuses: dict[int, int] = {}

    async def flooder(n: int) -> None:
        i = 0
        while not stop.is_set():
            status, _ = await put(flood, url, f"f{n}", i)
            statuses[status] = statuses.get(status, 0) + 1
            i += 1

    try:
        await neighbour(calm, url, 20)  # warm-up
        idle = await neighbour(calm, url, writes)
        tasks = [asyncio.ensure_future(flooder(n)) for n in range(flooders)]
        started = time.perf_counter()
        flooded = await neighbour(calm, url, writes)
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        await calm.close()
        await flood.close()
    idle_p50, flood_p50 = statistics.median(idle) * 1000, statistics.median(flooded) * 1000
    idle_p99 = statistics.quantiles(idle, n=100)[98] * 1000
    flood_p99 = statistics.quantiles(flooded, n=100)[98] * 1000
    print(f"neighbour idle:    p50 {idle_p50:.1f} ms, p99 {idle_p99:.1f} ms")
    print(f"neighbour flooded: p50 {flood_p50:.1f} ms, p99 {flood_p99:.1f} ms")
    print(f"ratio flooded/idle: p50 {flood_p50 / idle_p50:.2f}, p99 {flood_p99 / idle_p99:.2f}")
    done = statuses.get(200, 0)
    print(
        f"flood: {flooders} writers, {done / elapsed:.0f} writes/s accepted, "
        f"{statuses.get(429, 0)} refused with 429, other statuses "
        f"{ {k: v for k, v in statuses.items() if k not in (200, 429)} }"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flooders", type=int, default=64)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/flood.sqlite3",
            # Plain HTTP on localhost: with DEBUG off the cookies would be
            # Secure, and a client does not send those back over http.
            "DJANGO_DEBUG": "1",
            "DJANGO_SECRET_KEY": "flood-" + "x" * 50,
            "DJANGO_SETTINGS_MODULE": "asgi_config.settings",
        }
        env.pop("REDIS_URL", None)
        root = args.root.resolve()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
            cwd=root,
            env=env,
            check=True,
        )
        port = free_port()
        daphne = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-p", str(port), "asgi_config.asgi:application"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            asyncio.run(measure(f"http://127.0.0.1:{port}", args.flooders, args.writes))
        finally:
            daphne.terminate()
            daphne.wait(timeout=10)


if __name__ == "__main__":
    main()
