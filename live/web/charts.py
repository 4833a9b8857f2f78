"""Server-rendered SVG charts of the /metrics/ samples, swapped in by htmx."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string

from live.metrics import HISTORY_SECONDS, Sample

PAGE = "live/metrics.html"
WIDTH, HEIGHT = 560, 120


@dataclass
class Line:
    label: str
    points: str
    css: str
    last: float


@dataclass
class Chart:
    key: str
    title: str
    unit: str
    top: float
    lines: list[Line]


def _nice(top: float) -> float:
    # Round the scale up to 1, 2 or 5 times a power of ten, so that lines move
    # on a steady grid instead of the chart rescaling every second.
    scale = 1.0
    while scale * 10 <= top:
        scale *= 10
    for step in (1, 2, 5, 10):
        if top <= step * scale:
            return step * scale
    return 10 * scale


def _points(values: list[float], top: float) -> str:
    step = WIDTH / max(HISTORY_SECONDS - 1, 1)
    offset = WIDTH - step * (len(values) - 1)
    return " ".join(
        f"{offset + i * step:.1f},{HEIGHT - (v / top) * HEIGHT:.1f}" for i, v in enumerate(values)
    )


def _chart(key: str, title: str, unit: str, samples: list[Sample], *fields: str) -> Chart:
    series = {name: [float(getattr(s, name)) for s in samples] for name in fields}
    top = _nice(max([1.0, *(max(v, default=0.0) for v in series.values())]))
    lines = [
        Line(name.replace("_", " "), _points(values, top), f"s{i}", values[-1] if values else 0.0)
        for i, (name, values) in enumerate(series.items())
    ]
    return Chart(key, title, unit, top, lines)


def charts(samples: list[Sample]) -> list[Chart]:
    return [
        _chart("sessions", "Active sessions and open sockets", "", samples, "sessions", "sockets"),
        _chart("writes", "Session writes and pushes per second", "/s", samples, "writes", "pushes"),
        _chart("lag", "Push lag, save to send", "ms", samples, "lag_p50_ms", "lag_p99_ms"),
        _chart("errors", "Server errors per second", "/s", samples, "errors"),
    ]


def context(samples: list[Sample]) -> dict[str, Any]:
    return {"charts": charts(samples), "width": WIDTH, "height": HEIGHT, "span": HISTORY_SECONDS}


def render_metrics(samples: list[Sample]) -> str:
    """The charts fragment pushed to /metrics/ watchers each second."""
    return render_to_string(f"{PAGE}#metrics-charts", context(samples))
