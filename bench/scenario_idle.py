"""Scenario 6: memory and CPU of 10,000 (``idle``) or 100,000 (``idle-100k``) idle connections.

The load generator opens the connections (each proven served by a one-byte echo) and
holds them. Reported: resident memory added per connection (RSS after minus RSS
before, over the count), server CPU per accepted connection, and server CPU while all
of them sit idle.

A process here may hold at most 20,000 files (``RLIMIT_NOFILE``'s hard limit, which
no process can raise), so more connections than one process can hold are split
(``bench/_split.py``): the server contender runs as K processes started apart, all
listening on one port with ``SO_REUSEPORT`` (K = ceil(N / 18,000), or
``run.py --server-processes K``), and the load generator as several processes with
source addresses of their own. Memory and CPU are then sums over the server
processes. ``idle-100k`` also holds what one process can (19,900 here) in a single
server process in the same measurement, so that the split's per-connection figures
sit next to the one-process ones. It takes minutes per round, so it runs only when
named.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import loadgen
from _harness import (
    BenchError,
    Child,
    Context,
    CPUSample,
    Unavailable,
    cpu_between,
    cpu_sample,
    memory_rollup,
    open_file_limit,
    open_files,
    parse_json,
    raise_fd_limit,
    rss_bytes,
    user_system_seconds,
)
from _scenario import Metric, Scenario, Target
from _serverbench import PLAIN, ServerContender, start_servers
from _split import (
    PER_PROCESS,
    capacity_problem,
    process_count,
    source_plan,
    split_evenly,
    spread_problem,
)

# Room for the connections, their peers in the load generator, and some spare.
FD_HEADROOM = 100
# Warm-up connections for each server process on the port, shared by the load
# generators: the same per server process whether split or not, because the warm-up
# shapes malloc's state (greenpoint-protocol's figure moves with it, see bench/README.md
# issue 21 section 9d).
WARMUP_PER_SERVER = 10


def settings(quick: bool, count: int | None = None, compare_one: bool = False) -> dict[str, Any]:
    if count is None:
        count = 1000 if quick else 10000
    limit = raise_fd_limit(count + FD_HEADROOM)
    return {
        "connections_asked": count,
        "fd_limit": limit,
        # What one process may hold: the one-process regime holds at most this.
        "one_process_connections": min(count, max(100, limit - FD_HEADROOM)),
        "compare_one_process": compare_one,
        "per_process": PER_PROCESS,
        "warmup_per_server_process": WARMUP_PER_SERVER,
        "idle_seconds": 1.0 if quick else (5.0 if compare_one else 2.0),
    }


def settings_100k(quick: bool) -> dict[str, Any]:
    return settings(quick, 10_000 if quick else 100_000, compare_one=not quick)


# Of the odd ports of one source address (14,116 here), use at most this share: the
# 10,000 of ``idle`` still fit one address, 100,000 over six load generators take two each.
ODD_PORT_SHARE = 0.8


def connections_per_source() -> int:
    """Connections the split puts on one source address: under half the port range.

    Linux's connect() tries odd ports first and scans all of them before any even one
    (``__inet_hash_connect``, since 4.6): once one source address holds more than half
    the range towards a port, every further connect scans ~14,000 taken ports, and
    opening 100,000 connections took 70-90 s instead of a few (the server then sees
    one connection per wake-up instead of bursts, which costs it CPU per connection).
    """
    return int(loadgen.ephemeral_ports() // 2 * ODD_PORT_SHARE)


def _loadgen_args(port: int, count: int, sources: list[str | None], warmup: int) -> list[str]:
    args = ["idle", "--count", str(count), "--port", str(port), "--warmup", str(warmup)]
    if sources != [None]:
        args += ["--sources", ",".join(str(s) for s in sources)]
    return args


def _held_per_process(servers: list[Child], before: list[int]) -> list[int]:
    counts = []
    for server, was in zip(servers, before, strict=True):
        try:
            counts.append(open_files(server.pid) - was)
        except OSError:
            counts.append(-1)  # gone
    return counts


def hold(
    ctx: Context, contender: ServerContender, count: int, processes: int, idle_seconds: float
) -> dict[str, Any]:
    """Open ``count`` connections to ``processes`` server processes, hold them, measure."""
    servers, port = start_servers(ctx, contender, processes)
    generators: list[Child] = []
    try:
        counts = split_evenly(count, process_count(count))
        per_source = connections_per_source()
        warmup = -(-WARMUP_PER_SERVER * processes // len(counts))
        for share, sources in zip(counts, source_plan(counts, per_source), strict=True):
            generators.append(ctx.loadgen(_loadgen_args(port, share, sources, warmup)))
        for generator in generators:
            generator.expect("WARM", 60)
        pids = [server.pid for server in servers]
        fd_limits = [open_file_limit(pid) for pid in pids]
        files_before = [open_files(pid) for pid in pids]
        rss_before = [rss_bytes(pid) for pid in pids]
        rollup_before = [memory_rollup(pid) for pid in pids]
        cpu_before = [cpu_sample(pid) for pid in pids]
        split_before = [user_system_seconds(pid) for pid in pids]
        for generator in generators:
            generator.send_line()
        try:
            held = [parse_json(g.expect("HELD", 600), "loadgen") for g in generators]
        except BenchError as exc:
            spread = _held_per_process(servers, files_before)
            raise BenchError(
                f"{exc}\nserver processes hold {', '.join(f'{n:,}' for n in spread)}"
                f" of {count:,} (open-file limits {fd_limits})"
            ) from exc
        # Let the last handlers reach their first blocking read.
        time.sleep(0.5)
        cpu_held = [cpu_sample(pid) for pid in pids]
        split_held = [user_system_seconds(pid) for pid in pids]
        rss_held = [rss_bytes(pid) for pid in pids]
        rollup_held = [memory_rollup(pid) for pid in pids]
        time.sleep(idle_seconds)
        cpu_after = [cpu_sample(pid) for pid in pids]
        per_process = _held_per_process(servers, files_before)
        for generator in generators:
            generator.send_line()
        for generator in generators:
            generator.expect("RESULT", 120)
        for server in servers:
            if server.proc.poll() is not None:
                raise BenchError(f"{contender.name} died{server.log_tail()}")
        problem = spread_problem(per_process, count, fd_limits)
        if problem is not None:
            raise BenchError(f"{contender.name}: {problem}")
    finally:
        for generator in generators:
            generator.stop()
        for server in servers:
            server.stop()
    user = sum(h[0] - b[0] for h, b in zip(split_held, split_before, strict=True))
    system = sum(h[1] - b[1] for h, b in zip(split_held, split_before, strict=True))
    figures = _figures(
        count,
        per_process,
        fd_limits,
        rss_before,
        rss_held,
        rollup_before,
        rollup_held,
        (cpu_before, cpu_held, cpu_after),
        idle_seconds,
        open_seconds=max(h["seconds"] for h in held),
        loadgens=len(generators),
    )
    # Where the opening CPU went (ticks of 10 ms: coarse, but the totals are seconds).
    figures["accept_user_us_per_conn"] = user / count * 1e6
    figures["accept_system_us_per_conn"] = system / count * 1e6
    return figures


def _figures(
    count: int,
    per_process: list[int],
    fd_limits: list[int],
    rss_before: list[int],
    rss_held: list[int],
    rollup_before: list[dict[str, int]],
    rollup_held: list[dict[str, int]],
    cpu: tuple[list[CPUSample], list[CPUSample], list[CPUSample]],
    idle_seconds: float,
    *,
    open_seconds: float,
    loadgens: int,
) -> dict[str, Any]:
    """The per-connection figures: sums over the server processes, and each one's."""
    cpu_before, cpu_held, cpu_after = cpu
    open_cpu = [cpu_between(a, b) for a, b in zip(cpu_before, cpu_held, strict=True)]
    idle_cpu = [cpu_between(a, b) for a, b in zip(cpu_held, cpu_after, strict=True)]

    def added(key: str) -> int:
        return sum(h[key] for h in rollup_held) - sum(b[key] for b in rollup_before)

    return {
        "connections": count,
        "server_processes": len(per_process),
        "loadgen_processes": loadgens,
        "open_seconds": open_seconds,
        "rss_before_bytes": sum(rss_before),
        "rss_held_bytes": sum(rss_held),
        "kib_per_conn": (sum(rss_held) - sum(rss_before)) / count / 1024,
        "uss_kib_per_conn": added("uss") / count / 1024,
        "pss_kib_per_conn": added("pss") / count / 1024,
        "accept_cpu_us_per_conn": sum(open_cpu) / count * 1e6,
        "idle_cpu_ms_per_s": sum(idle_cpu) / idle_seconds * 1000,
        "per_process": [
            {
                "connections": n,
                "fd_limit": limit,
                "kib_per_conn": (after - before) / n / 1024 if n > 0 else None,
                "accept_cpu_us_per_conn": opened / n * 1e6 if n > 0 else None,
                "idle_cpu_ms_per_s": idled / idle_seconds * 1000,
            }
            for n, limit, before, after, opened, idled in zip(
                per_process, fd_limits, rss_before, rss_held, open_cpu, idle_cpu, strict=True
            )
        ],
    }


