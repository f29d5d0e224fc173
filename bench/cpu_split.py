"""Server CPU per request split into user and system time, at several connection counts.

    python bench/cpu_split.py --contenders gevent,greenpoint-protocol,uvloop --counts 100,1000,10000

For each contender and count, a fresh server (core 0) and the ``reqresp`` load
generator (core 1) as ``run.py`` starts them; after the load generator's warm-up the
server's ``/proc/PID/stat`` (user and system ticks, minor faults), ``/proc/PID/status``
(context switches: a voluntary one is the loop going to sleep in ``epoll_wait`` with
nothing ready) and schedstat (total ns) are read, then again after ``--requests``
requests. Prints one line per measurement and the medians per contender and count.
Wall-clock-ish: run it under ``flock /work/bench.lock`` on a shared machine.
A contender named ``NAME@PATH`` is NAME with the greenpoint of the checkout at PATH
(as ``BENCH_GREENPOINT_ROOT``), for an A/B of two trees in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
from _harness import Context, cpu_between, cpu_sample, parse_json, pinning_available  # noqa: E402
from _serverbench import start_server  # noqa: E402
from hotspots import contender_named  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def proc_counters(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    counters = {
        "user": int(fields[11]) / TICK,
        "system": int(fields[12]) / TICK,
        "minflt": int(fields[7]),
    }
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                counters["vcsw"] = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                counters["ivcsw"] = int(line.split()[1])
    return counters


def measure_one(ctx: Context, name: str, count: int, requests: int) -> dict[str, float]:
    name, _, root = name.partition("@")
    contender = contender_named(name, False)
    default_root = _harness.GREENPOINT_ROOT
    if root:
        _harness.GREENPOINT_ROOT = Path(root).resolve()
    try:
        server, port = start_server(ctx, contender, False)
    finally:
        _harness.GREENPOINT_ROOT = default_root
    try:
        args = ["reqresp", "--count", str(count), "--requests", str(requests), "--port", str(port)]
        with ctx.loadgen(args) as generator:
            generator.expect("WARM", 300)
            before, sample = proc_counters(server.pid), cpu_sample(server.pid)
            generator.send_line()
            result = parse_json(generator.expect("RESULT", 600), "loadgen")
            after, sample_after = proc_counters(server.pid), cpu_sample(server.pid)
    finally:
        server.stop()
    per = {key: (after[key] - before[key]) / requests for key in after}
    return {
        "user_us": per["user"] * 1e6,
        "system_us": per["system"] * 1e6,
        "total_us": cpu_between(sample, sample_after) / requests * 1e6,
        "minflt": per["minflt"],
        "sleeps": per["vcsw"],
        "preempted": per["ivcsw"],
        "req_per_s": result["req_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contenders", default="gevent,greenpoint-protocol,uvloop")
    parser.add_argument("--counts", default="100,1000,10000")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = args.contenders.split(",")
    counts = [int(c) for c in args.counts.split(",")]
    rows: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="greenpoint-split-") as scratch:
        ctx = Context(
            log_dir=Path(scratch) / "logs",
            quick=False,
            pin=pinning_available(),
            cert_dir=Path(scratch) / "certs",
        )
        for round_ in range(args.rounds):
            for count in counts:
                for i in range(len(names)):
                    name = names[(i + round_) % len(names)]
                    got = measure_one(ctx, name, count, args.requests)
                    rows.setdefault((name, count), []).append(got)
                    print(
                        f"r{round_} {name:22} {count:6} "
                        + " ".join(f"{k}={v:.3g}" for k, v in got.items()),
                        flush=True,
                    )
    print(
        "\nmedians: contender, connections, user us, system us, total us (schedstat), "
        "minor faults, sleeps (voluntary switches), preemptions, req/s"
    )
    for (name, count), got in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        med = {k: statistics.median(g[k] for g in got) for k in got[0]}
        print(
            f"| {name} | {count} | {med['user_us']:.2f} | {med['system_us']:.2f} | "
            f"{med['total_us']:.2f} | {med['minflt']:.3f} | {med['sleeps']:.3f} | "
            f"{med['preempted']:.4f} | {med['req_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
