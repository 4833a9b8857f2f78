"""The site that scenarios run against, shared by the scenario runner's and Locust's tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, Server, free_port, migrate, server_env


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One daphne for the module, with the demo account the login scenario signs in with."""
    yield from _site(tmp_path_factory, "db")


@pytest.fixture(scope="module")
def django_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same site on Django's own db engine, which the app watches."""
    yield from _site(tmp_path_factory, "django-db")


def _site(tmp_path_factory: pytest.TempPathFactory, store: str) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("site")
    env = server_env(tmp_path, SESSION_STORE=store)
    migrate(env)
    demo_user = [sys.executable, "manage.py", "demo_user"]
    subprocess.run(demo_user, cwd=ROOT, env=env, check=True, capture_output=True)
    server = Server(port=free_port(), env=env, log=tmp_path / "daphne.log")
    server.start()
    yield server
    server.stop()
