"""Daphne processes for the benchmarks: pinned, each with its own migrated SQLite file."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from machine import ROOT, SERVER_CORE, pin

sys.path.insert(0, str(ROOT))
from tests.conftest import free_port


def environment(database_url: str, settings: str, **extra: str) -> dict[str, str]:
    """Production-like: DEBUG off (no query log), plain HTTP, a throwaway database.

    REDIS_URL is dropped unless `extra` sets it: only the Redis engine's row uses Redis.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SSL_REDIRECT": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)
    return env | extra


def sqlite_url(db: Path) -> str:
    return f"sqlite:///{db}"


def migrate(database_url: str) -> None:
    env = environment(database_url, "asgi_config.settings")
    cmd = [sys.executable, "manage.py", "migrate", "--verbosity", "0"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


@dataclass
class Daphne:
    """One daphne serving `app` on core 0 with `env`."""

    name: str
    app: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        daphne = str(Path(sys.executable).parent / "daphne")
        cmd = [*pin(SERVER_CORE), daphne, "-b", "127.0.0.1", "-p", str(self.port), self.app]
        with self.log.open("ab") as log:
            # taskset execs daphne, so the pid is daphne's own.
            self.process = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne {self.name} exited; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"daphne {self.name} does not listen on {self.port}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far, from /proc/<pid>/stat."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # Fields after the command name (which may hold spaces), from field 3 on.
        fields = stat.rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")
