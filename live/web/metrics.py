"""The /metrics/ page: this process's live counters, drawn by live.web.charts."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from live import metrics as counters
from live.realtime.routing import socket_url
from live.web import charts


@require_safe
async def page(request: HttpRequest) -> HttpResponse:
    """This process's recent samples; the charts then arrive over /ws/metrics/ each second."""
    return render(
        request,
        charts.PAGE,
        {**charts.context(list(counters.history)), "ws_url": socket_url("metrics")},
    )
