"""Scenario: echo with large reads and a load generator that copies nothing.

The server is the bottleneck here: every recv loop asks for 256 KiB (asyncio's and
uvloop's size; greenpoint's Transport adapts its own), and the load generator sends
with ``sendfile()`` and reads with ``recv_into(..., MSG_TRUNC)``, so it spends
almost nothing per byte. Metrics as in ``echo``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from _harness import Context
from _scenario import Metric, Scenario, Target
from _serverbench import PLAIN, ServerContender, measure

GIB = 1 << 30
MIB = 1 << 20
READ_SIZE = 256 * 1024

# The same programs as ``echo``, asked to read 256 KiB at a time.
CONTENDERS = [dataclasses.replace(c, args=(*c.args, "--read-size", str(READ_SIZE))) for c in PLAIN]


def settings(quick: bool) -> dict[str, Any]:
    return {"bytes": 64 * MIB if quick else GIB, "read_size": READ_SIZE}


def bulk_measure(ctx: Context, contender: ServerContender, settings: dict) -> dict:
    size = settings["bytes"]
    result = measure(ctx, contender, ["echo-zc", "--bytes", str(size)], tls=False, timeout=600)
    if "server_cpu_s" in result:
        result["cpu_s_per_gb"] = result["server_cpu_s"] / (result["bytes"] / 1e9)
    return result


SCENARIO = Scenario(
    name="bulk",
    title="Echo, 256 KiB reads, zero-copy load generator (server-bound)",
    baseline="gevent",
    contenders=CONTENDERS,
    metrics=[
        Metric("cpu_s_per_gb", "server CPU s/GB", ".3f"),
        Metric("mb_per_s", "MB/s", ".0f", lower_is_better=False),
    ],
    measure=bulk_measure,
    settings=settings,
    targets=[
        Target("greenpoint-serve", "cpu_s_per_gb", 1.05, text="stream echo CPU/GB <= 1.05x gevent"),
        Target(
            "greenpoint-protocol", "cpu_s_per_gb", 1.10, text="Protocol echo CPU/GB <= 1.10x gevent"
        ),
    ],
)
