"""PerLoop: one value per event loop, and none kept for a loop that closed."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from live.loops import PerLoop


def counter() -> PerLoop[int]:
    """A PerLoop whose values number the loops in the order they first asked."""
    numbers = itertools.count(1)
    return PerLoop(lambda: next(numbers))


async def twice(values: PerLoop[int]) -> tuple[int, int]:
    return values.get(), values.get()


def test_per_loop_gives_each_loop_one_value_of_its_own():
    values = counter()
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert first.run_until_complete(twice(values)) == (1, 1)
        assert second.run_until_complete(twice(values)) == (2, 2)
        assert first.run_until_complete(twice(values)) == (1, 1)
        assert dict(values) == {first: 1, second: 2}
    finally:
        first.close()
        second.close()


def test_per_loop_drops_the_values_of_closed_loops_when_a_new_loop_asks():
    values = counter()
    closed, kept, new = (asyncio.new_event_loop() for _ in range(3))
    try:
        closed.run_until_complete(twice(values))
        kept.run_until_complete(twice(values))
        closed.close()
        # Nothing is dropped until a loop without a value asks for one.
        assert dict(values) == {closed: 1, kept: 2}
        assert new.run_until_complete(twice(values)) == (3, 3)
        assert dict(values) == {kept: 2, new: 3}
    finally:
        for loop in (closed, kept, new):
            loop.close()


def test_per_loop_clear_forgets_every_value():
    values = counter()
    assert asyncio.run(twice(values)) == (1, 1)
    values.clear()
    assert dict(values) == {}
    assert asyncio.run(twice(values)) == (2, 2)


def test_per_loop_outside_a_loop_refuses():
    with pytest.raises(RuntimeError):
        counter().get()
