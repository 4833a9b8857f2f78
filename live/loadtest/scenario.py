"""Scenarios: what a virtual user does, written as a class of weighted async tasks.

A scenario is plain async Python in the shape Locust users know::

    from live.loadtest.scenario import Scenario, between, task

    class Color(Scenario):
        wait = between(0.1, 0.5)

        @task
        async def pick(self) -> None:
            await self.client.get("/color/", writes={"favorite_color": "green"})

Each virtual user gets its own instance, its own cookie jar and CSRF token,
and its WebSocket tabs. `self.client` sends requests; each is a named step of
the report (its name defaults to the method and path). A step that declares
`writes` is checked: the user's tabs must receive those values, and the
session must hold them at the end unless a later step changed them.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import inspect
import random
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from live.loadtest.model import ABSENT

if TYPE_CHECKING:
    from live.loadtest.visitor import ScenarioClient

# The examples shipped with the package, reachable by their short name.
EXAMPLES = "live.loadtest.scenarios"

# In a step's `writes`: the key is deleted.
DELETED: Any = ABSENT

TaskFunction = Callable[[Any], Awaitable[None]]
F = TypeVar("F", bound=TaskFunction)

_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("loadtest_step", default=None)


class ScenarioError(Exception):
    """A scenario that cannot run; the message says why in one sentence."""


@overload
def task(weight: F) -> F: ...


@overload
def task(weight: int = 1) -> Callable[[F], F]: ...


def task(weight: int | F = 1) -> F | Callable[[F], F]:
    """Mark a method as a task, `@task` or `@task(3)`: picked in proportion to its weight."""

    def mark(function: F, weight: int = 1) -> F:
        function._task_weight = weight  # type: ignore[attr-defined]
        return function

    if callable(weight):
        return mark(weight)
    count = weight
    return lambda function: mark(function, count)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Report the requests sent (and any error raised) inside the block under `name`."""
    token = _step.set(name)
    try:
        yield
    except Exception as exc:
        # The innermost step names the error; the variable is reset before it is caught.
        if not hasattr(exc, "loadtest_step"):
            exc.loadtest_step = name  # type: ignore[attr-defined]
        raise
    finally:
        _step.reset(token)


def current_step() -> str | None:
    return _step.get()


@dataclass(frozen=True)
class Wait:
    """Think time after each task, drawn uniformly from [low, high] seconds."""

    low: float
    high: float

    def seconds(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


def between(low: float, high: float) -> Wait:
    return Wait(low, high)


def constant(seconds: float) -> Wait:
    return Wait(seconds, seconds)


@dataclass
class Response:
    """A step's answer: status, headers and body, already read."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 0 < self.status < 400

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Scenario:
    """One virtual user's behaviour: override `on_start`, `on_stop` and add `@task` methods."""

    # Think time after each task: seconds, or a function of the user's random generator.
    wait: Wait | float = 0.0
    tasks: tuple[tuple[str, int], ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = []
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            weight = getattr(member, "_task_weight", None)
            if weight is not None:
                found.append((name, int(weight)))
        cls.tasks = tuple(found)

    def __init__(self, client: ScenarioClient, index: int, rng: random.Random) -> None:
        self.client = client
        # The user's number across every process, from 0: for data per user.
        self.index = index
        self.rng = rng

    @property
    def username(self) -> str:
        return f"user{self.index}"

    def think_time(self) -> float:
        wait = self.wait
        return wait.seconds(self.rng) if isinstance(wait, Wait) else float(wait)

    async def on_start(self) -> None:
        """Once per user, before its first task (a login, say)."""

    async def on_stop(self) -> None:
        """Once per user, after its last task."""


def _pick(module: Any, name: str | None, spec: str) -> type[Scenario]:
    if name:
        found = getattr(module, name, None)
        if not (isinstance(found, type) and issubclass(found, Scenario)):
            raise ScenarioError(f"Scenario {spec!r} has no Scenario class named {name!r}.")
        return found
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Scenario)
        and value.__module__ == module.__name__
    ]
    if len(classes) != 1:
        what = "no Scenario subclass" if not classes else "several Scenario classes"
        raise ScenarioError(f"Scenario {spec!r} defines {what}; name one as {spec}:ClassName.")
    return classes[0]


def _import(spec: str, target: str) -> tuple[Any, str]:
    """The module that `target` names, and a class name that its dotted form ended with."""
    if target.endswith(".py") or "/" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise ScenarioError(f"Scenario {spec!r}: there is no file {path}.")
        module_name = f"loadtest_scenario_{path.stem}"
        loader = importlib.util.spec_from_file_location(module_name, path)
        if loader is None or loader.loader is None:
            raise ScenarioError(f"Scenario {spec!r}: {path} is not a Python file.")
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module
        loader.loader.exec_module(module)
        return module, ""
    if "." not in target:
        target = f"{EXAMPLES}.{target}"
    try:
        return importlib.import_module(target), ""
    except ModuleNotFoundError as exc:
        # A dotted path may end with a class name: package.module.ClassName.
        module_name, _, attribute = target.rpartition(".")
        if not module_name or exc.name != target:
            raise
        return importlib.import_module(module_name), attribute


def load(spec: str) -> type[Scenario]:
    """The Scenario class that `spec` names: a file path, a dotted module path, or an
    example's short name (color, cart, login), each optionally followed by :ClassName."""
    target, _, name = spec.partition(":")
    try:
        module, attribute = _import(spec, target)
    except ScenarioError:
        raise
    except Exception as exc:
        reason = str(exc).rstrip(".") or type(exc).__name__
        raise ScenarioError(
            f"Scenario {spec!r} does not import: {type(exc).__name__}: {reason}."
        ) from None
    scenario = _pick(module, name or attribute or None, spec)
    if not scenario.tasks:
        raise ScenarioError(f"Scenario {spec!r}: {scenario.__name__} has no @task method.")
    return scenario