def idle_measure(ctx: Context, contender: ServerContender, settings: dict) -> dict:
    asked = settings["connections_asked"]
    one_limit = settings["one_process_connections"]
    processes = process_count(asked, ctx.server_processes, settings["per_process"])
    count = asked
    if processes == 1 and asked > one_limit:
        # One process holds what its open-file limit allows (the regime before the
        # split), and says so in the results.
        count = one_limit
        print(
            f"idle: {asked} connections asked, {count} held in one process: open-file limit"
            f" {settings['fd_limit']} (raising it needs CAP_SYS_RESOURCE)",
            file=sys.stderr,
        )
    problem = capacity_problem(asked, processes, one_limit) if processes > 1 else None
    if problem is not None:
        return {"error": problem}
    try:
        result = hold(ctx, contender, count, processes, settings["idle_seconds"])
        result["connections_asked"] = asked
        if settings["compare_one_process"] and processes > 1:
            one = hold(ctx, contender, one_limit, 1, settings["idle_seconds"])
            for key in ONE_PROCESS_KEYS:
                result[f"{key}_one"] = one[key]
            result["one_process"] = one
    except Unavailable as exc:
        return {"unavailable": str(exc)}
    except BenchError as exc:
        return {"error": str(exc)}
    return result


# The figures of the one-process comparison kept at the top of an idle-100k result.
ONE_PROCESS_KEYS = (
    "connections",
    "kib_per_conn",
    "uss_kib_per_conn",
    "accept_cpu_us_per_conn",
    "idle_cpu_ms_per_s",
    "open_seconds",
)

