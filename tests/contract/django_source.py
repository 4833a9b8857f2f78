"""Django's own session tests, from the source distribution of the installed Django.

They are the contract of a session engine; they are fetched once (pip
download of the sdist) into a cache folder, never copied into this repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import django

APP = "sessions_tests"


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "live-sessions" / f"django-{django.__version__}"


def django_tests() -> Path | None:
    """The `tests` folder of Django's source, holding sessions_tests; None if it cannot be had."""
    cache = cache_dir()
    tests = cache / f"django-{django.__version__}" / "tests"
    if (tests / APP / "tests.py").exists():
        return tests
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
            *("--no-binary", ":all:", f"django=={django.__version__}", "--dest", str(cache)),
        ],
        check=False,
        timeout=300,
        capture_output=True,
    )
    archive = next(iter(sorted(cache.glob("[dD]jango-*.tar.gz"))), None)
    if archive is None:
        return None
    with tarfile.open(archive) as tar:
        wanted = [m for m in tar.getmembers() if f"/tests/{APP}/" in m.name]
        tar.extractall(cache, members=wanted, filter="data")
    return tests if (tests / APP / "tests.py").exists() else None
