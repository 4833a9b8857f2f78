"""One bare Redis connection per event loop for the session engine's script calls.

A request's script calls (its load, its merge) are most of what the Redis
engine costs daphne, and redis-py's asyncio client spends two to three times a
bare protocol's CPU on each command: its pool, its stream reader, its
timeouts and retries (docs/performance.md). This connection sends the
commands of each turn of the event loop in one write and lets hiredis read
the replies. Commands from every request share it, in order: Redis answers in
the order it is asked, so each reply goes to the oldest command still
waiting, and under load one write carries many requests' commands and one
read brings many replies.

It keeps the promises live.redis_client makes: a command counts as sent
(redis_client.note_connected) only once it is written to a connection whose
handshake Redis answered, so a Redis that hangs while connecting leaves
nothing sent; an idle connection that Redis closed (a restart) is opened
again before a command goes out on it; a broken connection fails every
command waiting on it with redis.ConnectionError, which callers may send
again if it changed nothing. A connection whose oldest reply is later than
redis-py's socket timeout would allow is retired, as redis-py drops such a
connection: nothing more is sent on it, what was written still reaches Redis,
and the commands waiting behind fail. A command sent with a deadline fails
with TimeoutError once it passes, by one timer per connection rather than one
per command; its reply, when it comes, is read and dropped. Errors Redis answers
with are redis-py's exceptions. Only plain redis:// URLs use it; TLS, Unix
sockets and clusters stay on redis-py's clients.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any

import hiredis
import redis
from redis._parsers.base import BaseParser
from redis.connection import parse_url

from live.loops import PerLoop
from live.sockets import readable


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(encoding="utf-8", replyError=BaseParser.parse_error)
        # Each command's reply to come, when the command was sent, and when its
        # caller stops waiting for it (None: never), oldest first.
        self.waiting: deque[tuple[asyncio.Future[Any], float, float | None]] = deque()
        # One timer for the line, at the earliest deadline waited for: cheaper
        # than a timeout per command, which every request's script calls pay.
        self.alarm: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.lost = False
        # Commands written in this turn of the loop, sent together at its end.
        self.unsent: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # A peer gone without a word (a host down, a dropped route) is found out in time.
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError:
                self._break("Redis sent what is not RESP.")
                return
            except UnicodeDecodeError as exc:
                # A value that is not UTF-8: read and dropped; it is its command's error.
                reply = exc
            if reply is False:
                return
            if not waiting:
                self._break("Redis sent a reply nobody asked for.")
                return
            reply_to, _sent, _deadline = waiting.popleft()
            # A caller that gave up waiting leaves its place in the line.
            if reply_to.done():
                continue
            if isinstance(reply, Exception):
                reply_to.set_exception(reply)
            else:
                reply_to.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail("Connection closed by server.")

    def send(self, *args: str | bytes, deadline: float | None = None) -> asyncio.Future[Any]:
        """Write one command; its reply, or its error, comes in the future returned.

        Past `deadline` (the loop's time) the future fails with TimeoutError;
        the reply, when it comes, is read and dropped.
        """
        if self.lost or self.transport is None or self.transport.is_closing():
            raise redis.ConnectionError("Connection closed.")
        loop = asyncio.get_running_loop()
        reply_to = loop.create_future()
        if not self.unsent:
            loop.call_soon(self._flush)
        # hiredis's stubs type the command as a one-element tuple; any length packs.
        self.unsent.append(hiredis.pack_command(args))  # type: ignore[arg-type]
        self.waiting.append((reply_to, loop.time(), deadline))
        if deadline is not None and (self.alarm is None or deadline < self.alarm.when()):
            self._arm(deadline)
        return reply_to

    def _arm(self, at: float) -> None:
        if self.alarm is not None:
            self.alarm.cancel()
        self.alarm = asyncio.get_running_loop().call_at(at, self._expire)

    def _expire(self) -> None:
        """Fail the replies owed past their deadline; wait for the next deadline."""
        self.alarm = None
        now = asyncio.get_running_loop().time()
        nearest = None
        for reply_to, _sent, deadline in self.waiting:
            if deadline is None or reply_to.done():
                continue
            if deadline <= now:
                reply_to.set_exception(TimeoutError("Redis did not answer in time."))
            elif nearest is None or deadline < nearest:
                nearest = deadline
        if nearest is not None:
            self._arm(nearest)

    def _flush(self) -> None:
        # One send for every command of the turn: under load, many requests' commands.
        unsent, self.unsent = self.unsent, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(unsent))

    def overdue(self, late: float) -> bool:
        """Whether the oldest reply owed is more than `late` seconds late: the line may be hung."""
        return bool(self.waiting) and asyncio.get_running_loop().time() - self.waiting[0][1] > late

    def retire(self) -> None:
        """Send nothing more on this line; what was written still reaches Redis, and may run."""
        self._fail("A command before this one got no answer in time.")
        if self.transport is not None:
            self.transport.close()

    def _break(self, reason: str) -> None:
        self._fail(reason)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, reason: str) -> None:
        self.lost = True
        if self.alarm is not None:
            self.alarm.cancel()
            self.alarm = None
        waiting, self.waiting = self.waiting, deque()
        for reply_to, _sent, _deadline in waiting:
            if not reply_to.done():
                reply_to.set_exception(redis.ConnectionError(reason))

    def idle_and_closed(self) -> bool:
        """Whether this connection is lost, or Redis closed it while it had nothing to answer.

        With no reply owed, anything to read on the socket is its end (a
        restart the loop has not been told of yet).
        """
        if self.lost:
            return True
        if self.waiting or self.transport is None:
            return False
        return readable(self.transport.get_extra_info("socket").fileno())

    def abort(self) -> None:
        self._fail("Connection closed.")
        if self.transport is not None:
            self.transport.abort()


class Wire:
    """The loop's connection to one Redis, opened when first needed and again after a break."""

    def __init__(self, address: str, connect_timeout: float, late: float) -> None:
        options = parse_url(address)  # type: ignore[no-untyped-call]
        self.host, self.port = options.get("host", "localhost"), options.get("port", 6379)
        self.handshake: list[tuple[str, ...]] = []
        if options.get("password"):
            login = (options["username"],) if options.get("username") else ()
            self.handshake.append(("AUTH", *login, options["password"]))
        if options.get("db"):
            self.handshake.append(("SELECT", str(options["db"])))
        self.handshake.append(("PING",))
        self.connect_timeout, self.late = connect_timeout, late
        self.protocol: _Protocol | None = None
        self.connecting: asyncio.Task[_Protocol] | None = None

    def ready(self) -> _Protocol | None:
        """The open connection, if it may take a command now, without waiting."""
        protocol = self.protocol
        if protocol is not None:
            # A caller gone (a client that hung up) leaves the line as it is;
            # a reply owed for longer than anyone waits for one retires it.
            if protocol.overdue(self.late):
                protocol.retire()
            elif protocol.idle_and_closed():
                protocol.abort()
            else:
                return protocol
            self.protocol = None
        return None

    async def connection(self) -> _Protocol:
        """A connection whose handshake Redis answered."""
        protocol = self.ready()
        if protocol is not None:
            return protocol
        if self.connecting is None or self.connecting.done():
            self.connecting = asyncio.get_running_loop().create_task(self._connect())
            self.connecting.add_done_callback(_retrieved)
        connecting = self.connecting
        try:
            # Shared by every caller that needs it; one that gives up leaves it to the others.
            return await asyncio.shield(connecting)
        except asyncio.CancelledError:
            if connecting.cancelled():
                # Closed (live.redis_client.aclose) while it connected; the caller goes on.
                raise redis.ConnectionError("Connection closed while it opened.") from None
            raise

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            try:
                _transport, protocol = await loop.create_connection(_Protocol, self.host, self.port)
            except OSError as exc:
                raise redis.ConnectionError(
                    f"Error connecting to {self.host}:{self.port}."
                ) from exc
            try:
                replies = [protocol.send(*step) for step in self.handshake]
                for answered in await asyncio.gather(*replies, return_exceptions=True):
                    if isinstance(answered, BaseException):
                        raise answered
            except BaseException:
                protocol.abort()
                raise
        self.protocol = protocol
        return protocol

    def close(self) -> None:
        if self.protocol is not None:
            self.protocol.abort()
            self.protocol = None
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None


def _retrieved(task: asyncio.Task[_Protocol]) -> None:
    # Its callers may all have given up: its failure is theirs, not the loop's to report.
    if not task.cancelled():
        task.exception()


_wires: PerLoop[dict[str, Wire]] = PerLoop(dict)


def wire(address: str, connect_timeout: float, late: float) -> Wire:
    """The running loop's connection to the Redis at `address` (a plain redis:// URL).

    It is retired once a reply is more than `late` seconds late.
    """
    found = _wires.get()
    if address not in found:
        found[address] = Wire(address, connect_timeout, late)
    return found[address]


def close() -> None:
    """Close the running loop's connections."""
    found = _wires.get()
    while found:
        _address, connection = found.popitem()
        connection.close()
