"""Scenario 6: memory and CPU of 10,000 (``idle``) or 100,000 (``idle-100k``) idle connections.

The load generator opens the connections (each proven served by a one-byte echo) and
holds them. Reported: resident memory added per connection (RSS after minus RSS
before, over the count), server CPU per accepted connection, and server CPU while all
of them sit idle. Both processes raise their open-file limit to the hard limit, and
for ``idle-100k`` the hard limit itself (root may, up to ``fs.nr_open``); the load
generator spreads its side over several 127.0.0.x source addresses once one
address's ephemeral ports would not do (see ``loadgen.source_addresses``).
``idle-100k`` takes minutes per round, so it runs only when named.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from _harness import (
    BenchError,
    Context,
    Unavailable,
    cpu_between,
    cpu_sample,
    parse_json,
    raise_fd_limit,
    rss_bytes,
)
from _scenario import Metric, Scenario, Target
from _serverbench import PLAIN, ServerContender, start_server

# Room for the connections, their peers in the load generator, and some spare.
FD_HEADROOM = 100


def settings(quick: bool, count: int | None = None) -> dict[str, Any]:
    if count is None:
        count = 1000 if quick else 10000
    asked = count
    limit = raise_fd_limit(count + FD_HEADROOM)
    if limit < count + FD_HEADROOM:
        # Raising the hard limit needs CAP_SYS_RESOURCE, which a container may lack
        # even for root: hold what fits, and say so in the results.
        count = max(100, limit - FD_HEADROOM)
        print(
            f"idle: {asked} connections asked, {count} held: open-file limit {limit}"
            " (raising it needs CAP_SYS_RESOURCE)",
            file=sys.stderr,
        )
    return {
        "connections": count,
        "connections_asked": asked,
        "fd_limit": limit,
        "idle_seconds": 1.0 if quick else 2.0,
    }


def settings_100k(quick: bool) -> dict[str, Any]:
    return settings(quick, 10_000 if quick else 100_000)


def idle_measure(ctx: Context, contender: ServerContender, settings: dict) -> dict:
    count = settings["connections"]
    try:
        server, port = start_server(ctx, contender, tls=False)
    except Unavailable as exc:
        return {"unavailable": str(exc)}
    except BenchError as exc:
        return {"error": str(exc)}
    try:
        with ctx.loadgen(["idle", "--count", str(count), "--port", str(port)]) as generator:
            generator.expect("WARM", 60)
            rss_before = rss_bytes(server.pid)
            cpu_before = cpu_sample(server.pid)
            generator.send_line()
            held = parse_json(generator.expect("HELD", 300), "loadgen")
            # Let the last handlers reach their first blocking read.
            time.sleep(0.5)
            cpu_held = cpu_sample(server.pid)
            rss_held = rss_bytes(server.pid)
            time.sleep(settings["idle_seconds"])
            cpu_after = cpu_sample(server.pid)
            generator.send_line()
            generator.expect("RESULT", 120)
        if server.proc.poll() is not None:
            raise BenchError(f"{contender.name} died{server.log_tail()}")
    except BenchError as exc:
        return {"error": str(exc)}
    finally:
        server.stop()
    return {
        "connections": count,
        "open_seconds": held["seconds"],
        "rss_before_bytes": rss_before,
        "rss_held_bytes": rss_held,
        "kib_per_conn": (rss_held - rss_before) / count / 1024,
        "accept_cpu_us_per_conn": cpu_between(cpu_before, cpu_held) / count * 1e6,
        "idle_cpu_ms_per_s": cpu_between(cpu_held, cpu_after) / settings["idle_seconds"] * 1000,
    }


SCENARIO = Scenario(
    name="idle",
    title="10,000 idle connections",
    baseline="gevent",
    contenders=PLAIN,
    metrics=[
        Metric("kib_per_conn", "KiB/conn", ".1f"),
        Metric("accept_cpu_us_per_conn", "open CPU us/conn", ".0f"),
        Metric("idle_cpu_ms_per_s", "idle CPU ms/s", ".2f"),
    ],
    measure=idle_measure,
    settings=settings,
    targets=[
        Target("greenpoint-serve", "kib_per_conn", 20.0, kind="value", text="<= 20 KiB each"),
        Target("greenpoint-protocol", "kib_per_conn", 20.0, kind="value", text="<= 20 KiB each"),
    ],
)

# Issue 21's regime: 100,000 connections in at most 12 KiB each, no CPU while idle.
SCENARIO_100K = Scenario(
    name="idle-100k",
    title="100,000 idle connections",
    baseline="gevent",
    contenders=PLAIN,
    metrics=SCENARIO.metrics,
    measure=idle_measure,
    settings=settings_100k,
    targets=[
        Target("greenpoint-serve", "kib_per_conn", 12.0, kind="value", text="<= 12 KiB each"),
        Target("greenpoint-protocol", "kib_per_conn", 12.0, kind="value", text="<= 12 KiB each"),
    ],
)
