"""Scenario 3: scenarios 1 and 2 over TLS (stdlib ``ssl`` client in the load generator).

Each contender is measured twice per round, each time in a fresh server process: a
one-connection echo (server CPU s/GB, MB/s) and short connections, each a full
handshake (server CPU us per connection: the handshake cost). The baseline is gevent
with pyOpenSSL written by hand (``servers/gevent_pyopenssl.py``).
"""

from __future__ import annotations

from typing import Any

from _harness import Context
from _scenario import Metric, Scenario, Target
from _serverbench import TLS, ServerContender
from scenario_connrate import connrate_measure
from scenario_echo import MIB, echo_measure


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"bytes": 32 * MIB, "connections": 200, "concurrency": 8}
    # 1 GiB as the plain echo (issue 10): a 256 MiB echo lasts under a second here, and
    # one stall of the shared machine then moved the MB/s ratio by 20-50 %.
    return {"bytes": 1024 * MIB, "connections": 1000, "concurrency": 8}


def tls_measure(ctx: Context, contender: ServerContender, settings: dict) -> dict:
    echo = echo_measure(ctx, contender, settings, True)
    if "unavailable" in echo:
        return echo
    conns = connrate_measure(ctx, contender, settings, True)
    result: dict[str, Any] = {"echo": echo, "connrate": conns}
    for key in ("cpu_s_per_gb", "mb_per_s"):
        if key in echo:
            result[f"tls_{key}"] = echo[key]
    for key in ("cpu_us_per_conn", "conn_per_s"):
        if key in conns and "error" not in conns:
            result[f"tls_{key}"] = conns[key]
    errors = [
        f"{part}: {r['error']}"
        for part, r in result.items()
        if isinstance(r, dict) and "error" in r
    ]
    if errors:
        result["error"] = "; ".join(errors)
    return result


SCENARIO = Scenario(
    name="tls",
    title="TLS: echo throughput and handshakes",
    baseline="gevent-pyopenssl",
    contenders=TLS,
    metrics=[
        Metric("tls_cpu_s_per_gb", "server CPU s/GB", ".3f"),
        Metric("tls_mb_per_s", "MB/s", ".0f", lower_is_better=False),
        Metric("tls_cpu_us_per_conn", "handshake CPU us/conn", ".0f"),
        Metric("tls_conn_per_s", "handshakes/s", ".0f", lower_is_better=False),
    ],
    measure=tls_measure,
    settings=settings,
    targets=[
        Target(
            "greenpoint-serve",
            "tls_mb_per_s",
            0.95,
            at_most=False,
            text="TLS throughput >= 0.95x gevent+pyOpenSSL",
        ),
        Target(
            "greenpoint-serve",
            "tls_cpu_us_per_conn",
            1.10,
            text="TLS handshake CPU <= 1.10x gevent+pyOpenSSL",
        ),
    ],
)
