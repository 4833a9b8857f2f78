"""The contract suites again, on PostgreSQL: Django's session tests and a project's TestCase suite.

They run in a pytest of their own with DATABASE_URL pointing at PostgreSQL, as a
project on PostgreSQL runs its tests; the run must pass and leave no test
database behind (a connection the engine kept open would stop the drop).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TEST_DATABASE = "test_live_sessions"  # asgi_config.settings names it


def test_contract_suites_pass_on_postgresql_and_drop_their_database(postgres_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": postgres_url}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(HERE / "test_django_sessions.py"),
            str(HERE / "test_user_suite.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    assert " passed" in done.stdout and "being accessed by other users" not in report, report
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,))
        assert left.fetchone() is None
    assert urlparse(postgres_url).scheme.startswith("postgres")
