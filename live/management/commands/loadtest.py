"""`manage.py loadtest`: virtual users with tabs hammer the JSON API of a running server.

It reports latency per operation, push latency to every tab, pushes missed,
reconnects and lost writes, and exits with 1 when an acknowledged write was
lost (or a read contradicted one), a key could not be verified, a tab did not
end on its session's final state, or the error rate is above --max-error-rate.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import IO, Any, cast

from django.core.management.base import BaseCommand, CommandError

from live.loadtest import config, scenario

# aiohttp and rich are the "loadtest" extra: without them the command says so
# instead of failing to load.
try:
    from rich.console import Console

    from live.loadtest import report, runner
except ImportError as exc:
    MISSING: str | None = exc.name
else:
    MISSING = None


class Command(BaseCommand):
    help = (
        "Load test a running server: virtual users, each with its own session and WebSocket "
        "tabs, run a mix of session API calls; reports latency, push latency and lost writes."
    )
    # The tester only talks HTTP to a server, which checks itself.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        config.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if MISSING:
            raise CommandError(
                f"The load tester needs {MISSING}: pip install 'django-live-sessions[loadtest]'."
            )
        spec = options.get("scenario")
        if spec:
            target, colon, name = spec.partition(":")
            if target.endswith(".py") or "/" in target:
                # Absolute, so that worker processes started elsewhere find the same file.
                options["scenario"] = str(Path(target).resolve()) + colon + name
            try:
                scenario.load(options["scenario"])
            except scenario.ScenarioError as exc:
                raise CommandError(str(exc)) from None
        try:
            settings = config.from_options(options)
        except config.ConfigError as exc:
            raise CommandError(str(exc)) from None
        no_color = options.get("no_color", False)
        # The live line goes to stderr so that stdout holds only the report.
        progress = Console(stderr=True, no_color=no_color)
        try:
            outcome = runner.run(settings, progress)
        except runner.LoadTestError as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            raise CommandError("Interrupted; no report.") from None
        result = report.build(settings, outcome)
        console = Console(file=cast(IO[str], self.stdout), no_color=no_color)
        if not console.is_terminal:
            # Logs and CI: rich would wrap the table at 80 columns.
            console.width = 120
        report.render(result, console)
        if settings.json_path:
            Path(settings.json_path).write_text(json.dumps(result, indent=2) + "\n")
        if result["failures"]:
            raise CommandError(" ".join(result["failures"]), returncode=1)
