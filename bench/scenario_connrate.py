"""Scenario 2: short connections (connect, 100 bytes echoed, close), 8 at a time.

Server CPU microseconds per connection, and connections per second seen by the load
generator.
"""

from __future__ import annotations

from typing import Any

from _harness import Context
from _scenario import Metric, Scenario, Target
from _serverbench import PLAIN, ServerContender, measure

CONCURRENCY = 8


def settings(quick: bool) -> dict[str, Any]:
    return {"connections": 1000 if quick else 5000, "concurrency": CONCURRENCY}


def connrate_measure(ctx: Context, contender: ServerContender, settings: dict, tls: bool) -> dict:
    args = [
        "connrate",
        "--count",
        str(settings["connections"]),
        "--concurrency",
        str(settings["concurrency"]),
    ]
    result = measure(ctx, contender, args, tls=tls, timeout=600)
    if "server_cpu_s" in result:
        result["cpu_us_per_conn"] = result["server_cpu_s"] / result["connections"] * 1e6
        if result.get("errors"):
            # A run with failed connections is not comparable; keep it, but not its number.
            result["error"] = f"{result['errors']} failed connections: {result['first_error']}"
            del result["cpu_us_per_conn"]
    return result


SCENARIO = Scenario(
    name="connrate",
    title="Short connections (connect, 100 B echo, close)",
    baseline="gevent",
    contenders=PLAIN,
    metrics=[
        Metric("cpu_us_per_conn", "server CPU us/conn", ".1f"),
        Metric("conn_per_s", "conn/s", ".0f", lower_is_better=False),
    ],
    measure=lambda ctx, contender, settings: connrate_measure(ctx, contender, settings, False),
    settings=settings,
    targets=[
        Target(
            "greenpoint-serve", "cpu_us_per_conn", 1.10, text="conn CPU us/conn <= 1.10x gevent"
        ),
        Target(
            "greenpoint-protocol",
            "cpu_us_per_conn",
            1.10,
            text="conn CPU us/conn <= 1.10x gevent",
        ),
    ],
)
