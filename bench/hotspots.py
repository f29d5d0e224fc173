"""Look inside one server contender under the fixed load generator (to find hot paths).

    python bench/hotspots.py greenpoint-serve --load connrate --tool py-spy
    python bench/hotspots.py gevent --load connrate --tool callgrind
    python bench/hotspots.py greenpoint-serve --tls --load connrate --tool strace

Only the measured phase is looked at (after the load generator's warm-up):

* ``py-spy`` samples the server and prints the functions with most samples (self
  and total);
* ``callgrind`` runs the server under valgrind and counts the user-space
  instructions it executes, per connection or per MB: unlike time, a count that does
  not depend on what else the shared machine is doing. (Its per-function breakdown is
  not printed: greenlet stack switching confuses callgrind's call tree.)
* ``strace`` counts the server's system calls per connection or per MB.

Needs ``py-spy``, ``valgrind`` or ``strace`` installed; ``run.py`` uses none of them.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import START_TIMEOUT, Child, Context, pinning_available  # noqa: E402
from _serverbench import PLAIN, TLS  # noqa: E402

DEFAULT_SIZE = {"echo": 256 << 20, "connrate": 3000, "reqresp": 20000}


def load_args(load: str, size: int, connections: int = 1000) -> list[str]:
    if load == "echo":
        return ["echo", "--bytes", str(size)]
    if load == "reqresp":  # 1,000 connections, one 512-byte request in flight on each
        return ["reqresp", "--count", str(connections), "--requests", str(size)]
    return ["connrate", "--count", str(size), "--concurrency", "8"]


def contender_named(name: str, tls: bool):
    for contender in TLS if tls else PLAIN:
        if contender.name == name:
            return contender
    names = ", ".join(c.name for c in (TLS if tls else PLAIN))
    raise SystemExit(f"unknown contender {name!r}; choose from {names}")


def top_from_collapsed(path: Path, limit: int) -> str:
    """Self and total sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return "no samples"
    lines = [f"{samples} samples", "-- self --"]
    lines += [f"{n / samples:6.1%}  {f}" for f, n in own.most_common(limit)]
    lines.append("-- total --")
    lines += [f"{n / samples:6.1%}  {f}" for f, n in total.most_common(limit)]
    return "\n".join(lines)


