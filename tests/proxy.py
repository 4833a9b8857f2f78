"""A TCP proxy in front of a real service, to cut the line to it and put it back.

The service itself keeps running for everyone else (other tests share it);
only what goes through the proxy sees the outage. The proxy runs its own event
loop in a thread, so the test's loop and the server under test are free to do
whatever they do meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Proxy:
    """Forward 127.0.0.1:<port> to the target; cut() drops every line and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        # Bytes from the client that cut the line before they are passed on.
        self._cut_at: bytes | None = None

    def start(self) -> None:
        self._thread.start()
        self._run(self._listen())

    def cut(self) -> None:
        """Close every open line at once and refuse new ones, as a dead host does."""
        self._run(self._cut())

    def restore(self) -> None:
        """Accept new lines again on the same port."""
        self._run(self._listen())

    def cut_at(self, marker: bytes) -> None:
        """Cut as soon as a client sends these bytes, which then never reach the service."""
        self._cut_at = marker

    @property
    def open_lines(self) -> int:
        """Client connections open now (each has its writer and the service's)."""
        return len(self._writers) // 2

    def stop(self) -> None:
        self._run(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        self._cut_at = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        line: dict[str, Any] = {}
        await asyncio.gather(
            self._pipe(reader, up_writer, line, to_service=True),
            self._pipe(up_reader, writer, line, to_service=False),
        )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        line: dict[str, Any],
        to_service: bool,
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if to_service and self._cut_at is not None and self._cut_at in chunk:
                    await self._cut()
                    return
                self._forward(line, chunk, writer, to_service)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    def _forward(
        self, line: dict[str, Any], chunk: bytes, writer: asyncio.StreamWriter, to_service: bool
    ) -> None:
        """Pass a chunk on; `line` is what one connection's two directions share."""
        writer.write(chunk)
