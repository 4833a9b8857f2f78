"""The project's ASGI handler: each request's sync code on one thread, lent and taken back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.http import HttpRequest, HttpResponse
from django.urls import path

from asgi_config import handler
from asgi_config.handler import OnLoopASGIHandler

# Two requests meet here only if each has a thread of its own.
meeting = threading.Barrier(2, timeout=10)
go, holding, released = threading.Event(), threading.Event(), threading.Event()
held_by: list[int] = []


async def thread_of(request: HttpRequest) -> HttpResponse:
    first = await sync_to_async(threading.get_ident)()
    second = await sync_to_async(threading.get_ident)()
    return HttpResponse(f"{first} {second}")


async def meet(request: HttpRequest) -> HttpResponse:
    await sync_to_async(meeting.wait)()
    return HttpResponse(str(await sync_to_async(threading.get_ident)()))


def wait_for_release() -> None:
    held_by.append(threading.get_ident())
    holding.set()
    released.wait(10)


left_running: list[asyncio.Future[None]] = []


async def two_steps() -> None:
    await sync_to_async(go.wait)(10)
    await sync_to_async(wait_for_release)()


async def leave_running(request: HttpRequest) -> HttpResponse:
    # Sync work started and not awaited: its first step holds the thread until
    # the response is out, then the second is queued while the request ends.
    left_running.append(asyncio.ensure_future(two_steps()))
    await asyncio.sleep(0)
    return HttpResponse("left running")


urlpatterns = [path("thread", thread_of), path("meet", meet), path("leave-running", leave_running)]
pytestmark = pytest.mark.urls(__name__)


@pytest.fixture(autouse=True)
def no_idle_threads() -> Iterator[None]:
    meeting.reset()
    go.clear()
    holding.clear()
    released.clear()
    held_by.clear()
    left_running.clear()
    yield
    released.set()
    while handler._idle:
        handler._idle.pop().shutdown(wait=True)


def start(app: OnLoopASGIHandler, where: str) -> ApplicationCommunicator:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/{where}",
        "raw_path": f"/{where}".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    return ApplicationCommunicator(app, scope)


async def get(app: OnLoopASGIHandler, where: str) -> str:
    request = start(app, where)
    await request.send_input({"type": "http.request", "body": b""})
    head = await request.receive_output(10)
    body = await request.receive_output(10)
    assert head["status"] == 200, body
    await request.wait(10)
    return str(body["body"].decode())


async def test_a_request_runs_its_sync_code_on_one_thread_that_the_next_request_reuses():
    app = OnLoopASGIHandler()
    first, again = (await get(app, "thread")).split()
    assert first == again
    assert first != str(threading.get_ident())
    # No thread started and joined per request: the next one gets the same.
    assert (await get(app, "thread")).split() == [first, first]


async def test_requests_in_flight_at_once_each_have_a_thread():
    app = OnLoopASGIHandler()
    # Each waits in its thread for the other: with one thread shared, neither returns.
    one, two = await asyncio.gather(get(app, "meet"), get(app, "meet"))
    assert one != two
    # Both go back for reuse.
    assert len(handler._idle) == 2


async def test_a_thread_still_running_sync_code_after_its_request_is_not_lent_again():
    app = OnLoopASGIHandler()
    request = start(app, "leave-running")
    await request.send_input({"type": "http.request", "body": b""})
    await request.receive_output(10)
    assert (await request.receive_output(10))["body"] == b"left running"
    go.set()
    await request.wait(10)
    assert await asyncio.to_thread(holding.wait, 10)
    assert handler._idle == []
    # The next request is not queued behind that code: it answers, on another
    # thread, while that code still waits.
    current, _ = (await get(app, "thread")).split()
    assert not released.is_set()
    assert int(current) != held_by[0]
    released.set()
    await left_running[0]
