"""HTTP/1.1 for virtual users: kept-alive connections to one origin, answers parsed by httptools.

Every request a virtual user sends goes through here; its WebSocket tabs stay
on aiohttp. A load generator's own cost per request is what limits how much
load one core can offer, and aiohttp's client (request objects, tracing hooks,
the connection pool, timeouts per request) cost more than the rest of a step:
this client writes the request line and headers in one buffer and lets
httptools' C parser (llhttp, as in uvicorn) read the answer.

It does what a load tester needs and no more: one origin, keep-alive, bodies
framed by Content-Length or chunked encoding (or the end of the connection),
no redirects followed, no retries. A request that fails raises `HttpError`,
whose `kind` is the error kind the report counts.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

# What a request target keeps as written: the reserved characters and existing escapes.
_KEPT = "!#$%&'()*+,/:;=?@[]~"


class HttpError(Exception):
    """A request that got no answer; `kind` names why, as the report counts it."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(slots=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One kept-alive connection: one request at a time, its answer read by httptools."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.header_pairs: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.head = False
        self.headers_done = False
        self.reusable = True

    # --- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            # Garbled, or a switch of protocols nobody asked for.
            self._fail("bad answer")

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self.waiter is None or self.waiter.done():
            return
        if exc is None and self.headers_done and self._length_unknown():
            # An answer without a length ends with its connection.
            self.on_message_complete()
            return
        reset = isinstance(exc, OSError) and exc.errno == errno.ECONNRESET
        self._fail("reset" if reset else "disconnected")

    # --- httptools' callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.waiter is None or self.waiter.done():
            # An answer to no request: what follows cannot be matched to requests.
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_pairs.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.head and not self._interim():
            # httptools cannot be told that a HEAD's answer has no body: the
            # answer ends here, and so does the connection, whose framing is lost.
            self.reusable = False
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self._interim():
            # 100 Continue, 103 Early Hints: the answer is still to come.
            self.header_pairs, self.chunks, self.headers_done = [], [], False
            return
        if not self.parser.should_keep_alive():
            self.reusable = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            headers = CIMultiDictProxy(CIMultiDict(self.header_pairs))
            waiter.set_result(Answer(self.parser.get_status_code(), headers, b"".join(self.chunks)))

    # --- a request ------------------------------------------------------------------

    def send(self, request: bytes, head: bool) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.header_pairs, self.chunks, self.head, self.headers_done = [], [], head, False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def _interim(self) -> bool:
        return 100 <= self.parser.get_status_code() < 200

    def _length_unknown(self) -> bool:
        names = {name.lower() for name, _ in self.header_pairs}
        return "content-length" not in names and "transfer-encoding" not in names

    def _fail(self, kind: str) -> None:
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(kind))
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class Http:
    """A virtual user's HTTP client for one origin: a few kept-alive connections.

    A user with one request loop uses one connection; the built-in mix's
    `--concurrency` loops take one each from the idle ones.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        secure = parts.scheme == "https"
        self.port = parts.port or (443 if secure else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if secure else None
        self.host_header = parts.netloc.rpartition("@")[2]
        self.timeout = timeout
        self.idle: list[_Connection] = []
        self.closed = False

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer:
        """Send one request to `target` (a path with its query) and read its whole answer."""
        # As a browser sends it: a space or a non-ASCII letter percent-encoded, the rest kept.
        target = quote(target, safe=_KEPT)
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {self.host_header}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        lines.append("\r\n")
        request = "".join(lines).encode("latin-1") + (body or b"")
        try:
            async with asyncio.timeout(self.timeout):
                connection = self._idle() or await self._connect()
                try:
                    answer = await connection.send(request, method == "HEAD")
                except BaseException:
                    # Cut off mid-answer (a timeout, a cancelled task): the rest
                    # of it would be read as the next request's.
                    connection.close()
                    raise
        except TimeoutError:
            raise HttpError("timeout") from None
        if connection.reusable and not self.closed:
            self.idle.append(connection)
        else:
            connection.close()
        return answer

    def _idle(self) -> _Connection | None:
        while self.idle:
            connection = self.idle.pop()
            # The server may have closed it while it waited.
            transport = connection.transport
            if connection.reusable and transport is not None and not transport.is_closing():
                return connection
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                _Connection, self.host, self.port, ssl=self.ssl
            )
        except OSError as exc:
            raise HttpError("connect") from exc
        return connection

    def close(self) -> None:
        self.closed = True
        for connection in self.idle:
            connection.close()
        self.idle.clear()
