"""Serve the project from several daphne processes on consecutive ports.

    REDIS_URL=redis://127.0.0.1:6379/0 python manage.py serve_many --processes 2 --port 8000

The processes share the channel layer (and tab counts) through REDIS_URL, the
sessions through DATABASE_URL (PostgreSQL for real concurrency) or, with
SESSION_STORE=redis, through Redis. Point a browser at any of the ports, or a
load test at all of them. Ctrl-C stops them all; so does any one of them dying.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run N daphne processes on consecutive ports, sharing Redis (and the database)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--processes", type=int, default=2, help="how many (default 2)")
        parser.add_argument("--port", type=int, default=8000, help="the first port (default 8000)")
        parser.add_argument("--host", default="127.0.0.1", help="the address to bind")
        parser.add_argument(
            "--no-migrate", action="store_true", help="skip `migrate` before starting"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count, first, host = options["processes"], options["port"], options["host"]
        if count < 1:
            raise CommandError("--processes must be 1 or more.")
        if count > 1 and not settings.REDIS_URL:
            raise CommandError(
                "Several processes reach each other's tabs only through Redis: "
                "set REDIS_URL=redis://127.0.0.1:6379/0."
            )
        database = str(settings.DATABASES["default"]["ENGINE"]).rsplit(".", 1)[-1]
        layer = str(settings.CHANNEL_LAYERS["default"]["BACKEND"]).rsplit(".", 1)[-1]
        if count > 1 and database == "sqlite3":
            self.stderr.write(
                "Note: the processes share one SQLite file, which takes one writer at a "
                "time; set DATABASE_URL=postgres://... for writes in parallel."
            )
        if not options["no_migrate"]:
            call_command("migrate", verbosity=0)
        # "asgi_config.asgi.application" -> "asgi_config.asgi:application"
        module, _, name = settings.ASGI_APPLICATION.rpartition(".")
        processes = []
        for port in range(first, first + count):
            command = [sys.executable, "-m", "daphne", "-b", host, "-p", str(port)]
            processes.append(subprocess.Popen([*command, f"{module}:{name}"]))
            self.stdout.write(f"http://{host}:{port}/  (pid {processes[-1].pid})")
        self.stdout.write(
            f"sessions: {settings.SESSION_ENGINE}, database: {database}, channel layer: {layer}"
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            while all(p.poll() is None for p in processes):
                time.sleep(0.2)
            dead = next(p for p in processes if p.poll() is not None)
            self.stderr.write(f"daphne (pid {dead.pid}) exited with {dead.returncode}; stopping.")
        except KeyboardInterrupt:
            pass
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
