"""The benchmark's goal lines: a figure shown never reads as passing a goal it fails."""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

from tests.conftest import ROOT


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The suite's modules import each other as scripts do, from their own folder.
    monkeypatch.syspath_prepend(str(ROOT / "scripts" / "bench"))
    monkeypatch.delitem(sys.modules, "report", raising=False)
    import report

    return report


def _rows(paired: list[float]) -> list[dict[str, object]]:
    return [{"what": "write", "rps": 100.0, "ratio": 0.9, "round_ratios": paired}]


@pytest.mark.parametrize(
    ("rounds", "shown", "passes"),
    [
        ([0.9497, 0.88, 0.99], "0.94 against", False),
        ([0.95, 0.88, 0.99], "0.95 against", True),
        ([0.9504, 0.88, 0.99], "0.95 against", True),
    ],
)
def test_a_ratio_just_below_its_goal_does_not_read_as_the_goal(
    report: ModuleType, rounds: list[float], shown: str, passes: bool
) -> None:
    [(_goal, value, verdict)] = report._ratio_goals(_rows(rounds), {"write": 0.95}, {})
    assert value.startswith(shown)
    assert verdict is passes


@pytest.mark.parametrize(
    ("p99", "shown", "passes"),
    [(10.04, "10.1 ms", False), (10.0, "10.0 ms", True), (9.96, "10.0 ms", True)],
)
def test_a_latency_just_above_its_goal_does_not_read_as_the_goal(
    report: ModuleType, p99: float, shown: str, passes: bool
) -> None:
    push = {"p50_ms": 1.0, "p99_ms": p99, "max_ms": 12.0, "missed": 0}
    push |= {"commit_p50_ms": 1.0, "commit_p99_ms": p99, "commit_max_ms": 12.0}
    for _goal, value, verdict in report._push_goals("100 tabs", push, 10.0):
        assert value.startswith(shown)
        assert verdict is passes


def test_a_push_that_never_came_reads_never(report: ModuleType) -> None:
    push = {"p50_ms": 1.0, "p99_ms": float("inf"), "max_ms": float("inf"), "missed": 3}
    push |= {"commit_p50_ms": 1.0, "commit_p99_ms": float("inf"), "commit_max_ms": float("inf")}
    (_goal, value, verdict), _ = report._push_goals("100 tabs", push, 10.0)
    assert value.startswith("never (p50")
    assert verdict is False
