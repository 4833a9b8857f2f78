"""Server-rendered SVG charts of the last five minutes of samples, swapped in by htmx.

Each sample is drawn at its own time: x follows its timestamp on a five-minute
axis that ends at the moment of drawing, so seconds that were not sampled
(before the server started, or while its loop was held) stay empty instead of
the samples being drawn back to back.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from live.metrics import HISTORY_SECONDS, Sample, Snapshot

PAGE = "live/metrics.html"
# The drawing's own units; the SVG scales to the page's width, text with it.
WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 64.0, 630.0, 10.0, 156.0
SPAN = HISTORY_SECONDS
TICK_SECONDS = 60
# A sample further than this from the one before starts a new stretch of line:
# the seconds between them were not sampled.
GAP_SECONDS = 2.5
COLUMN = (RIGHT - LEFT) / SPAN


@dataclass(frozen=True)
class Series:
    field: str
    label: str


@dataclass(frozen=True)
class Spec:
    key: str
    title: str
    unit: str
    series: tuple[Series, ...]
    integer: bool = False


SPECS = (
    Spec(
        "sessions",
        "Active sessions and open sockets",
        "count",
        (Series("sessions", "sessions"), Series("sockets", "sockets")),
        integer=True,
    ),
    Spec(
        "requests",
        "HTTP requests and server errors",
        "req/s",
        (Series("requests", "requests"), Series("errors", "errors (5xx)")),
    ),
    Spec(
        "writes",
        "Session writes and pushes",
        "per s",
        (Series("writes", "writes"), Series("pushes", "pushes")),
    ),
    Spec(
        "lag",
        "Push lag, save to send",
        "ms",
        (Series("lag_p50_ms", "p50"), Series("lag_p99_ms", "p99")),
    ),
)


@dataclass
class Line:
    label: str
    css: str
    last: str
    segments: list[str]


@dataclass
class Mark:
    """A gridline or a time tick: where, and its label."""

    at: float
    label: str
    anchor: str = "end"


@dataclass
class Chart:
    key: str
    title: str
    unit: str
    lines: list[Line]
    gridlines: list[Mark]
    # One strip of the plot per sample, whose <title> is the readout on hover:
    # built here rather than looped over in the template, which took a tenth
    # of a second per push for five minutes of samples.
    hover: SafeString


def number(value: float, integer: bool = False) -> str:
    """A value as the page shows it: counts and whole values without decimals."""
    if integer or value == round(value) or abs(value) >= 100:
        return str(round(value))
    return f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"


def with_unit(text: str, unit: str) -> str:
    return text if unit == "count" else f"{text} {unit}"


def _scale(peak: float, integer: bool) -> tuple[float, int]:
    """The axis's top, rounded up to 1, 2 or 5 times a power of ten, and its gridline count.

    A steady grid: lines move on it instead of the chart rescaling every second.
    """
    scale = 1.0
    while scale * 10 <= peak:
        scale *= 10
    lead = next((step for step in (1, 2, 5) if peak <= step * scale), 10)
    if lead == 10:
        lead, scale = 1, scale * 10
    top = lead * scale
    parts = {1: 2, 2: 4, 5: 5}[lead]
    if integer and top / parts < 1:
        parts = round(top)
    return top, parts


def x_of(at: float, now: float) -> float:
    """Where a moment lies on the time axis that ends at `now`."""
    ago = min(max(now - at, 0.0), SPAN)
    return RIGHT - (RIGHT - LEFT) * ago / SPAN


def _y(value: float, top: float) -> float:
    return BOTTOM - (BOTTOM - TOP) * min(value, top) / top


def _segments(samples: list[Sample], values: list[float], top: float, now: float) -> list[str]:
    segments: list[list[str]] = []
    previous: float | None = None
    for sample, value in zip(samples, values, strict=True):
        if previous is None or sample.at - previous > GAP_SECONDS:
            segments.append([])
        segments[-1].append(f"{x_of(sample.at, now):.1f},{_y(value, top):.1f}")
        previous = sample.at
    # One point alone draws nothing; repeating it makes a dot where the stroke caps are round.
    return [" ".join(points * (2 if len(points) == 1 else 1)) for points in segments]


def clock(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return timezone.localtime(moment).strftime("%H:%M:%S")


@functools.lru_cache(maxsize=4 * HISTORY_SECONDS)
def _title(spec: Spec, sample: Sample) -> str:
    """A sample's readout on one chart; a sample never changes, so each is made once."""
    values = ", ".join(
        f"{s.label} {with_unit(number(float(getattr(sample, s.field)), spec.integer), spec.unit)}"
        for s in spec.series
    )
    return escape(f"{clock(sample.at)}: {values}")


