"""Shared fixtures: a fresh channel layer per test, and real daphne servers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from channels.layers import channel_layers

from live import limits
from live.realtime import presence

ROOT = Path(__file__).resolve().parent.parent


def skip_or_fail(reason: str) -> None:
    """Skip locally when a part is missing; in CI (LIVE_REQUIRE_ALL=1) fail instead."""
    if os.environ.get("LIVE_REQUIRE_ALL"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Each run gets its own SQLite test database, so two runs at once (CI and
    # a local run, say) never share a file.
    from django.conf import settings

    db = settings.DATABASES["default"]
    if str(db["ENGINE"]).endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(autouse=True)
def fresh_layer() -> Iterator[None]:
    # The in-memory layer is a module-global singleton bound to the event loop
    # of its first use; every test gets a new one, and no leftover counts.
    channel_layers.backends.clear()
    presence.reset()
    limits.reset()
    yield
    channel_layers.backends.clear()
    presence.reset()


@pytest.fixture
def fast_passwords(settings: Any) -> None:
    """A quick password hasher: the default spends half a second per login."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="module")
def hostile_tally() -> Iterator[None]:
    """Count a module's hostile cases (tests.helpers.Cases) and print the tally at its end."""
    from tests.helpers import TALLY

    TALLY.reset()
    yield
    print(
        f"\nhostile input: {TALLY.cases} cases tried, {TALLY.server_errors} answered 5xx, "
        f"{TALLY.refused_but_changed} refused writes changed state"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@dataclass
class Server:
    """A daphne process serving the project, and how to restart it."""

    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/session/"

    def start(self) -> None:
        daphne = str(Path(sys.executable).parent / "daphne")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [daphne, "-b", "127.0.0.1", "-p", str(self.port), "asgi_config.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "asgi_config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'server.sqlite3'}",
        "DJANGO_DEBUG": "1",
    }
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


@pytest.fixture(autouse=True)
def _live_server_helper() -> Iterator[None]:
    # Replaces pytest-django's helper of the same name: our live_server is a
    # real daphne process, not Django's threaded test server.
    yield


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Server]:
    """A real daphne on a free port, with its own SQLite database."""
    env = server_env(tmp_path)
    migrate(env)
    server = Server(port=free_port(), env=env, log=tmp_path / "daphne.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        skip_or_fail("Debian's chromium is not installed (apt-get install chromium)")
    assert path
    return path


# --- the scale-out services: PostgreSQL and Redis on this machine ---------------------

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL") or "redis://127.0.0.1:6379/0"
DATABASE_TEST_URL = os.environ.get("DATABASE_TEST_URL") or "postgres://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """REDIS_TEST_URL, once Redis answers there."""
    import redis

    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {REDIS_TEST_URL} does not answer: {exc}")
    return REDIS_TEST_URL


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """DATABASE_TEST_URL, once PostgreSQL answers there."""
    import psycopg

    try:
        psycopg.connect(DATABASE_TEST_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        skip_or_fail(f"PostgreSQL at {DATABASE_TEST_URL} does not answer: {exc}")
    return DATABASE_TEST_URL


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    import uuid
    from urllib.parse import urlparse

    import psycopg

    name = f"live_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlparse(postgres_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        # FORCE: a server killed by the test may have left a connection behind.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RedisServer:
    """A redis-server of the test's own on a spare port, to stop and start again."""

    port: int
    dir: Path
    args: tuple[str, ...] = ("--save", "", "--appendonly", "no")
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--dir", str(self.dir), *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Redis hangs: its sockets stay open and nothing answers, until the block ends."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start redis-servers of the test's own; arguments replace the no-persistence default."""
    if not shutil.which("redis-server"):
        skip_or_fail("redis-server is not installed (apt-get install redis-server)")
    started: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        folder = tmp_path / f"redis-{len(started)}"
        folder.mkdir()
        server = RedisServer(free_port(), folder, *([args] if args else []))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@dataclass
class LocalCluster:
    """A Redis Cluster of primaries without replicas, each a redis-server of the test's own.

    cluster-require-full-coverage is off, as a cluster without replicas needs
    for the slots of the other primaries to go on while one is down.
    """

    primaries: list[RedisServer]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.primaries[0].port}"

    def create(self) -> None:
        nodes = [f"127.0.0.1:{server.port}" for server in self.primaries]
        options = ["--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, *options],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=30,
        )
        self.wait_until_ok(self.primaries)

    @staticmethod
    def wait_until_ok(servers: list[RedisServer], timeout: float = 20.0) -> None:
        """Poll CLUSTER INFO until every server says cluster_state:ok."""
        import redis

        deadline = time.monotonic() + timeout
        for server in servers:
            client = redis.Redis(port=server.port, socket_timeout=1, decode_responses=True)
            # redis-py parses CLUSTER INFO into a dict.
            while client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                assert time.monotonic() < deadline, f"cluster not ok on {server.port}"
                time.sleep(0.05)
            client.close()

    def stop(self) -> None:
        for server in self.primaries:
            server.kill()


def start_cluster(folder: Path, count: int = 3) -> LocalCluster:
    """Start `count` cluster-enabled redis-servers in `folder` and join them into a cluster."""
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        skip_or_fail("redis-server or redis-cli is not installed (apt-get install redis-server)")
    primaries = []
    for n in range(count):
        node = folder / f"node-{n}"
        node.mkdir()
        args = [
            *("--save", "", "--appendonly", "no", "--cluster-enabled", "yes"),
            *("--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port())),
            *("--cluster-require-full-coverage", "no", "--cluster-node-timeout", "2000"),
        ]
        primaries.append(RedisServer(free_port(), node, tuple(args)))
    cluster = LocalCluster(primaries)
    try:
        for server in primaries:
            server.start()
        cluster.create()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a local Redis Cluster of three primaries, shared by the session's tests."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster.url
    cluster.stop()


@pytest.fixture
def own_redis_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A local Redis Cluster of three primaries of the test's own, to stop one of."""
    cluster = start_cluster(tmp_path)
    yield cluster
    cluster.stop()


# Flags for Debian's chromium in a sandbox with no network: without the
# background-networking ones it keeps dialling out and being refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless chromium per test module, driven by playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()
