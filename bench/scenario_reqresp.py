"""Scenario: request/response over many connections (issue 21).

The load generator opens N connections (each proven served by a one-byte echo),
sends one 512-byte request on every one of them (the warm-up), then, measured,
keeps one request in flight per connection until R requests have been answered by
the echo. Server CPU per request, for N = 100, 1,000 and 10,000; each N is measured
on a fresh server process.
"""

from __future__ import annotations

from typing import Any

from _harness import Context
from _scenario import Metric, Scenario, Target
from _serverbench import PLAIN, ServerContender, measure

COUNTS = (100, 1000, 10000)


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"counts": [100, 1000], "requests": {100: 5000, 1000: 5000}}
    return {"counts": list(COUNTS), "requests": {100: 50_000, 1000: 50_000, 10000: 100_000}}


def reqresp_measure(ctx: Context, contender: ServerContender, settings: dict) -> dict:
    merged: dict[str, Any] = {}
    for count in settings["counts"]:
        requests = settings["requests"][count]
        args = ["reqresp", "--count", str(count), "--requests", str(requests)]
        result = measure(ctx, contender, args, tls=False, timeout=300)
        if "server_cpu_s" in result:
            merged[f"us_per_req_{count}"] = result["server_cpu_s"] / requests * 1e6
            merged[f"req_per_s_{count}"] = result["req_per_s"]
        for key in ("error", "unavailable"):
            if key in result:
                merged[key] = f"{count} connections: {result[key]}"
    return merged


_TEXT = "request/response CPU per request"

SCENARIO = Scenario(
    name="reqresp",
    title="Request/response, one 512 B request in flight per connection",
    baseline="gevent",
    contenders=PLAIN,
    metrics=[Metric(f"us_per_req_{n}", f"CPU us/req @{n}", ".1f") for n in COUNTS],
    measure=reqresp_measure,
    settings=settings,
    targets=[
        Target("greenpoint-protocol", "us_per_req_1000", 0.50, text=f"Protocol {_TEXT} <= 0.50x"),
        Target("greenpoint-protocol", "us_per_req_10000", 0.50, text=f"Protocol {_TEXT} <= 0.50x"),
        Target("greenpoint-serve", "us_per_req_1000", 0.90, text=f"serve() {_TEXT} <= 0.90x"),
        Target("greenpoint-serve", "us_per_req_10000", 0.90, text=f"serve() {_TEXT} <= 0.90x"),
    ],
)