def strace_summary(path: Path, units: float, unit: str, limit: int) -> str:
    """System calls per unit from ``strace -c`` output."""
    lines = [f"system calls per {unit}:"]
    for line in path.read_text().splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls = int(fields[3])
            errors = int(fields[4]) if len(fields) == 6 else 0
            lines.append(
                f"{calls / units:8.2f}  {fields[-1]}"
                + (f" ({errors / units:.2f} failed)" if errors else "")
            )
        elif fields and fields[-1] == "total":
            lines.append(f"{int(fields[3]) / units:8.2f}  total")
    return "\n".join(lines[: limit + 2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender")
    parser.add_argument("--load", choices=["echo", "connrate", "reqresp"], default="connrate")
    parser.add_argument("--tool", choices=["py-spy", "callgrind", "strace"], default="py-spy")
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--size", type=int, default=0, help="bytes (echo), connections or requests")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--connections", type=int, default=1000, help="reqresp connections")
    parser.add_argument(
        "--cache-sim", action="store_true", help="callgrind: simulate the caches (L1/LL misses)"
    )
    parser.add_argument("--keep", help="callgrind: copy the profile (for callgrind_annotate) here")
    args = parser.parse_args()
    size = args.size or DEFAULT_SIZE[args.load]
    units, unit = {
        "connrate": (size, "connection"),
        "reqresp": (size, "request"),
    }.get(args.load, (size / 1e6, "MB"))

    with tempfile.TemporaryDirectory(prefix="greenpoint-hotspots-") as scratch:
        scratch_dir = Path(scratch)
        ctx = Context(
            log_dir=scratch_dir / "logs",
            quick=False,
            pin=pinning_available(),
            cert_dir=scratch_dir / "certs",
        )
        contender = contender_named(args.contender, args.tls)
        argv = [
            ctx.python,
            str(Path(__file__).parent / "servers" / contender.script),
            *contender.args,
        ]
        if args.tls:
            cert, key = ctx.tls_files()
            argv += ["--tls", str(cert), str(key)]
        callgrind_out = scratch_dir / "callgrind.out"
        if args.tool == "callgrind":
            tool = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind_out}"]
            if args.cache_sim:
                # The last level simulated is this machine's L2 (2 MiB per core, 16
                # ways): the shared 105 MiB L3 would hide every miss that costs here.
                tool += ["--cache-sim=yes", "--D1=49152,12,64", "--LL=2097152,16,64"]
            argv = [*tool, *argv]
        server = Child(argv, cpu=ctx.contender_cpu, name=contender.name, log_dir=ctx.log_dir)
        output = scratch_dir / "tool.out"
        try:
            port = int(server.expect("READY", START_TIMEOUT * 10))
            load = (
                load_args(args.load, size, args.connections)
                + ["--port", str(port)]
                + (["--tls"] if args.tls else [])
            )
            with ctx.loadgen(load) as generator:
                generator.expect("WARM", 600)
                watcher = None
                if args.tool == "py-spy":
                    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                    command = [
                        spy,
                        "record",
                        "--pid",
                        str(server.pid),
                        "--format",
                        "raw",
                        "--rate",
                        "500",
                    ]
                    command += ["--function", "--nonblocking", "--output", str(output)]
                    watcher = subprocess.Popen(
                        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                    time.sleep(1.0)
                elif args.tool == "strace":
                    command = ["strace", "-c", "-f", "-o", str(output), "-p", str(server.pid)]
                    watcher = subprocess.Popen(
                        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                    time.sleep(1.0)
                else:
                    subprocess.run(
                        ["callgrind_control", "--zero", str(server.pid)],
                        check=True,
                        capture_output=True,
                    )
                generator.send_line()
                result = generator.expect("RESULT", 1200)
                if watcher is not None:
                    watcher.send_signal(signal.SIGINT)
                    watcher.wait(30)
                else:
                    subprocess.run(
                        ["callgrind_control", "--dump", str(server.pid)],
                        check=True,
                        capture_output=True,
                    )
        finally:
            server.stop(timeout=60)
        print(f"{contender.name}{' (TLS)' if args.tls else ''} under {args.load}: {result}")
        if args.tool == "py-spy":
            print(top_from_collapsed(output, args.top))
        elif args.tool == "strace":
            print(strace_summary(output, units, unit, args.top))
        else:
            dumps = [p for p in scratch_dir.glob("callgrind.out*") if p != callgrind_out]
            if args.keep:
                shutil.copy(max(dumps, key=lambda p: p.stat().st_mtime), args.keep)
            report = subprocess.run(
                ["callgrind_annotate", str(max(dumps, key=lambda p: p.stat().st_mtime))],
                capture_output=True,
                text=True,
            ).stdout
            events = re.search(r"^Events shown: +(.+)$", report, re.MULTILINE)
            totals = re.search(r"^(.*)PROGRAM TOTALS", report, re.MULTILINE)
            if events is None or totals is None:
                raise SystemExit("callgrind gave no totals")
            counts = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) \(", totals[1])]
            by_event = dict(zip(events[1].split(), counts, strict=True))
            instructions = by_event["Ir"]
            print(f"user-space instructions in the measured phase: {instructions:,}")
            print(f"per {unit}: {instructions / units:,.0f}")
            if args.cache_sim:  # I1/D1 misses (first level), LL misses (last level)
                print(", ".join(f"{k} {v / units:,.1f}" for k, v in by_event.items()))


if __name__ == "__main__":
    main()
