"""Whether pushes reach this process, and the resync that follows an outage.

Each heartbeat of live.realtime.presence (while this process has tabs) sends
this process a message through the channel layer. While the message does not
come back, or Redis restarted in between, pushes may be lost; when it comes
back, every session followed here is asked to resync (events.publish_stale),
so its tabs catch up on what they missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer

from live.realtime import events

logger = logging.getLogger(__name__)


@dataclass
class Probe:
    """One loop's probe: its channel, the task that hears it, and whether pushes may be lost."""

    timeout: float
    channel: str | None = None
    receiver: asyncio.Task[None] | None = None
    echoed: asyncio.Event = field(default_factory=asyncio.Event)
    lost: bool = False

    async def check(self, restarted: bool | None, sessions: Iterable[str]) -> None:
        """Probe after a heartbeat that saw Redis restart (True), not (False) or down (None)."""
        # No probe while Redis is down: subscribing would fail half-way.
        delivered = restarted is not None and await self._echo()
        if restarted or not delivered:
            self.lost = True
        elif self.lost:
            self.lost = False
            followed = list(sessions)
            logger.info("Pushes flow again; %d sessions resync.", len(followed))
            for digest in followed:
                await events.publish_stale(digest)

    def stop(self) -> None:
        """Stop listening (the heartbeat ends); whether pushes may be lost is kept."""
        if self.receiver is not None:
            self.receiver.cancel()
        self.receiver = self.channel = None

    async def _echo(self) -> bool:
        """Send this process a message through the channel layer; True if it came back."""
        layer: Any = get_channel_layer()
        try:
            if self.channel is None:
                channel = await asyncio.wait_for(
                    layer.new_channel(events.PROBE + "."), self.timeout
                )
                self.receiver = asyncio.ensure_future(self._receive(layer, channel))
                self.channel = channel
            self.echoed.clear()
            await asyncio.wait_for(layer.send(self.channel, {"type": events.PROBE}), self.timeout)
            await asyncio.wait_for(self.echoed.wait(), self.timeout)
        except Exception:  # any failure means the same: pushes may not arrive
            return False
        return True

    async def _receive(self, layer: Any, channel: str) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await layer.receive(channel)
                self.echoed.set()
