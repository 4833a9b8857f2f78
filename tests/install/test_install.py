"""The README's recipe, followed to the letter on a fresh `django-admin startproject`.

The wheel of this checkout goes into a new virtual environment (with its
dependencies from the package index), once per supported Django; each case
then starts a project, pastes the README's marked blocks where the README
says, serves it with daphne and watches, in chromium, a plain view's write
reach the live page. The blocks are read from README.md itself, so the
README cannot drift from what works.

On Django 6 the live engine's case drops "template_partials", as the README
advises there; the other keeps it, as a project upgraded from 5.2 would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.conftest import ROOT, free_port, skip_or_fail, wait_for_port
from tests.helpers import WAIT_MS, css_string

README = (ROOT / "README.md").read_text()
SECTION = README.split("## Add it to your project\n", 1)[1].split("\n## ", 1)[0]
# Each block the user pastes follows a marker: <!-- recipe: settings --> and so on.
BLOCKS = dict(re.findall(r"<!-- recipe: (\w+) -->\n```python\n(.*?)```", SECTION, re.S))
# A step is a fenced block of the section: a command to run or code to paste.
STEPS = SECTION.count("```") // 2
SETTINGS_LINES = sum(
    1 for line in BLOCKS.get("settings", "").splitlines() if line.strip() and line[0] != "#"
)

PREFIX = "tools/live/"
SHOP_VIEW = """
from django.http import HttpResponse


async def favorite(request):
    await request.session.aset("favorite", "green")
    return HttpResponse("<!doctype html><title>Shop</title><p>Your favorite is green.</p>")
"""
SHOP_URLS = """
from shop.views import favorite

urlpatterns += [path("shop/", favorite)]
"""


@dataclass(frozen=True)
class Target:
    """A Python and the Django it runs; `django` is what pip adds after the wheel, if anything."""

    python: str
    django: str
    requirement: str | None = None

    @property
    def id(self) -> str:
        return f"py{self.python}-django{self.django}"

    @property
    def has_partials(self) -> bool:
        """Whether Django has partials built in (6.0 on)."""
        return int(self.django.split(".")[0]) >= 6

    def interpreter(self) -> str | None:
        if sys.version_info[:2] == tuple(map(int, self.python.split("."))):
            return sys.executable
        pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        found = sorted(
            pyenv.glob(f"versions/{self.python}*/bin/python{self.python}"),
            key=lambda path: [int(n) for n in re.findall(r"\d+", path.parent.parent.name)],
            reverse=True,
        )
        # pyenv's shim on PATH may name a python it cannot run: each candidate is tried.
        for candidate in [*map(str, found), shutil.which(f"python{self.python}")]:
            if candidate and run([candidate, "-c", ""], check=False).returncode == 0:
                return candidate
        return None


TARGETS = [
    Target("3.11", "5.2"),
    Target("3.12", "6.1", "Django>=6.1,<6.2"),
]
ENGINES = {"live-engine": "live.engine", "django-db": "django.contrib.sessions.backends.db"}


def run(
    command: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def test_recipe_is_short() -> None:
    print(f"\nrecipe: {STEPS} steps, {SETTINGS_LINES} settings lines")
    assert set(BLOCKS) == {"settings", "urls", "asgi"}
    assert SETTINGS_LINES <= 10
    assert STEPS <= 6


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built from a copy of its files.

    A copy, because setuptools builds in the source tree: a stale build/ there
    would put modules that no longer exist into the wheel.
    """
    source = tmp_path_factory.mktemp("source")
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out)]
    run([*pip_wheel, str(source)])
    (built,) = out.glob("django_live_sessions-*.whl")
    return built


@dataclass(frozen=True)
class Venv:
    path: Path
    target: Target


@pytest.fixture(scope="module", params=TARGETS, ids=lambda target: target.id)
def venv(
    request: pytest.FixtureRequest, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Venv:
    """A fresh virtual environment holding the wheel and its dependencies, on one Django."""
    target: Target = request.param
    python = target.interpreter()
    if python is None:
        skip_or_fail(f"no Python {target.python} found (pyenv or PATH) for Django {target.django}")
    assert python
    folder = tmp_path_factory.mktemp(f"venv-{target.id}")
    run([python, "-m", "venv", str(folder)])
    extra = [target.requirement] if target.requirement else []
    run([str(folder / "bin/python"), "-m", "pip", "install", "--quiet", str(wheel), *extra])
    version = run([str(folder / "bin/python"), "-m", "django", "--version"]).stdout.strip()
    assert version.startswith(f"{target.django}."), version
    return Venv(folder, target)


def site_env(venv: Path) -> dict[str, str]:
    """The environment of a shell with the venv activated, and nothing of this test run."""
    skipped = ("DJANGO_", "DATABASE_", "REDIS_", "PYTHON")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skipped)}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once in:\n{text}"
    return text.replace(old, new)


