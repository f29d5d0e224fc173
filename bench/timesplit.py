"""Where one TLS echo's elapsed time goes, for a few server contenders in alternation.

    python bench/timesplit.py gevent-pyopenssl,greenpoint-serve --pairs 8

For each measured echo (same load generator, sizes and pinning as ``run.py``) it
prints the server's CPU time, its run-queue wait (``/proc/<pid>/task/*/schedstat``,
second field: runnable but not running), what is left of the elapsed time (the
server blocked, waiting for the peer), voluntary and involuntary context switches,
and the load generator's CPU and run-queue wait; then medians and the MB/s ratio of
each contender to the first one, pair by pair. It tells a slower program apart from
a slower machine: only the first shows as more server CPU or more blocked time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import Context, parse_json, pinning_available  # noqa: E402
from _serverbench import TLS, start_server  # noqa: E402


def sched(pid: int) -> tuple[int, int, dict[str, int]]:
    """CPU ns, run-queue wait ns (all threads) and context switch counts of ``pid``."""
    cpu = wait = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
            fields = f.read().split()
        cpu += int(fields[0])
        wait += int(fields[1])
    switches = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if "ctxt_switches" in line:
                key, value = line.split(":")
                switches[key] = int(value)
    return cpu, wait, switches


def one_echo(ctx: Context, contender, size: int) -> dict[str, float]:
    server, port = start_server(ctx, contender, True)
    try:
        args = ["echo", "--bytes", str(size), "--port", str(port), "--tls"]
        with ctx.loadgen(args) as generator:
            generator.expect("WARM", 60)
            s_cpu0, s_wait0, s_sw0 = sched(server.pid)
            g_cpu0, g_wait0, _ = sched(generator.pid)
            generator.send_line()
            result = parse_json(generator.expect("RESULT", 300), "loadgen")
            s_cpu1, s_wait1, s_sw1 = sched(server.pid)
            g_cpu1, g_wait1, _ = sched(generator.pid)
    finally:
        server.stop()
    row = {
        "mb_per_s": result["mb_per_s"],
        "seconds": result["seconds"],
        "server_cpu": (s_cpu1 - s_cpu0) / 1e9,
        "server_runq": (s_wait1 - s_wait0) / 1e9,
        "voluntary": s_sw1["voluntary_ctxt_switches"] - s_sw0["voluntary_ctxt_switches"],
        "involuntary": s_sw1["nonvoluntary_ctxt_switches"] - s_sw0["nonvoluntary_ctxt_switches"],
        "loadgen_cpu": (g_cpu1 - g_cpu0) / 1e9,
        "loadgen_runq": (g_wait1 - g_wait0) / 1e9,
    }
    row["server_blocked"] = row["seconds"] - row["server_cpu"] - row["server_runq"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contenders", help="comma-separated TLS contenders; the first is the base")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--bytes", type=int, default=256 << 20)
    args = parser.parse_args()
    known = {c.name: c for c in TLS}
    names = args.contenders.split(",")
    for name in names:
        if name not in known:
            raise SystemExit(f"unknown contender {name!r}; choose from {', '.join(known)}")
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="greenpoint-timesplit-") as scratch:
        ctx = Context(
            log_dir=Path(scratch) / "logs",
            quick=False,
            pin=pinning_available(),
            cert_dir=Path(scratch) / "certs",
        )
        for i in range(args.pairs):
            for name in names if i % 2 == 0 else names[::-1]:
                row = one_echo(ctx, known[name], args.bytes)
                rows[name].append(row)
                print(name, " ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
    print("medians:")
    for name, measured in rows.items():
        medians = {k: statistics.median(r[k] for r in measured) for k in measured[0]}
        print(name, " ".join(f"{k}={v:.3f}" for k, v in medians.items()))
    base = rows[names[0]]
    for name in names[1:]:
        ratios = [a["mb_per_s"] / b["mb_per_s"] for a, b in zip(rows[name], base, strict=True)]
        pairs = " ".join(f"{x:.2f}" for x in ratios)
        print(f"{name} MB/s / {names[0]} per pair: {pairs}; median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
