"""Python calls and instructions per ``tls:`` open, in process, against the TLS peer.

    python bench/tls_client_profile.py greenpoint-tls            # cProfile, 300 opens
    python bench/tls_client_profile.py gevent-pyopenssl --count 300
    python bench/tls_client_profile.py greenpoint-tls --callgrind   # instructions per open
    chrt -f 1 taskset -c 0 python bench/tls_client_profile.py greenpoint-tls --timing --peer-cpu 1
    BENCH_GREENPOINT_ROOT=/work/main python bench/tls_client_profile.py greenpoint-tls

Each open is what the ``latency`` scenario's client times (connect, handshake,
first byte) plus its ``close()``, against ``loadgen.py first-byte-server
--tls-files`` (stdlib ``ssl``, a trustme certificate for 127.0.0.1, no session
tickets: every handshake is a full one) running as a child.

Without ``--callgrind``: the client runs ``--warmup`` opens, then ``--count`` opens
under ``cProfile``; prints the Python calls per open, then each function's calls per
open (most first). Call counts do not depend on the machine's load.

With ``--timing``: no profile; prints the median wall-clock and CPU (thread time)
µs of connect + handshake + first byte over ``--count`` opens, the close left out
as the latency client leaves it out. ``--peer-cpu N`` pins the peer to core N
(run the script itself under ``taskset``/``chrt`` for the other core).

With ``--callgrind``: runs this script twice under ``valgrind --tool=callgrind``
(the peer is not traced), once with ``--count`` opens and once with none (both after
the warm-up), and prints the difference of the two instruction totals per open:
load-independent, so two trees can be compared on a busy machine. The handshakes'
key material differs from run to run, and so do the instructions: about ±25k per
open with 60 opens (``--count 60``, some 3 minutes), less with more.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
root = os.environ.get("BENCH_GREENPOINT_ROOT")
if root:
    sys.path.insert(0, root)
sys.path.insert(0, str(BENCH_DIR / "clients"))

CONTENDERS = ("greenpoint-tls", "gevent-pyopenssl")


def make_certificates(directory: Path) -> tuple[str, str, str]:
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_pem = directory / "server.pem", directory / "server.key", directory / "ca.pem"
    server.private_key_pem.write_to_path(str(key))
    server.cert_chain_pems[0].write_to_path(str(cert))
    ca.cert_pem.write_to_path(str(ca_pem))
    return str(cert), str(key), str(ca_pem)


def opener(contender: str, port: int, ca: str):
    """One open as the latency client times it, then its close."""
    if contender == "greenpoint-tls":
        import greenpoint

        quoted = greenpoint.quote_string_argument(ca)
        endpoint = greenpoint.client_from_string(f"tls:127.0.0.1:{port}:trustRoots={quoted}")

        def one() -> Any:
            stream = endpoint.open()
            stream.recv(1)
            return stream

        return one
    import gevent_client

    context = gevent_client.pyopenssl_context(ca)

    def bare() -> Any:
        conn, sock = gevent_client.pyopenssl_open(context, "127.0.0.1", port)
        gevent_client.pyopenssl_recv(conn, sock.fileno(), 1)
        return sock

    return bare


def run_in_process(args: argparse.Namespace) -> None:
    import gevent
    import gevent.subprocess as gsubprocess

    with tempfile.TemporaryDirectory() as tmp:
        cert, key, ca = make_certificates(Path(tmp))
        command = [sys.executable, str(BENCH_DIR / "loadgen.py"), "first-byte-server"]
        if args.peer_cpu is not None:
            command = ["taskset", "-c", str(args.peer_cpu), *command]
        command += ["--port", "0", "--tls-files", cert, key]
        peer = gsubprocess.Popen(
            command, stdin=gsubprocess.PIPE, stdout=gsubprocess.PIPE, text=True
        )
        try:
            line = peer.stdout.readline().split()
            if not line or line[0] != "READY":
                raise SystemExit(f"peer: {line!r}")
            one = opener(args.contender, int(line[1]), ca)
            # libev times a timer from the loop's clock, read when the loop last
            # turned: under valgrind the imports above take long enough (> 30 s)
            # that the first connect's timeout would expire at once.
            gevent.get_hub().loop.update_now()
            for _ in range(args.warmup):
                one().close()
            if args.timing:
                timed(one, args.count)
                return
            profile = cProfile.Profile() if args.profile else None
            if profile is not None:
                profile.enable()
            for _ in range(args.count):
                one().close()
            if profile is not None:
                profile.disable()
        finally:
            peer.stdin.close()
            peer.wait()
    if profile is not None and args.count:
        report(profile, args.count, args.top)


def timed(one: Any, count: int) -> None:
    """Median wall-clock and CPU µs of connect + handshake + first byte (not the close)."""
    walls, cpus = [], []
    for _ in range(count):
        wall, cpu = time.perf_counter(), time.thread_time()
        stream = one()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
        stream.close()
    wall_us, cpu_us = statistics.median(walls) * 1e6, statistics.median(cpus) * 1e6
    print(f"TIMING wall_us {wall_us:.0f} cpu_us {cpu_us:.0f}")


def report(profile: cProfile.Profile, count: int, top: int) -> None:
    stats = pstats.Stats(profile)
    print(f"Python calls per open: {stats.total_calls / count:.1f}")  # type: ignore[attr-defined]
    rows = []
    for (path, line_number, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        where = name if path == "~" else f"{Path(path).name}:{line_number}({name})"
        rows.append((entry[1] / count, where))
    for per, where in sorted(rows, reverse=True)[:top]:
        if per >= 0.05:
            print(f"{per:6.2f}  {where}")


def instructions(args: argparse.Namespace, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        command += [sys.executable, __file__, args.contender, "--no-profile"]
        command += ["--count", str(count), "--warmup", str(args.warmup)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            lines = [line for line in done.stderr.splitlines() if not line.startswith("==")]
            raise SystemExit(f"{args.contender} under callgrind failed:\n" + "\n".join(lines[-15:]))
        for line in out.read_text().splitlines():
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(re.split(r"\s+", line)[1])
    raise SystemExit("no totals in callgrind's output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=CONTENDERS)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--top", type=int, default=80)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument(
        "--timing", action="store_true", help="median wall-clock and CPU µs per open, no profile"
    )
    parser.add_argument("--peer-cpu", type=int, default=None, help="pin the peer to this core")
    args = parser.parse_args()
    if not args.callgrind:
        run_in_process(args)
        return
    count = args.count
    with_opens = instructions(args, count)
    without = instructions(args, 0)
    print(f"{args.contender}: {(with_opens - without) / count / 1000:,.0f}k instructions per open")


if __name__ == "__main__":
    main()
