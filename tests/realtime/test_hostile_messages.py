"""Hostile socket messages: only {"type": "resync"} gets an answer, and nothing changes.

Every other message is ignored and leaves the socket working; one too big
closes it. The tally prints when the module ends (pytest -s shows it).
"""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from live.realtime.consumers import CLOSE_TOO_BIG
from tests.helpers import (
    COOKIE,
    HUGE_MESSAGES,
    IGNORED_MESSAGES,
    TALLY,
    Cases,
    communicator,
    visitor,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hostile_tally")]


async def send(comm: WebsocketCommunicator, message: str | bytes) -> None:
    if isinstance(message, bytes):
        await comm.send_to(bytes_data=message)
    else:
        await comm.send_to(text_data=message)


@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "html"])
async def test_websocket_hostile_messages_ignored_or_closed_too_big(json_mode: bool):
    cases = Cases(await visitor())
    key = cases.client.cookies[COOKIE].value
    before = await cases.stored()
    comm = communicator(key, json_mode)
    connected, _ = await comm.connect()
    assert connected
    await comm.receive_from(timeout=3)
    if not json_mode:
        await comm.receive_from(timeout=3)  # the tab count
    for name, message in IGNORED_MESSAGES.items():
        if message == "":
            continue  # the communicator cannot send an empty frame; daphne's test does
        TALLY.cases += 1
        await send(comm, message)
        # The next message must answer this resync: had the hostile one been
        # answered (or crashed the consumer) this would show it.
        await comm.send_to(text_data='{"type": "resync"}')
        try:
            answer = await comm.receive_from(timeout=3)
        except Exception as exc:
            TALLY.server_errors += 1
            cases.problems.append(f"ws {name}: {exc.__class__.__name__}: {exc}")
            break
        if json_mode:
            snapshot = json.loads(answer)
            if snapshot != {
                "type": "session.snapshot",
                "version": before[1],
                "data": {"before": "kept"},
            }:
                cases.problems.append(f"ws {name}: answered {answer[:200]}")
        elif (
            'id="session-keys"' not in answer or f'data-session-version="{before[1]}"' not in answer
        ):
            cases.problems.append(f"ws {name}: answered {answer[:200]}")
        if await cases.stored() != before:
            TALLY.refused_but_changed += 1
            cases.problems.append(f"ws {name}: the session changed")
    await comm.disconnect()
    for name, message in HUGE_MESSAGES.items():
        TALLY.cases += 1
        comm = communicator(key, json_mode)
        await comm.connect()
        await comm.receive_from(timeout=3)
        await send(comm, message)
        output = await comm.receive_output(timeout=3)
        while output["type"] == "websocket.send":  # the tab count, in HTML mode
            output = await comm.receive_output(timeout=3)
        if output != {"type": "websocket.close", "code": CLOSE_TOO_BIG}:
            cases.problems.append(f"ws {name}: {output!r}")
        if await cases.stored() != before:
            TALLY.refused_but_changed += 1
            cases.problems.append(f"ws {name}: the session changed")
        await comm.disconnect()
    cases.check()