def _hover(spec: Spec, samples: list[Sample], now: float) -> SafeString:
    head = f'" y="{TOP}" width="{COLUMN:.2f}" height="{BOTTOM - TOP}"><title>'
    # Numbers, and titles escaped by _title.
    return mark_safe(
        "".join(
            f'<rect x="{x_of(sample.at, now) - COLUMN / 2:.1f}{head}{_title(spec, sample)}'
            "</title></rect>"
            for sample in samples
        )
    )


def _chart(spec: Spec, samples: list[Sample], now: float) -> Chart:
    series = {s: [float(getattr(sample, s.field)) for sample in samples] for s in spec.series}
    peak = max([0.0, *(max(values, default=0.0) for values in series.values())])
    top, parts = _scale(max(peak, 1.0), spec.integer)
    lines = [
        Line(
            s.label,
            f"s{i}",
            with_unit(number(values[-1] if values else 0.0, spec.integer), spec.unit),
            _segments(samples, values, top, now),
        )
        for i, (s, values) in enumerate(series.items())
    ]
    gridlines = [
        Mark(_y(top * k / parts, top), with_unit(number(top * k / parts, spec.integer), spec.unit))
        for k in range(parts + 1)
    ]
    hover = _hover(spec, samples, now)
    return Chart(spec.key, f"{spec.title} ({spec.unit})", spec.unit, lines, gridlines, hover)


def ticks() -> list[Mark]:
    """The time axis: one tick a minute, from five minutes ago to now."""
    marks = []
    for ago in range(SPAN, -1, -TICK_SECONDS):
        label = f"−{ago // 60} min" if ago else "now"
        anchor = "start" if ago == SPAN else "end" if not ago else "middle"
        marks.append(Mark(RIGHT - (RIGHT - LEFT) * ago / SPAN, label, anchor))
    return marks


def scope(snapshot: Snapshot) -> str:
    """Whose samples these are, in one sentence."""
    mine = f"This process (pid {snapshot.pid})"
    if snapshot.processes is None:
        return f"{mine}."
    if snapshot.processes <= 1:
        return f"{mine}, the only one running."
    return f"{mine} of {snapshot.processes}: each process samples and shows its own counters."


def context(snapshot: Snapshot) -> dict[str, Any]:
    now = snapshot.now
    samples = [sample for sample in snapshot.samples if now - SPAN <= sample.at <= now]
    return {
        "charts": [_chart(spec, samples, now) for spec in SPECS],
        "ticks": ticks(),
        "scope": scope(snapshot),
        "plot": {
            "left": LEFT,
            "right": RIGHT,
            "top": TOP,
            "bottom": BOTTOM,
            "height": BOTTOM - TOP,
        },
        "width": WIDTH,
        "height": HEIGHT,
        "label_x": LEFT - 6,
        "label_y": HEIGHT - 6,
    }


def render_metrics(snapshot: Snapshot) -> str:
    """The charts fragment, pushed to /metrics/ watchers after each sample."""
    return render_to_string(f"{PAGE}#metrics-charts", context(snapshot))
