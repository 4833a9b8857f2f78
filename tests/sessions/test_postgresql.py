"""The SQL store's merge on PostgreSQL, with writers racing for real on one session.

A process of its own on a fresh database, its threads each on their Django
connection, as the engine's database threads are: the merge onto an unchanged
row is one statement there, and its fallback takes the row's lock.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, migrate, server_env

pytestmark = pytest.mark.services

RACE = """
import json, threading, time
import django
django.setup()
from django.db import connection
from live.sessions import connections, sql
from live.types import Changes

WRITERS = 8
DIGEST = "e" * 64
found = {"statements": {}}


def expiry(_value):
    return time.time() + 3600


class Recording:
    def __init__(self, inner):
        self.inner, self.vendor, self.statements = inner, inner.vendor, []

    def execute(self, statement, params=()):
        self.statements.append(statement.split()[0])
        return self.inner.execute(statement, params)

    def count(self, statement, params=()):
        self.statements.append(statement.split()[0])
        return self.inner.count(statement, params)

    def atomic(self):
        return self.inner.atomic()

    def alone(self):
        return self.inner.alone()

    def kept_rows(self, check=True):
        return self.inner.kept_rows(check)


def merge(db, key, value, base):
    recording = Recording(db)
    sql.merge(recording, DIGEST, Changes(sets={key: value}), expiry, "race", base)
    return recording.statements


def stale(n, ready):
    # Every writer holds version 0 when they all write at once.
    base = connections.call(sql.read, DIGEST)
    ready.wait()
    found["statements"][n] = connections.call(merge, f"k{n}", n, base)
    connection.close()


def busy(n, rounds):
    for value in range(rounds):
        base = connections.call(sql.read, DIGEST)
        connections.call(merge, f"busy{n}", value, base)
    connection.close()


def race(target, *args):
    threads = [threading.Thread(target=target, args=(n, *args)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


connections.call(sql.insert, DIGEST, "abcd…wxyz", {}, expiry)
race(stale, threading.Barrier(WRITERS))
found["first"] = connections.call(sql.read, DIGEST).data
race(busy, 20)
row = connections.call(sql.read, DIGEST)
found["data"], found["version"] = row.data, row.version
found["versions"] = [v for (v,) in connections.call(
    lambda db: db.execute("SELECT version FROM live_livechange WHERE digest = %s", (DIGEST,))
)]
print(json.dumps(found))
"""


def race(tmp_path: Path, database: str) -> dict[str, Any]:
    env = server_env(tmp_path, DATABASE_URL=database, PYTHONPATH=str(ROOT))
    migrate(env)
    done = subprocess.run(
        [sys.executable, "-c", RACE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_racing_writers_on_postgresql_lose_no_key_and_no_timeline_entry(
    tmp_path: Path, fresh_postgres: str
):
    found = race(tmp_path, fresh_postgres)
    # Eight writers from one base: one statement wins, the others merge under the lock.
    statements = list(found["statements"].values())
    assert statements.count(["WITH"]) == 1, statements
    assert all("SELECT" in each for each in statements if each != ["WITH"]), statements
    assert found["first"] == {f"k{n}": n for n in range(8)}
    # Then 160 writes from fresh bases, 8 at once: each a version, each version an entry.
    data = found["data"]
    assert data == {**found["first"], **{f"busy{n}": 19 for n in range(8)}}
    assert found["version"] == 8 + 8 * 20
    versions = sorted(found["versions"])
    # Every 16th version prunes all but the newest 50 entries.
    assert versions == list(range(versions[0], 169)) and 50 <= len(versions) < 50 + 16
