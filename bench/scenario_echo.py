"""Scenario 1: echo throughput on one connection (1 GiB by default).

Server CPU seconds per GB echoed (every byte read once and written once by the server)
and MB/s seen by the load generator, for each echo server: greenpoint ``serve()``
(stream) and ``listen()`` (Protocol), raw gevent ``StreamServer`` (the limit), Twisted,
asyncio, uvloop, trio.
"""

from __future__ import annotations

from typing import Any

from _harness import Context
from _scenario import Metric, Scenario, Target
from _serverbench import PLAIN, ServerContender, measure

GIB = 1 << 30
MIB = 1 << 20


def settings(quick: bool) -> dict[str, Any]:
    return {"bytes": 64 * MIB if quick else GIB}


def echo_measure(ctx: Context, contender: ServerContender, settings: dict, tls: bool) -> dict:
    size = settings["bytes"]
    result = measure(ctx, contender, ["echo", "--bytes", str(size)], tls=tls, timeout=600)
    if "server_cpu_s" in result:
        result["cpu_s_per_gb"] = result["server_cpu_s"] / (result["bytes"] / 1e9)
    return result


SCENARIO = Scenario(
    name="echo",
    title="Echo throughput, one connection",
    baseline="gevent",
    contenders=PLAIN,
    metrics=[
        Metric("cpu_s_per_gb", "server CPU s/GB", ".3f"),
        Metric("mb_per_s", "MB/s", ".0f", lower_is_better=False),
    ],
    measure=lambda ctx, contender, settings: echo_measure(ctx, contender, settings, False),
    settings=settings,
    targets=[
        Target("greenpoint-serve", "cpu_s_per_gb", 1.05, text="stream echo CPU/GB <= 1.05x gevent"),
        Target(
            "greenpoint-protocol", "cpu_s_per_gb", 1.20, text="Protocol echo CPU/GB <= 1.20x gevent"
        ),
    ],
)
