"""Run a scenario inside Locust, on one machine or on its master and workers.

A locustfile names a scenario and Locust does the rest::

    from live.loadtest.locust import live_user

    Shopper = live_user("shop_scenario.py", tabs=2)

    # or: class Shopper(LiveUser): scenario = "color"; tabs = 2

Each Locust user is one virtual user of `manage.py loadtest --scenario`: its
own cookie jar and CSRF token, its `session.json` tabs, one task at a time
picked by weight, the scenario's think time as Locust's `wait_time`. Each
request is a Locust request of its step's name; each push a step caused is a
request of type PUSH whose response time is the push latency (from the
step's answer to the tab's receipt), and each push a tab never received is a
PUSH failure. When the test stops, every user awaits its pushes, reads its
session back and reports each declared write the server does not hold as a
LOST failure named after the step that declared it.

Locust runs users as gevent greenlets and the scenario client is asyncio.
Locust patches `selectors`, so an asyncio loop run in a greenlet waits on
gevent's hub: the loop is one greenlet of the process that runs every user's
coroutines, and each user's greenlet waits on a gevent result. No thread is
involved, so Locust's statistics are only ever touched from the hub's thread,
and aiohttp resolves names through gevent as everything else does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any, ClassVar, TypeVar

import aiohttp
import gevent
import locust
from gevent.event import AsyncResult, Event
from locust import events
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from live.loadtest.config import Config
from live.loadtest.model import Consistency
from live.loadtest.scenario import Scenario, load
from live.loadtest.schedule import Schedule
from live.loadtest.stats import Stats, StepStats
from live.loadtest.tab import SetupError
from live.loadtest.visitor import ScenarioUser

T = TypeVar("T")

PUSH, LOST = "PUSH", "LOST"
# The master asks each worker to finish its users (pushes, read-back) before it quits,
# and waits for each answer, so that the last failures reach it in the final report.
_FINISH, _FINISHED = "live_sessions_finish", "live_sessions_finished"
# Room for the drain, the final read (its timeout) and Locust's own messages.
_FINISH_MARGIN = 15.0


class MissedPush(Exception):
    """A tab never received the change a step declared."""


class LostWrite(Exception):
    """The session does not hold what an answered step declared."""


class SetupFailed(Exception):
    """The user could not get a session, a token or a tab."""


class _Loop:
    """One asyncio loop per process, run by a greenlet."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.greenlet = gevent.spawn(self.loop.run_forever)
        self.connector: aiohttp.TCPConnector | None = None
        self.stats = Stats()
        self.consistency = Consistency()

    def call(self, coroutine: Any, patience: float = 0.0) -> Any:
        """Run `coroutine` on the loop and return its result. When Locust kills the
        waiting greenlet (the test stops), the coroutine gets `patience` seconds more."""
        result: AsyncResult = AsyncResult()
        task = self.loop.create_task(coroutine)
        task.add_done_callback(result.set)
        # The loop waits in its selector: wake it to take up the new task.
        self.loop.call_soon_threadsafe(_nothing)
        try:
            result.get()
        except BaseException:
            # A task cut off mid-request leaves its declared write undecidable (it may
            # have landed), and a request left running would race the final read-back:
            # the task may end, within its timeout, then it is cancelled.
            with contextlib.suppress(gevent.Timeout):
                result.get(timeout=patience)
            if not task.done():
                task.cancel()
                self.loop.call_soon_threadsafe(_nothing)
                result.get()
            raise
        return task.result()

    def shared_connector(self) -> aiohttp.TCPConnector:
        if self.connector is None:
            # Tabs hold their connections for the whole run: no pool limit.
            self.connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        return self.connector


def _nothing() -> None:
    pass


_loop: _Loop | None = None
_numbers = itertools.count()


def _the_loop() -> _Loop:
    global _loop
    if _loop is None:
        _loop = _Loop()
    return _loop


class _LocustScenarioUser(ScenarioUser):
    """A scenario user that tells Locust of each request, push, missed push and lost write."""

    def __init__(self, environment: Environment, *args: Any) -> None:
        super().__init__(*args)
        self.environment = environment

    def fire(
        self, kind: str, name: str, seconds: float, size: int, exception: Exception | None
    ) -> None:
        self.environment.events.request.fire(  # type: ignore[no-untyped-call]
            request_type=kind,
            name=name,
            response_time=seconds * 1000,
            response_length=size,
            exception=exception,
            context={"user": self.index},
        )

    def answered(
        self, step: str, method: str, seconds: float, size: int, kind: str, reason: str
    ) -> None:
        self.fire(method, step, seconds, size, Exception(reason) if kind else None)

    def _pushed(self, step: StepStats, seconds: float) -> None:
        self.fire(PUSH, step.name, seconds, 0, None)

    async def start(self) -> None:
        await super().start()
        for tab in self.tabs:
            tab.pushed = self._pushed

    async def finish(self) -> None:
        """Await the pushes still owed, report the missed ones, then read the session back."""
        await self._guarded("on_stop", self.scenario.on_stop)
        waiting = [f for tab in self.tabs if (f := tab.until_settled())]
        if waiting and self.config.drain:
            await asyncio.wait(waiting, timeout=self.config.drain)
        for tab in self.tabs:
            for _, _, _, step in tab.states:
                step.missed += 1
                reason = f"a tab did not receive the change of {step.name!r}"
                self.fire(PUSH, step.name, 0.0, 0, MissedPush(reason))
            tab.states.clear()
        unread = self.consistency.unread_sessions
        await self.verify()
        for step_name, what in self.declared.lost:
            self.fire(LOST, step_name or "(unknown step)", 0.0, 0, LostWrite(what))
        if self.consistency.unread_sessions > unread:
            self.fire(LOST, "final read", 0.0, 0, LostWrite("the session could not be read"))


