"""The project's ASGI handler: each request's sync code on one thread, lent and taken back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path

from live.http import handler
from live.http.handler import OnLoopASGIHandler

# Two requests meet here only if each has a thread of its own.
meeting = threading.Barrier(2, timeout=10)
go, holding, released = threading.Event(), threading.Event(), threading.Event()
held_by: list[int] = []


# The threads that ran each request's sync code, in order: Thread objects, as a
# new thread may get the ident of one that ended.
seen: list[threading.Thread] = []


async def note_thread() -> threading.Thread:
    """The thread that runs this request's sync code, noted in `seen`."""
    thread = await sync_to_async(threading.current_thread)()
    seen.append(thread)
    return thread


async def thread_of(request: HttpRequest) -> HttpResponse:
    await note_thread()
    return HttpResponse(str((await note_thread()).ident))


async def fail_midway(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"so far so good"
        raise RuntimeError("the stream broke")

    await note_thread()
    return StreamingHttpResponse(chunks())


async def meet(request: HttpRequest) -> HttpResponse:
    await sync_to_async(meeting.wait)()
    return HttpResponse(str((await note_thread()).ident))


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
    await asyncio.sleep(0)  # the task starts, and hands its first step to the thread
    return HttpResponse("left running")


waiting: list[asyncio.Event] = []


async def wait_forever(request: HttpRequest) -> HttpResponse:
    await note_thread()
    waiting[0].set()
    await asyncio.Event().wait()
    return HttpResponse("never")


urlpatterns = [
    path("wait-forever", wait_forever),
    path("thread", thread_of),
    path("meet", meet),
    path("leave-running", leave_running),
    path("fail-midway", fail_midway),
]
pytestmark = pytest.mark.urls(__name__)


@pytest.fixture(autouse=True)
def no_idle_threads() -> Iterator[None]:
    meeting.reset()
    go.clear()
    holding.clear()
    released.clear()
    held_by.clear()
    left_running.clear()
    seen.clear()
    waiting.clear()
    yield
    released.set()
    while handler._idle:
        handler._idle.pop().shutdown(wait=True)


def scope_of(where: str) -> dict[str, Any]:
    return {
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


def start(app: OnLoopASGIHandler, where: str) -> ApplicationCommunicator:
    # The communicator runs the app in a context of its own.
    return ApplicationCommunicator(app, scope_of(where))


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
    await get(app, "thread")
    first, again = seen
    assert first is again
    assert first is not threading.current_thread()
    # No thread started and joined per request: the next one gets the same.
    await get(app, "thread")
    assert seen[2:] == [first, first]


async def test_inside_another_thread_sensitive_context_a_request_keeps_to_its_thread():
    # As with Django's own handler: code that calls the app from within a
    # context of its own (a test, an app that nests Django) keeps the request's
    # sync code, and so its database connection, on that context's thread.
    sent: list[dict[str, Any]] = []
    asked = asyncio.Queue[dict[str, Any]]()
    asked.put_nowait({"type": "http.request", "body": b""})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with ThreadSensitiveContext():
        outer = await sync_to_async(threading.current_thread)()
        await OnLoopASGIHandler()(scope_of("thread"), asked.get, send)
    assert sent[0]["status"] == 200
    assert seen == [outer, outer]
    assert handler._idle == []


async def test_requests_in_flight_at_once_each_have_a_thread():
    app = OnLoopASGIHandler()
    # Each waits in its thread for the other: with one thread shared, neither returns.
    one, two = await asyncio.gather(get(app, "meet"), get(app, "meet"))
    assert one != two
    # Both go back for reuse.
    assert len(handler._idle) == 2


async def test_threads_beyond_the_idle_cap_end_with_their_request(monkeypatch):
    monkeypatch.setattr(handler, "KEEP_IDLE", 1)
    app = OnLoopASGIHandler()
    await asyncio.gather(get(app, "meet"), get(app, "meet"))
    # Two were needed at once; one stays for the next request, the other ends.
    assert len(handler._idle) == 1
    both = set(seen)
    await get(app, "thread")
    (ended,) = both - {seen[-1]}
    await asyncio.to_thread(ended.join, 10)
    assert not ended.is_alive()


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
    current = await get(app, "thread")
    assert not released.is_set()
    assert int(current) != held_by[0]
    released.set()
    await left_running[0]


async def test_a_request_that_ends_in_an_error_takes_its_thread_with_it():
    app = OnLoopASGIHandler()
    request = start(app, "fail-midway")
    await request.send_input({"type": "http.request", "body": b""})
    assert (await request.receive_output(10))["status"] == 200
    with pytest.raises(RuntimeError, match="the stream broke"):
        await request.wait(10)
    # request_finished never ran to close what the thread holds: it is not lent again.
    assert handler._idle == []
    await get(app, "thread")
    assert seen[1] is not seen[0]
    await asyncio.to_thread(seen[0].join, 10)
    assert not seen[0].is_alive()


async def test_a_request_cancelled_by_the_server_takes_its_thread_with_it():
    app = OnLoopASGIHandler()
    waiting.append(asyncio.Event())
    request = start(app, "wait-forever")
    await request.send_input({"type": "http.request", "body": b""})
    await waiting[0].wait()
    # What daphne does to an application that outlives its close timeout.
    request.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request.future
    assert handler._idle == []
    await asyncio.to_thread(seen[0].join, 10)
    assert not seen[0].is_alive()
