"""Whether a socket has something to read right now."""

from __future__ import annotations

import select


def readable(fd: int) -> bool:
    """Whether the socket has data or an end to read, without waiting.

    An idle client's socket has nothing to read: anything there is its
    peer's farewell or the end of the stream (a server that restarted).
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