METRICS = [
    Metric("kib_per_conn", "KiB/conn", ".1f"),
    Metric("accept_cpu_us_per_conn", "open CPU us/conn", ".0f"),
    Metric("idle_cpu_ms_per_s", "idle CPU ms/s", ".2f"),
]

SCENARIO = Scenario(
    name="idle",
    title="10,000 idle connections",
    baseline="gevent",
    contenders=PLAIN,
    metrics=METRICS,
    measure=idle_measure,
    settings=settings,
    targets=[
        Target("greenpoint-serve", "kib_per_conn", 20.0, kind="value", text="<= 20 KiB each"),
        Target("greenpoint-protocol", "kib_per_conn", 20.0, kind="value", text="<= 20 KiB each"),
    ],
)

# "No CPU while idle", as a number: 0.05 ms/s is 0.005% of a core. A timer or sweep
# that visited each of 100,000 connections even once a minute would cost more.
IDLE_CPU_LIMIT = 0.05

# Issue 21's regime: 100,000 connections in at most 12 KiB each, no CPU while idle.
SCENARIO_100K = Scenario(
    name="idle-100k",
    title="100,000 idle connections (over several server processes; _one: one process)",
    baseline="gevent",
    contenders=PLAIN,
    metrics=[
        Metric("connections", "held", ".0f", lower_is_better=False),
        *METRICS,
        Metric("uss_kib_per_conn", "USS KiB/conn", ".1f"),
        Metric("connections_one", "held, 1 process", ".0f", lower_is_better=False),
        Metric("kib_per_conn_one", "KiB/conn, 1 process", ".1f"),
        Metric("accept_cpu_us_per_conn_one", "open us/conn, 1 proc", ".0f"),
        Metric("idle_cpu_ms_per_s_one", "idle ms/s, 1 proc", ".2f"),
    ],
    measure=idle_measure,
    settings=settings_100k,
    targets=[
        Target(
            contender,
            metric,
            limit,
            kind="value",
            text=text,
        )
        for contender in ("greenpoint-serve", "greenpoint-protocol")
        for metric, limit, text in (
            ("kib_per_conn", 12.0, "<= 12 KiB each"),
            ("idle_cpu_ms_per_s", IDLE_CPU_LIMIT, f"no CPU while idle (<= {IDLE_CPU_LIMIT} ms/s)"),
        )
    ],
)
