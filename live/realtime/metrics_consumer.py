"""The /metrics/ socket: one sampler per process, rendering once a second for all its watchers.

The counters are this process's own, so the sampler hands its HTML straight
to this process's watchers; a tick through the channel layer would reach the
watchers of every process, once per process, when the layer is Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils.module_loading import import_string

from live import metrics
from live.conf import setting
from live.loops import PerLoop
from live.sessions import watched

ACTIVE_WINDOW = 300.0


@dataclass
class _Watch:
    """The metrics sockets open on a loop, and the sampler that feeds them while there are any."""

    watchers: set[MetricsConsumer] = field(default_factory=set)
    sampler: asyncio.Task[None] | None = None


_watches: PerLoop[_Watch] = PerLoop(_Watch)


def _render() -> str:
    return str(import_string(setting("METRICS_RENDERER"))(list(metrics.history)))


async def _sample_forever(watch: _Watch) -> None:
    while watch.watchers:
        # A periodic clock, not a wait for a message: the sample is the rate over this second.
        await asyncio.sleep(1.0)
        metrics.sample(await watched.count_active(time.time() - ACTIVE_WINDOW))
        html = _render()
        for watcher in list(watch.watchers):
            await watcher.send(text_data=html)


class MetricsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        watch = _watches.get()
        await self.accept()
        watch.watchers.add(self)
        metrics.counters.watchers = len(watch.watchers)
        if watch.sampler is None or watch.sampler.done():
            watch.sampler = asyncio.ensure_future(_sample_forever(watch))
        await self.send(text_data=_render())

    async def disconnect(self, code: int) -> None:
        watch = _watches.get()
        watch.watchers.discard(self)
        metrics.counters.watchers = len(watch.watchers)
        if not watch.watchers and watch.sampler is not None:
            sampler, watch.sampler = watch.sampler, None
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