def follow_recipe(site: Path, engine: str, partials: bool) -> None:
    """Paste the README's blocks where it says; Django's engine leaves SESSION_ENGINE out."""
    settings = BLOCKS["settings"]
    if engine != "live.engine":
        line = re.search(r'^SESSION_ENGINE = "live.engine".*\n', settings, re.M)
        assert line, settings
        settings = settings.replace(line[0], "")
    if not partials:
        settings = replace_once(settings, ' "template_partials",', "")
    project = site / "mysite"
    with (project / "settings.py").open("a") as file:
        file.write(f"\n{settings}\nINSTALLED_APPS += ['shop']\n")
    urls = replace_once(BLOCKS["urls"], 'path("live/"', f'path("{PREFIX}"')
    with (project / "urls.py").open("a") as file:
        file.write(f"\n{urls}{SHOP_URLS}")
    asgi = (project / "asgi.py").read_text()
    asgi = replace_once(asgi, "application = get_asgi_application()\n", BLOCKS["asgi"])
    (project / "asgi.py").write_text(asgi)
    (site / "shop/views.py").write_text(SHOP_VIEW)


@pytest.fixture
def serve() -> Iterator[Callable[[Path, dict[str, str], Path], int]]:
    """Serve a site with daphne on a free port; every daphne is stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(site: Path, env: dict[str, str], log: Path) -> int:
        port = free_port()
        command = ["daphne", "-b", "127.0.0.1", "-p", str(port), "mysite.asgi:application"]
        with log.open("wb") as out:
            started.append(subprocess.Popen(command, cwd=site, env=env, stdout=out, stderr=out))
        try:
            wait_for_port(port)
        except TimeoutError:
            pytest.fail(f"daphne did not listen:\n{log.read_text()}")
        return port

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.mark.browser
@pytest.mark.parametrize("engine", ENGINES.values(), ids=ENGINES.keys())
def test_recipe_on_a_fresh_project_pushes_a_plain_views_write(
    venv: Venv,
    engine: str,
    serve: Callable[[Path, dict[str, str], Path], int],
    browser: Browser,
    tmp_path: Path,
) -> None:
    site, env = tmp_path / "mysite", site_env(venv.path)
    run(["django-admin", "startproject", "mysite"], tmp_path, env)
    run(["python", "manage.py", "startapp", "shop"], site, env)
    partials = not venv.target.has_partials or engine != "live.engine"
    follow_recipe(site, engine, partials)
    run(["python", "manage.py", "migrate", "--verbosity", "0"], site, env)
    checked = run(["python", "manage.py", "check", "--fail-level", "WARNING"], site, env)
    assert "no issues" in checked.stdout, checked.stdout + checked.stderr
    shown = run(["python", "manage.py", "diffsettings", "--all"], site, env).stdout
    assert f"SESSION_ENGINE = '{engine}'" in shown
    assert ("'template_partials'" in shown) == partials

    log = tmp_path / "daphne.log"
    port = serve(site, env, log)

    context = browser.new_context()
    try:
        live = context.new_page()
        errors: list[str] = []
        live.on("pageerror", lambda exc: errors.append(str(exc)))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(message.text)

        live.on("console", on_console)
        live.goto(f"http://127.0.0.1:{port}/{PREFIX}")
        status = live.locator("#live-status")
        expect(status).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        # A full load wipes this marker: it proves the key came without one.
        live.evaluate("window.__sameDocument = true")

        shop = context.new_page()
        shop.goto(f"http://127.0.0.1:{port}/shop/")
        expect(shop.locator("body")).to_contain_text("green")

        row = live.locator(f"#session-keys [data-session-key={css_string('favorite')}]")
        expect(row.locator("[data-session-value]")).to_contain_text("green", timeout=WAIT_MS)
        assert live.evaluate("window.__sameDocument === true")
        expect(status).to_have_attribute("data-state", "open")
        assert errors == [], errors
    finally:
        context.close()
    assert "Traceback" not in log.read_text(), log.read_text()
