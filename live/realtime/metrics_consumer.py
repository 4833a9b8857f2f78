"""The /metrics/ socket: the charts on connect, then after each of the sampler's seconds.

The samples are this process's own, so the sampler's listener hands its HTML
straight to this process's watchers; a tick through the channel layer would
reach the watchers of every process, once per process, when the layer is Redis.
The charts are rendered once per second for all of a loop's watchers.
"""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils.module_loading import import_string

from live import metrics, sampler
from live.conf import setting
from live.loops import PerLoop

_watchers: PerLoop[set[MetricsConsumer]] = PerLoop(set)


def render(snapshot: metrics.Snapshot) -> str:
    return str(import_string(setting("METRICS_RENDERER"))(snapshot))


async def _push(snapshot: metrics.Snapshot) -> None:
    watchers = _watchers.get()
    if not watchers:
        return
    html = render(snapshot)
    for watcher in list(watchers):
        await watcher.send(text_data=html)


class MetricsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        running = sampler.start()
        running.listeners.add(_push)
        await self.accept()
        _watchers.get().add(self)
        await self.send(text_data=render(running.snapshot()))

    async def disconnect(self, code: int) -> None:
        _watchers.get().discard(self)
