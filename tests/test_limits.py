"""Write limits: a token bucket per session, and write slots that make a flood take turns."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from live import limits


@pytest.fixture(autouse=True)
def small_slots(settings: Any) -> None:
    settings.LIVE_SESSIONS = {"WRITES_IN_FLIGHT": 2, "WRITES_QUEUED": 3}


async def test_writing_runs_at_most_the_slots_at_once_and_queues_the_rest() -> None:
    running, most = 0, 0
    release = asyncio.Event()

    async def write() -> None:
        nonlocal running, most
        async with limits.writing("one"):
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1

    tasks = [asyncio.ensure_future(write()) for _ in range(5)]
    await asyncio.sleep(0)
    assert running == 2
    # Slots and queue are full: the next write is refused at once.
    with pytest.raises(limits.Busy):
        async with limits.writing("one"):
            pass
    # Another session has slots of its own.
    async with limits.writing("other"):
        pass
    release.set()
    await asyncio.gather(*tasks)
    assert most == 2 and running == 0


async def test_writing_forgets_a_session_once_its_writes_are_done() -> None:
    async with limits.writing("gone"):
        assert "gone" in limits._slots.get()
    assert "gone" not in limits._slots.get()


async def test_writing_refuses_a_write_that_waits_too_long_for_its_turn(settings: Any) -> None:
    settings.LIVE_SESSIONS = {"WRITES_IN_FLIGHT": 1, "WRITES_QUEUED": 3, "WRITE_WAIT": 0.05}
    release = asyncio.Event()

    async def hold() -> None:
        async with limits.writing("slow"):
            await release.wait()

    holder = asyncio.ensure_future(hold())
    await asyncio.sleep(0)
    with pytest.raises(limits.Busy):
        async with limits.writing("slow"):
            pass
    release.set()
    await holder
    assert "slow" not in limits._slots.get()


def test_bucket_refuses_beyond_its_burst_and_refills() -> None:
    bucket = limits.Bucket(rate=1000.0, burst=2.0)
    assert bucket.take() and bucket.take()
    assert not bucket.take()
    bucket.at -= 0.01  # ten tokens' worth of time
    assert bucket.take()
