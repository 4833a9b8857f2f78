"""The report: one JSON-ready dict, rendered as rich tables, and the pass/fail verdict.

Everything shown on screen is read from the dict, so the table and --json
always agree.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from live.loadtest.config import Config
from live.loadtest.worker import Outcome


def build(config: Config, outcome: Outcome) -> dict[str, Any]:
    stats, consistency = outcome.stats, outcome.consistency
    elapsed = outcome.elapsed or 1e-9
    operations = {}
    for name, _ in () if config.scenario else config.mix:
        op = stats.operations[name]
        operations[name] = {
            "count": op.count,
            "rate": round(op.count / elapsed, 1),
            "latency_ms": op.latency.summary(),
            "misses": op.misses,
            "errors": dict(op.errors.most_common()),
        }
    steps = {
        name: {
            "count": step.count,
            "rate": round(step.count / elapsed, 1),
            "latency_ms": step.latency.summary(),
            "errors": dict(step.errors.most_common()),
            "reasons": dict(step.reasons),
            "push": {
                "deliveries": step.push.total,
                "latency_ms": step.push.summary(),
                "from_send_ms": step.push_from_send.summary(),
                "early": step.early,
                "missed": step.missed,
            },
        }
        for name, step in stats.steps.items()
    }
    requests, errors = stats.requests, stats.errors
    # A task that raised before sending anything still failed once.
    error_rate = errors / requests if requests else float(bool(errors))
    push = stats.push
    report: dict[str, Any] = {
        "config": config.as_dict(),
        "elapsed_s": round(outcome.elapsed, 3),
        "interrupted": outcome.interrupted,
        "requests": {
            "total": requests,
            "rate": round(requests / elapsed, 1),
            "target_rate": config.rate,
            "errors": errors,
            "error_rate": round(min(error_rate, 1.0), 6),
            "misses": sum(op["misses"] for op in operations.values()),
        },
        "operations": operations,
        "steps": steps,
        "push": {
            "tabs": outcome.tabs,
            "deliveries": push.latency.total,
            "latency_ms": push.latency.summary(),
            "from_send_ms": push.from_send.summary(),
            "early": push.early,
            "missed": push.missed,
            "messages": push.messages,
            "resyncs": push.resyncs,
            "gaps": push.gaps,
            "unexpected": dict(push.unexpected),
            "reconnects": push.reconnects,
            "drops": dict(push.drops.most_common()),
            "refused": push.refused,
            "moved": push.moved,
            "ended": push.ended,
        },
        "consistency": {
            "sessions": consistency.sessions,
            "acked_writes": consistency.acked_writes,
            "verified_keys": consistency.verified_keys,
            "lost_writes": consistency.lost_writes,
            "lost_sets": consistency.lost_sets,
            "lost_deletes": consistency.lost_deletes,
            "stale_reads": consistency.stale_reads,
            "inconsistent_reads": consistency.inconsistent_reads,
            "unverifiable_keys": consistency.unverifiable_keys,
            "undecided_keys": consistency.undecided_keys,
            "unread_sessions": consistency.unread_sessions,
            "unread_keys": consistency.unread_keys,
            "tabs_diverged": consistency.tabs_diverged,
            "tabs_ended": consistency.tabs_ended,
            "samples": consistency.samples,
        },
        "generator": {
            "processes": config.processes,
            "users": outcome.users,
            "cpu_s": round(outcome.cpu, 3),
            # Above ~80% of one core per process the generator, not the server, may be the limit.
            "cpu_percent_of_one_core": round(100 * outcome.cpu / elapsed, 1),
            "max_send_lag_ms": round(stats.max_lag * 1000, 3),
        },
    }
    report["failures"] = failures(report, config.max_error_rate)
    report["passed"] = not report["failures"]
    return report


def failures(report: dict[str, Any], max_error_rate: float) -> list[str]:
    """Why the test failed: lost writes, keys it could not check, reads that contradict
    acked writes, tabs off the final state, too many errors."""
    found = []
    consistency, requests = report["consistency"], report["requests"]
    if consistency["lost_writes"]:
        found.append(
            f"{consistency['lost_writes']} acknowledged writes were lost "
            f"({consistency['lost_sets']} sets, {consistency['lost_deletes']} deletes or clears)."
        )
    if consistency["unverifiable_keys"]:
        found.append(_unverifiable(consistency))
    elif consistency["acked_writes"] and not consistency["verified_keys"]:
        found.append(
            f"No key could be checked although {consistency['acked_writes']} writes were "
            "acknowledged, so the run shows nothing about lost writes."
        )
    bad_reads = consistency["stale_reads"] + consistency["inconsistent_reads"]
    if bad_reads:
        found.append(f"{bad_reads} reads contradicted acknowledged writes.")
    if consistency["tabs_diverged"]:
        found.append(
            f"{consistency['tabs_diverged']} tabs did not end on their session's final state."
        )
    if requests["error_rate"] > max_error_rate:
        found.append(
            f"The error rate {requests['error_rate']:.2%} is above --max-error-rate "
            f"{max_error_rate:.2%} ({requests['errors']} of {requests['total']} requests)."
        )
    return found


def _unverifiable(consistency: dict[str, Any]) -> str:
    """One sentence: how many keys went unchecked, and why."""
    why = []
    if consistency["undecided_keys"]:
        why.append(
            f"{consistency['undecided_keys']} hold what a write without an answer wrote, "
            "which may have landed after an acknowledged one"
        )
    if consistency["unread_sessions"]:
        why.append(
            f"{consistency['unread_keys']} belong to the {consistency['unread_sessions']} "
            "sessions whose final read failed"
        )
    return (
        f"{consistency['unverifiable_keys']} keys could not be verified ({'; '.join(why)}), "
        "so the run cannot show that no acknowledged write was lost."
    )


def _ms(value: float) -> str:
    return f"{value:,.2f}"


def _spread(latency: dict[str, float]) -> str:
    return (
        f"p50 {_ms(latency['p50'])} ms, p99 {_ms(latency['p99'])} ms, max {_ms(latency['max'])} ms"
    )


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{kind}×{count}" for kind, count in errors.items()) or "-"


def render(report: dict[str, Any], console: Console) -> None:
    config, requests = report["config"], report["requests"]
    loop = f"open loop at {config['rate']:g}/s" if config["rate"] else "closed loop"
    if report["interrupted"]:
        loop += ", interrupted"
    what = (
        f"scenario {config['scenario']}, one task at a time per user"
        if config["scenario"]
        else f"{config['concurrency']} in flight per user"
    )
    table = Table(
        title=f"{config['url']}: {config['users']} users × {config['tabs']} tabs, "
        f"{what}, {loop}, {report['elapsed_s']:.1f} s",
        title_justify="left",
    )
    first = "step" if report["steps"] else "operation"
    for column in (first, "count", "rate/s", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == first else "right")
    if report["steps"]:
        _steps_table(table, report["steps"])
    else:
        _operations_table(table, report["operations"])
    table.add_section()
    table.add_row(
        "all",
        f"{requests['total']:,}",
        f"{requests['rate']:,.1f}",
        *([""] * (6 if report["steps"] else 4)),
        f"{report['push']['missed'] if report['steps'] else requests['misses']:,}",
        f"{requests['errors']:,} ({requests['error_rate']:.2%})",
    )
    console.print(table)
    for name, step in report["steps"].items():
        for kind, reason in step["reasons"].items():
            console.print(f"  [red]{name}[/red]: {kind}×{step['errors'][kind]}: {reason}")
    _summary(report, console)


def _operations_table(table: Table, operations: dict[str, Any]) -> None:
    table.add_column("404", justify="right")
    table.add_column("errors")
    for name, op in operations.items():
        latency = op["latency_ms"]
        table.add_row(
            name,
            f"{op['count']:,}",
            f"{op['rate']:,.1f}",
            *(_ms(latency[p]) for p in ("p50", "p90", "p99", "max")),
            f"{op['misses']:,}",
            _errors(op["errors"]),
            style="red" if op["errors"] else None,
        )


def _steps_table(table: Table, steps: dict[str, Any]) -> None:
    # Push columns: from the step's answer to its tabs, for steps seen changing the session.
    for column in ("push p50", "push p99", "missed"):
        table.add_column(column, justify="right")
    table.add_column("errors")
    for name, step in steps.items():
        latency, push = step["latency_ms"], step["push"]
        pushed = push["deliveries"] > 0
        table.add_row(
            name,
            f"{step['count']:,}",
            f"{step['rate']:,.1f}",
            *(_ms(latency[p]) for p in ("p50", "p90", "p99", "max")),
            _ms(push["latency_ms"]["p50"]) if pushed else "-",
            _ms(push["latency_ms"]["p99"]) if pushed else "-",
            f"{push['missed']:,}",
            _errors(step["errors"]),
            style="red" if step["errors"] or push["missed"] else None,
        )


def _summary(report: dict[str, Any], console: Console) -> None:
    config = report["config"]
    push, consistency, generator = report["push"], report["consistency"], report["generator"]
    lines = [
        (
            "push latency",
            f"{_spread(push['latency_ms'])} from the write's HTTP answer to each tab, over "
            f"{push['deliveries']:,} deliveries to {push['tabs']} tabs "
            f"({push['early']:,} arrived before the answer)",
        ),
        ("write to tab", f"{_spread(push['from_send_ms'])} from the write's request being sent"),
        ("pushes missed", f"{push['missed']:,}"),
        ("resyncs, gaps", f"{push['resyncs']:,}, {push['gaps']:,}"),
        (
            "reconnects",
            f"{push['reconnects']:,} after {sum(push['drops'].values()):,} dropped sockets "
            f"(close codes: {_errors(push['drops'])}), {push['refused']:,} attempts refused",
        ),
        (
            "lost writes",
            f"{consistency['lost_writes']:,} of {consistency['verified_keys']:,} keys checked; "
            f"{consistency['unverifiable_keys']:,} keys could not be verified",
        ),
        (
            "bad reads",
            f"{consistency['stale_reads']:,} stale, "
            f"{consistency['inconsistent_reads']:,} inconsistent",
        ),
        ("tabs diverged", f"{consistency['tabs_diverged']:,}"),
        (
            "generator",
            f"{generator['cpu_s']:.2f} s CPU in {generator['processes']} process(es), "
            f"{generator['cpu_percent_of_one_core']:.0f}% of one core",
        ),
    ]
    if config["rate"]:
        lines.append(("max send lag", f"{_ms(generator['max_send_lag_ms'])} ms"))
    if push["moved"] or push["ended"]:
        lines.append(
            (
                "server closes",
                f"{push['moved']:,} moved (4307, reconnected with the cookie), "
                f"{push['ended']:,} ended (4404, "
                + ("reopened with the next cookie)" if config["scenario"] else "left closed)"),
            )
        )
    if consistency["unread_sessions"]:
        lines.append(("unread sessions", f"{consistency['unread_sessions']:,} final reads failed"))
    if push["unexpected"]:
        lines.append(("unexpected events", _errors(push["unexpected"])))
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    for label, text in lines:
        summary.add_row(label, text)
    console.print(summary)
    for sample in consistency["samples"]:
        console.print(
            f"  [red]{sample['kind']}[/red]: user {sample['user']} key {sample['key']!r} "
            f"expected {sample['expected']}, found {sample['found']} (version {sample['version']})"
        )
    if report["failures"]:
        for failure in report["failures"]:
            console.print(f"[bold red]FAIL[/bold red] {failure}")
    else:
        console.print(
            "[bold green]PASS[/bold green] no lost writes, every key checked, tabs on the "
            "final state, errors within the limit."
        )
