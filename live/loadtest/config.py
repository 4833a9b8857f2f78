"""The options of a load test: parsed once, validated, then passed around frozen."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from typing import Any

OPERATIONS = ("set", "get", "delete", "clear")
# The server's side of the contract in docs/design.md.
SESSION_PATH = "/api/session"
KEY_PATH = "/api/session/keys/"
SOCKET_PATH = "/ws/session/"
CSRF_COOKIE = "csrftoken"
DEFAULT_MIX = "set=70,get=20,delete=5,clear=5"
# A string value's JSON is a token, a colon and padding, between quotes.
MIN_VALUE_SIZE = 16
# Leaves room under the server's 64 KiB per-value limit for the quotes.
MAX_VALUE_SIZE = 64 * 1024 - 2


class ConfigError(ValueError):
    """An option that cannot work; the message says which and why."""


@dataclass(frozen=True)
class Config:
    url: str = "http://127.0.0.1:8000"
    users: int = 10
    tabs: int = 1
    concurrency: int = 1
    duration: float | None = 10.0
    requests: int | None = None
    rate: float | None = None
    mix: tuple[tuple[str, float], ...] = (("set", 70), ("get", 20), ("delete", 5), ("clear", 5))
    value_size: int = 64
    keys: int = 16
    prefill: bool = False
    seed: int = 0
    json_path: str | None = None
    max_error_rate: float = 0.0
    processes: int = 1
    timeout: float = 10.0
    drain: float = 2.0
    # A scenario to run instead of the built-in mix (live.loadtest.scenario.load's spec).
    scenario: str | None = None

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mix"] = dict(self.mix)
        return data


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """Parse "set=70,get=20" into weights; operations left out get weight 0."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep or name not in OPERATIONS:
            raise ConfigError(
                f"--mix: {part!r} is not OPERATION=WEIGHT with OPERATION one of "
                f"{', '.join(OPERATIONS)}."
            )
        try:
            weight = float(raw)
        except ValueError:
            raise ConfigError(f"--mix: the weight in {part!r} is not a number.") from None
        if weight < 0:
            raise ConfigError(f"--mix: the weight in {part!r} is negative.")
        weights[name] = weights.get(name, 0) + weight
    if sum(weights.values()) <= 0:
        raise ConfigError("--mix: give at least one operation a weight above 0.")
    return tuple((name, weights[name]) for name in OPERATIONS if weights.get(name))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--url", default=Config.url, help="server to test (default: %(default)s)")
    add("--users", type=int, default=Config.users, help="virtual users, each its own session")
    add("--tabs", type=int, default=Config.tabs, help="WebSocket tabs per user (default: 1)")
    add(
        "--concurrency",
        type=int,
        default=None,
        help="requests in flight per user, all on its one session; by default one per tab "
        "(each tab also edits), at least 1. Above 1 it tests concurrent writes to a session, "
        "which is what loses writes in stock Django",
    )
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, help="seconds to run (default: 10)")
    stop.add_argument("--requests", type=int, help="total requests to send, then stop")
    add(
        "--rate",
        type=float,
        help="open loop: requests per second across all users on a fixed timeline, latency "
        "measured from each request's scheduled time (no coordinated omission); "
        "without it, closed loop (each user sends when its last answer came)",
    )
    add(
        "--scenario",
        metavar="PATH",
        help="run a scenario instead of the built-in mix: a .py file, a dotted module path, "
        "or an example's name (color, cart, login), optionally followed by :ClassName",
    )
    add("--mix", default=DEFAULT_MIX, help="weights of set/get/delete/clear (%(default)s)")
    add("--value-size", type=int, default=Config.value_size, help="bytes of JSON per PUT value")
    add("--keys", type=int, default=Config.keys, help="distinct keys per session (default: 16)")
    add("--prefill", action="store_true", help="set every key once before measuring")
    add("--seed", type=int, default=Config.seed, help="random seed for operations and keys")
    add("--json", dest="json_path", metavar="PATH", help="also write the report as JSON here")
    add(
        "--max-error-rate",
        type=float,
        default=Config.max_error_rate,
        help="fraction of failed requests tolerated before exiting with 1 (default: 0)",
    )
    add("--processes", type=int, default=Config.processes, help="worker processes (default: 1)")
    add("--timeout", type=float, default=Config.timeout, help="seconds per request (default: 10)")
    add(
        "--drain",
        type=float,
        default=Config.drain,
        help="seconds to wait at the end for pushes still on their way (default: 2)",
    )


def from_options(options: dict[str, Any]) -> Config:
    """Build a Config from parsed options, refusing combinations that cannot work."""
    tabs = options["tabs"]
    concurrency = options.get("concurrency")
    if concurrency is None:
        concurrency = max(tabs, 1)
    duration = options.get("duration")
    requests = options.get("requests")
    if duration is None and requests is None:
        duration = Config.duration
    config = Config(
        url=options["url"],
        users=options["users"],
        tabs=tabs,
        concurrency=concurrency,
        duration=duration,
        requests=requests,
        rate=options.get("rate"),
        mix=parse_mix(options["mix"]),
        value_size=options["value_size"],
        keys=options["keys"],
        prefill=bool(options.get("prefill")),
        seed=options["seed"],
        json_path=options.get("json_path"),
        max_error_rate=options["max_error_rate"],
        processes=options["processes"],
        timeout=options["timeout"],
        drain=options["drain"],
        scenario=options.get("scenario"),
    )
    validate(config)
    return config


def validate(config: Config) -> None:
    checks = [
        (config.url.startswith(("http://", "https://")), "--url must start with http(s)://."),
        (config.users >= 1, "--users must be at least 1."),
        (config.tabs >= 0, "--tabs cannot be negative."),
        (config.concurrency >= 1, "--concurrency must be at least 1."),
        (config.duration is None or config.duration > 0, "--duration must be above 0."),
        (config.requests is None or config.requests >= 1, "--requests must be at least 1."),
        (config.rate is None or config.rate > 0, "--rate must be above 0."),
        (
            MIN_VALUE_SIZE <= config.value_size <= MAX_VALUE_SIZE,
            f"--value-size must be {MIN_VALUE_SIZE} to {MAX_VALUE_SIZE} bytes.",
        ),
        (config.keys >= 1, "--keys must be at least 1."),
        (0 <= config.max_error_rate <= 1, "--max-error-rate is a fraction from 0 to 1."),
        (1 <= config.processes <= config.users, "--processes must be 1 to --users."),
        (config.timeout > 0, "--timeout must be above 0."),
        (config.drain >= 0, "--drain cannot be negative."),
        # The server refuses sessions over 1 MiB with 413; every set would then fail.
        (
            config.keys * (config.value_size + 160) < 1024 * 1024,
            "--keys x --value-size would exceed the server's 1 MiB session limit.",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
