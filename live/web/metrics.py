"""The /metrics/ page: this process's last five minutes of samples, drawn by live.web.charts."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from live import sampler
from live.realtime.routing import socket_url
from live.web import charts


@require_safe
async def page(request: HttpRequest) -> HttpResponse:
    """The charts as they stand; then they arrive over /ws/metrics/ each second."""
    snapshot = sampler.start().snapshot()
    return render(
        request, charts.PAGE, {**charts.context(snapshot), "ws_url": socket_url("metrics")}
    )