class LiveUser(locust.User):
    """A Locust user that runs a scenario: set `scenario` (a spec for `load`, or a class)."""

    abstract = True
    scenario: ClassVar[str | type[Scenario]] = ""
    # WebSocket tabs per user on the session.json subprotocol.
    tabs: ClassVar[int] = 1
    # Seconds to wait, per request and for the final read; and for pushes at the end.
    timeout: ClassVar[float] = 10.0
    drain: ClassVar[float] = 2.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.live: _LocustScenarioUser | None = None

    @classmethod
    def scenario_class(cls) -> type[Scenario]:
        spec = cls.scenario
        return load(spec) if isinstance(spec, str) else spec

    def on_start(self) -> None:
        if not self.host:
            raise StopUser("LiveUser needs the site's URL: --host or the class's host")
        loop = _the_loop()
        runner = self.environment.runner
        # Unique across workers, as the scenario's per-user data needs; not contiguous.
        worker = getattr(runner, "worker_index", 0) if runner is not None else 0
        index = next(_numbers) * 1024 + worker
        config = Config(
            url=self.host, tabs=self.tabs, timeout=self.timeout, drain=self.drain, seed=index
        )

        async def build() -> _LocustScenarioUser:
            user = _LocustScenarioUser(
                self.environment,
                index,
                config,
                loop.shared_connector(),
                loop.stats,
                loop.consistency,
                Schedule(config, None),
                self.scenario_class(),
            )
            try:
                await user.start()
            except Exception:
                await user.close()
                raise
            return user

        try:
            self.live = loop.call(build())
        except (SetupError, OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.environment.events.request.fire(
                request_type="SETUP",
                name="start",
                response_time=0,
                response_length=0,
                exception=SetupFailed(f"{type(exc).__name__}: {exc}"),
                context={},
            )
            raise StopUser() from exc
        loop.call(self.live._guarded("on_start", self.live.scenario.on_start))

    def wait_time(self) -> float:
        return self.live.scenario.think_time() if self.live is not None else 0.0

    @locust.task
    def run_task(self) -> None:
        if self.live is not None:
            _the_loop().call(self.live.one_task(), patience=self.timeout)

    def on_stop(self) -> None:
        live, self.live = self.live, None
        if live is None:
            return
        loop = _the_loop()
        try:
            loop.call(live.finish())
        finally:
            loop.call(live.close())


def live_user(scenario: str | type[Scenario], **attributes: Any) -> type[LiveUser]:
    """A LiveUser class for `scenario`, with class attributes such as tabs=2 or host=..."""
    cls = scenario if isinstance(scenario, type) else load(scenario)
    attributes = {"scenario": scenario, "abstract": False, **attributes}
    return type(cls.__name__ + "User", (LiveUser,), attributes)


# --- finishing every worker's users before the master quits ---------------------------------


def _finish_users(environment: Environment, msg: Any, **_: Any) -> None:
    runner = environment.runner

    def finish() -> None:
        # Stopping kills each user, which runs its on_stop: pushes, read-back, LOST.
        with contextlib.suppress(Exception):
            runner.stop()  # type: ignore[union-attr]
        runner.send_message(_FINISHED, {})  # type: ignore[union-attr]

    gevent.spawn(finish)


class _Finished:
    def __init__(self) -> None:
        self.count = 0
        self.event = Event()
        self.expected = 0

    def heard(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.event.set()


_finished = _Finished()


def _ask_workers_to_finish(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or not runner.worker_count:
        return
    _finished.count, _finished.expected = 0, runner.worker_count
    _finished.event.clear()
    runner.send_message(_FINISH, {})
    _finished.event.wait(timeout=LiveUser.drain + LiveUser.timeout + _FINISH_MARGIN)


def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(_FINISH, _finish_users)
    elif isinstance(runner, MasterRunner):
        runner.register_message(_FINISHED, _finished.heard)
        environment.events.test_stopping.add_listener(_ask_workers_to_finish)  # type: ignore[no-untyped-call]


# Locust's event hooks are untyped.
events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
