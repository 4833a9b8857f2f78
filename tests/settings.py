"""The project's settings, plus Django's own session tests as an app when they can be had."""

from __future__ import annotations

import sys

from asgi_config.settings import *  # noqa: F403
from asgi_config.settings import INSTALLED_APPS
from tests.contract.django_source import APP, django_tests

DJANGO_TESTS = django_tests()
if DJANGO_TESTS is not None:
    sys.path.insert(0, str(DJANGO_TESTS))
    INSTALLED_APPS = [*INSTALLED_APPS, APP]

# The suite tests the engine's own connections (SQLite on the loop, its
# threads); the contract tests ask for the default ("auto") themselves.
LIVE_SESSIONS = {**LIVE_SESSIONS, "CONNECTIONS": "own"}  # noqa: F405
