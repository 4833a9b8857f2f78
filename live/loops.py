"""State that belongs to one event loop.

The server runs one loop; tests and sync callers (async_to_sync) run others,
and a loop's tasks, timers, queues and clients cannot be used from another.
Every module that keeps such state keeps it in a PerLoop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """One value per event loop, made by `factory` when the loop first asks for it."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._values: dict[asyncio.AbstractEventLoop, T] = {}

    def get(self) -> T:
        """The running loop's value."""
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            # Values may hold their loop (timers, clients), so a weak mapping
            # would never drop them: closed loops go when a new one comes.
            for other in [other for other in list(self._values) if other.is_closed()]:
                del self._values[other]
            value = self._values[loop] = self._factory()
        return value

    def __iter__(self) -> Iterator[tuple[asyncio.AbstractEventLoop, T]]:
        return iter(list(self._values.items()))

    def clear(self) -> None:
        self._values.clear()
