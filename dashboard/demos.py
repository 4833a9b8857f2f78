"""Plain views that know nothing of the dashboard; their session writes still reach it live."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from dashboard import charts
from live import metrics


async def color(request: HttpRequest) -> HttpResponse:
    await request.session.aset("favorite_color", "green")
    return HttpResponse("Your favorite color is green.")


@require_safe
async def metrics_page(request: HttpRequest) -> HttpResponse:
    """The server's live counters; the charts then arrive over /ws/metrics/ each second."""
    return render(request, charts.PAGE, charts.context(list(metrics.history)))
