"""PostgreSQL and Redis for the scale-out engines' rows, when this machine has them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import psycopg
import redis

# The same variables as the test suite's; the defaults are the local servers.
ADMIN_URL = os.environ.get("DATABASE_TEST_URL") or "postgres://postgres@127.0.0.1:5432/test"
REDIS_URL = (
    os.environ.get("REDIS_TEST_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
)
# Every key of the Redis engine starts with this (live.sessions.redis.PREFIX).
SESSION_KEYS = "live:session:*"


@contextmanager
def postgres() -> Iterator[str | None]:
    """The URL of a scratch database, dropped afterwards; None when no server answers."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError:
        yield None
        return
    name = f"live_bench_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlparse(ADMIN_URL)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_url() -> Iterator[str | None]:
    """Redis's URL, or None when it does not answer; the run's sessions are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=10)
    try:
        before = set(client.scan_iter(SESSION_KEYS))
    except redis.RedisError:
        client.close()
        yield None
        return
    try:
        yield REDIS_URL
    finally:
        made = set(client.scan_iter(SESSION_KEYS)) - before
        if made:
            client.delete(*made)
        client.close()
