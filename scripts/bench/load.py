"""Load on the benchmark servers: wrk runs, and the HTTP calls around them."""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from typing import Any

import aiohttp
from machine import CLIENT_CORE, pin

WRK = shutil.which("wrk") or "/usr/bin/wrk"
COOKIE = "sessionid"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass
class Wrk:
    """What one wrk run reports."""

    rps: float
    requests: int
    errors: int  # connect, read and write errors, and non-2xx/3xx answers
    timeouts: int
    p50_ms: float
    p99_ms: float


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse(out: str) -> Wrk:
    def number(pattern: str) -> str:
        match = re.search(pattern, out, re.MULTILINE)
        return match[1] if match else "0"

    sockets = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    connect, read, write, timeout = (int(g) for g in sockets.groups()) if sockets else (0,) * 4
    return Wrk(
        rps=float(number(r"Requests/sec:\s+([\d.]+)")),
        requests=int(number(r"(\d+) requests in")),
        errors=connect + read + write + int(number(r"Non-2xx or 3xx responses: (\d+)")),
        timeouts=timeout,
        p50_ms=_ms(number(r"^\s+50%\s+(\S+)")) if "50%" in out else 0.0,
        p99_ms=_ms(number(r"^\s+99%\s+(\S+)")) if "99%" in out else 0.0,
    )


async def wrk(url: str, cookie: str | None, connections: int, seconds: int) -> Wrk:
    cmd = [*pin(CLIENT_CORE), WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if cookie:
        cmd += ["-H", f"Cookie: {COOKIE}={cookie}"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"wrk failed: {err.decode()}{out.decode()}")
    return parse(out.decode())


async def new_session(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/bench/new") as resp:
        resp.raise_for_status()
        return resp.cookies[COOKIE].value


async def acked(http: aiohttp.ClientSession, url: str) -> int:
    """The server's count of acknowledged writes, once in-flight requests have settled."""
    last = -1
    for _ in range(50):
        async with http.get(f"{url}/bench/stats") as resp:
            count = int((await resp.json())["acked"])
        if count == last:
            return count
        last = count
        await asyncio.sleep(0.1)
    return last


async def stored(http: aiohttp.ClientSession, url: str, cookie: str, live: bool) -> dict[str, Any]:
    """The session read back: the project's GET /api/session for the live engine."""
    path = "/api/session" if live else "/bench/dump"
    async with http.get(f"{url}{path}", headers={"Cookie": f"{COOKIE}={cookie}"}) as resp:
        resp.raise_for_status()
        return dict(await resp.json())


async def probe(
    http: aiohttp.ClientSession, url: str, cookie: str, live: bool, n: int
) -> tuple[int, int]:
    """Send n concurrent writes of distinct keys to one session: (acknowledged, kept)."""

    async def one() -> str:
        target = f"{url}/bench/write-distinct"
        async with http.get(target, headers={"Cookie": f"{COOKIE}={cookie}"}) as resp:
            return (await resp.text()) if resp.status == 200 else ""

    keys = [k for k in await asyncio.gather(*(one() for _ in range(n))) if k]
    data = (await stored(http, url, cookie, live))["data"]
    return len(keys), sum(1 for k in keys if k in data)
