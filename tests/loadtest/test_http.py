"""The load tester's HTTP client against a real socket server that answers as told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from live.loadtest.http import Http, HttpError
from tests.conftest import free_port

Answer = Callable[[bytes], bytes | None]


class Site:
    """A TCP server that reads each request whole and writes what `answer` returns for it
    (None: close the connection without answering)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                answer = self.answer(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                # Closed after an answer that says so, or one cut off in its headers.
                if b"connection: close" in answer.lower() or b"\r\n\r\n" not in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], asyncio.Future[tuple[Site, Http]]]]:
    servers: list[asyncio.Server] = []
    clients: list[Http] = []

    async def start(answer: Answer) -> tuple[Site, Http]:
        site = Site(answer)
        port = free_port()
        servers.append(await asyncio.start_server(site.handle, "127.0.0.1", port))
        clients.append(Http(f"http://127.0.0.1:{port}", timeout=2))
        return site, clients[-1]

    yield start  # type: ignore[misc]
    for client in clients:
        client.close()
    for server in servers:
        server.close()


def ok(body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_requests_share_one_kept_alive_connection_and_send_their_bodies(serve):
    site, http = await serve(lambda request: ok(b"hello"))
    headers = {"Cookie": "a=1", "X-CSRFToken": "t"}
    first = await http.request("GET", "/one", headers)
    second = await http.request("POST", "/two", headers, b"x=1&y=2")
    assert (first.status, first.body, second.body) == (200, b"hello", b"hello")
    assert site.connections == 1
    assert site.requests[0].startswith(b"GET /one HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nCookie: a=1\r\nX-CSRFToken: t\r\n" in site.requests[0]
    assert site.requests[1].endswith(b"Content-Length: 7\r\n\r\nx=1&y=2")


async def test_a_target_with_spaces_or_other_letters_is_sent_percent_encoded(serve):
    site, http = await serve(lambda request: ok(b""))
    await http.request("GET", "/search/?q=crème brûlée&page=2%20", {})
    line = site.requests[0].split(b"\r\n")[0]
    assert line == b"GET /search/?q=cr%C3%A8me%20br%C3%BBl%C3%A9e&page=2%20 HTTP/1.1"


async def test_a_chunked_answer_and_repeated_headers_arrive_whole(serve):
    chunked = (
        b"HTTP/1.1 302 Found\r\nTransfer-Encoding: chunked\r\nLocation: /\r\n"
        b"Set-Cookie: a=1; Path=/\r\nset-cookie: b=2; Path=/\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    _, http = await serve(lambda request: chunked)
    answer = await http.request("POST", "/login/", {})
    assert (answer.status, answer.body, answer.headers["location"]) == (302, b"abcde", "/")
    assert answer.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


async def test_an_interim_answer_is_skipped_for_the_final_one(serve):
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    site, http = await serve(lambda request: hints + ok(request.split(b" ")[1]))
    assert (await http.request("GET", "/first", {})).body == b"/first"
    assert (await http.request("GET", "/second", {})).body == b"/second"
    assert site.connections == 1


async def test_an_answer_cut_off_in_its_headers_is_a_disconnection(serve):
    _, http = await serve(lambda request: b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Le")
    with pytest.raises(HttpError) as failed:
        await http.request("GET", "/", {})
    assert failed.value.kind == "disconnected"


async def test_an_answer_without_a_length_ends_with_its_connection_which_is_not_kept(serve):
    unframed = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"
    site, http = await serve(lambda request: unframed)
    assert (await http.request("GET", "/", {})).body == b"all of it"
    assert (await http.request("GET", "/", {})).body == b"all of it"
    assert site.connections == 2


async def test_a_connection_closed_before_the_answer_is_a_disconnection_and_not_reused(serve):
    answers = iter([None, ok(b"back")])
    site, http = await serve(lambda request: next(answers))
    with pytest.raises(HttpError) as failed:
        await http.request("PUT", "/api/session/keys/k", {}, b'"v"')
    assert failed.value.kind == "disconnected"
    assert (await http.request("GET", "/", {})).body == b"back"
    assert site.connections == 2


async def test_a_refused_connection_and_a_silent_server_are_connect_and_timeout():
    http = Http(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(HttpError) as refused:
        await http.request("GET", "/", {})
    assert refused.value.kind == "connect"

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    port = free_port()
    server = await asyncio.start_server(silent, "127.0.0.1", port)
    http = Http(f"http://127.0.0.1:{port}", timeout=0.2)
    with pytest.raises(HttpError) as waited:
        await http.request("GET", "/", {})
    assert waited.value.kind == "timeout"
    assert http.idle == []
    server.close()


async def test_a_garbled_answer_is_a_bad_answer(serve):
    _, http = await serve(lambda request: b"NOT HTTP AT ALL\r\n\r\n")
    with pytest.raises(HttpError) as failed:
        await http.request("GET", "/", {})
    assert failed.value.kind == "bad answer"
