"""The /metrics/ socket: one sampler per process, a chart push per watcher per second."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.utils.module_loading import import_string

from live import broadcasting, metrics
from live.conf import session_store, setting

ACTIVE_WINDOW = 300.0
_sampler: asyncio.Task[None] | None = None


async def _sample_forever() -> None:
    layer = get_channel_layer()
    while metrics.counters.watchers > 0:
        # A periodic clock, not a wait for a message: the sample is the rate over this second.
        await asyncio.sleep(1.0)
        sessions = await session_store().acount_active(time.time() - ACTIVE_WINDOW)
        metrics.sample(sessions)
        if layer is not None:
            await layer.group_send(broadcasting.METRICS_GROUP, {"type": broadcasting.TICK})


class MetricsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        global _sampler
        await self.accept()
        await self.channel_layer.group_add(broadcasting.METRICS_GROUP, self.channel_name)
        metrics.counters.watchers += 1
        if _sampler is None or _sampler.done():
            _sampler = asyncio.ensure_future(_sample_forever())
        await self.metrics_tick({})

    async def disconnect(self, code: int) -> None:
        global _sampler
        metrics.counters.watchers = max(metrics.counters.watchers - 1, 0)
        await self.channel_layer.group_discard(broadcasting.METRICS_GROUP, self.channel_name)
        if metrics.counters.watchers == 0 and _sampler is not None:
            _sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await _sampler
            _sampler = None

    async def metrics_tick(self, event: dict[str, Any]) -> None:
        render = import_string(setting("METRICS_RENDERER"))
        await self.send(text_data=render(list(metrics.history)))
