"""Spans of time as a person reads them: "13 days", "59 min", "8 s"."""

from __future__ import annotations

# Whole units, largest first; live.js spells a countdown the same way, so the
# text a push brings and the text the script rewrites it to agree.
_UNITS = ((86_400, " day", " days"), (3_600, " h", " h"), (60, " min", " min"), (1, " s", " s"))


def spoken(seconds: float) -> str:
    """The span in its largest whole unit, rounded down: 1209599 is "13 days"."""
    whole = max(int(seconds), 0)
    for size, one, many in _UNITS:
        if whole >= size:
            count = whole // size
            return f"{count}{one if count == 1 else many}"
    return "0 s"
