"""Run greenpoint's benchmarks against raw gevent and its peers; print ratios.

    python bench/run.py                      # every scenario (idle-100k only when named)
    python bench/run.py --quick              # one round, small sizes (a smoke test)
    python bench/run.py --scenarios echo,tls --rounds 5 --out results.json

Each round measures every contender of a scenario once, in an order rotated by the
round number, each in fresh processes; ratios are taken within a round and the medians
of those ratios over rounds are printed. Results go to ``bench/results/`` as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenario_bulk  # noqa: E402
import scenario_connrate  # noqa: E402
import scenario_echo  # noqa: E402
import scenario_happy  # noqa: E402
import scenario_idle  # noqa: E402
import scenario_latency  # noqa: E402
import scenario_reqresp  # noqa: E402
import scenario_tls  # noqa: E402
import scenario_wsgi  # noqa: E402
from _harness import (  # noqa: E402
    BENCH_DIR,
    REALTIME_ENV,
    REALTIME_PRIORITY,
    Context,
    pinning_available,
    raise_fd_limit,
)
from _report import (  # noqa: E402
    evaluate_targets,
    first_line,
    machine,
    scenario_table,
    targets_table,
    versions,
)
from _scenario import Scenario  # noqa: E402
from _split import parse_processes  # noqa: E402
from _stats import rotated, summarise  # noqa: E402

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        scenario_echo.SCENARIO,
        scenario_bulk.SCENARIO,
        scenario_connrate.SCENARIO,
        scenario_reqresp.SCENARIO,
        scenario_tls.SCENARIO,
        scenario_happy.SCENARIO,
        scenario_latency.SCENARIO,
        scenario_idle.SCENARIO,
        *scenario_wsgi.SCENARIOS,
        scenario_idle.SCENARIO_100K,
    )
}

# Regimes too long for the default run (minutes per round): measured only when named.
ON_REQUEST = {scenario_idle.SCENARIO_100K.name}

# Names that stand for several scenarios.
GROUPS = {"wsgi": [s.name for s in scenario_wsgi.SCENARIOS]}

DEFAULT_ROUNDS = 5


def progress(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def brief(scenario: Scenario, result: dict[str, Any]) -> str:
    if "unavailable" in result:
        return "not available yet: " + first_line(result["unavailable"])
    parts = []
    for metric in scenario.metrics:
        value = result.get(metric.key)
        if value is not None:
            parts.append(f"{metric.label} {value:{metric.fmt}}")
    if "error" in result:
        parts.append("error: " + first_line(result["error"], 120))
    return ", ".join(parts) or "no result"


def run_scenario(ctx: Context, scenario: Scenario, rounds: int, only: set[str] | None) -> dict:
    settings = scenario.settings(ctx.quick)
    contenders = [
        c
        for c in scenario.contenders
        if c.name == scenario.baseline
        or (c.name in only if only is not None else not getattr(c, "optional", False))
    ]
    all_rounds: list[dict[str, Any]] = []
    orders: list[list[str]] = []
    began = time.monotonic()
    for index in range(rounds):
        order = rotated(contenders, index)
        orders.append([c.name for c in order])
        results: dict[str, Any] = {}
        for contender in order:
            started = time.monotonic()
            result = scenario.measure(ctx, contender, settings)
            result["wall_s"] = time.monotonic() - started
            results[contender.name] = result
            progress(
                f"[{scenario.name} {index + 1}/{rounds}] {contender.name}: {brief(scenario, result)}"
            )
        all_rounds.append({c.name: results[c.name] for c in contenders})
    summary = summarise(all_rounds, scenario.baseline, [m.key for m in scenario.metrics])
    return {
        "title": scenario.title,
        "baseline": scenario.baseline,
        "settings": settings,
        "orders": orders,
        "rounds": all_rounds,
        "summary": summary,
        "seconds": time.monotonic() - began,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"rounds per scenario (default {DEFAULT_ROUNDS}; 1 with --quick)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(name for name in SCENARIOS if name not in ON_REQUEST),
        help="comma-separated: " + ",".join([*SCENARIOS, *GROUPS]),
    )
    parser.add_argument(
        "--contenders",
        default=None,
        help="comma-separated names to keep (the baseline always runs)",
    )
    parser.add_argument("--quick", action="store_true", help="one round, small sizes: a smoke test")
    parser.add_argument(
        "--out", default=None, help="results file (default bench/results/<time>.json)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run every contender and load generator under SCHED_FIFO (root), so that other"
        " work on a shared machine does not preempt them",
    )
    parser.add_argument(
        "--server-processes",
        default="auto",
        help="idle regimes: server processes sharing the port with SO_REUSEPORT; 'auto'"
        " (default): one per 18,000 connections, since a process here holds at most 20,000"
        " files; 1: one process holding what its open-file limit allows",
    )
    args = parser.parse_args(argv)
    try:
        server_processes = parse_processes(args.server_processes)
    except ValueError as exc:
        parser.error(str(exc))
    if args.realtime:
        try:  # check here, not in every child: a failure there is a bare exec error
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except PermissionError:
            parser.error("--realtime needs root (or CAP_SYS_NICE) to use SCHED_FIFO")
        os.environ[REALTIME_ENV] = "1"  # read by every child (_harness._child_setup)

    names = [
        name
        for n in args.scenarios.split(",")
        if n.strip()
        for name in GROUPS.get(n.strip(), [n.strip()])
    ]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else DEFAULT_ROUNDS)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    only = set(args.contenders.split(",")) if args.contenders else None

    raise_fd_limit()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results_dir = BENCH_DIR / "results"
    out = Path(args.out) if args.out else results_dir / f"{stamp}.json"
    with tempfile.TemporaryDirectory(prefix="greenpoint-bench-") as scratch:
        ctx = Context(
            log_dir=results_dir / "logs",
            quick=args.quick,
            pin=pinning_available() and not args.no_pin,
            cert_dir=Path(scratch) / "certs",
            server_processes=server_processes,
        )
        report: dict[str, Any] = {
            "started": stamp,
            "command": [os.path.basename(sys.executable), *sys.argv],
            "rounds": rounds,
            "quick": args.quick,
            "pinned": ctx.pin,
            "realtime": args.realtime,
            "server_processes": server_processes,
            "machine": machine(),
            "versions": versions(),
            "scenarios": {},
            "targets": [],
        }
        progress(f"greenpoint bench: {', '.join(names)}; {rounds} round(s); pinned={ctx.pin}")
        began = time.monotonic()
        for name in names:
            scenario = SCENARIOS[name]
            data = run_scenario(ctx, scenario, rounds, only)
            report["scenarios"][name] = data
            report["targets"] += evaluate_targets(scenario, data["summary"], data["rounds"])
        report["seconds"] = time.monotonic() - began
        report["machine"]["loadavg_end"] = os.getloadavg()

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n")
    lines: list[str] = []
    for name in names:
        lines += scenario_table(SCENARIOS[name], report["scenarios"][name]) + [""]
    lines += targets_table(report["targets"])
    lines.append(
        f"\n{len(names)} scenario(s), {rounds} round(s), {report['seconds']:.0f} s; results: {out}"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
