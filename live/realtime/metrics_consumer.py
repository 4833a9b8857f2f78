"""The /metrics/ socket: one sampler per process, rendering once a second for all its watchers.

The counters are this process's own, so the sampler hands its HTML straight
to this process's watchers; a tick through the channel layer would reach the
watchers of every process, once per process, when the layer is Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils.module_loading import import_string

from live import metrics
from live.conf import session_store, setting

ACTIVE_WINDOW = 300.0
_watchers: set[MetricsConsumer] = set()
_sampler: asyncio.Task[None] | None = None


def _render() -> str:
    return str(import_string(setting("METRICS_RENDERER"))(list(metrics.history)))


async def _sample_forever() -> None:
    while _watchers:
        # A periodic clock, not a wait for a message: the sample is the rate over this second.
        await asyncio.sleep(1.0)
        metrics.sample(await session_store().acount_active(time.time() - ACTIVE_WINDOW))
        html = _render()
        for watcher in list(_watchers):
            await watcher.send(text_data=html)


class MetricsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        global _sampler
        await self.accept()
        _watchers.add(self)
        metrics.counters.watchers = len(_watchers)
        if _sampler is None or _sampler.done():
            _sampler = asyncio.ensure_future(_sample_forever())
        await self.send(text_data=_render())

    async def disconnect(self, code: int) -> None:
        global _sampler
        _watchers.discard(self)
        metrics.counters.watchers = len(_watchers)
        if not _watchers and _sampler is not None:
            _sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await _sampler
            _sampler = None
