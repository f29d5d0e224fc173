"""Python calls per connection of ``listen()`` under the ``connrate`` load, in process.

    python bench/listen_profile.py                      # loop dispatch, 3,000 connections
    python bench/listen_profile.py --count 5000 --dispatch greenlet
    BENCH_GREENPOINT_ROOT=/work/main python bench/listen_profile.py   # another tree

The server (an echo ``Protocol`` on ``tcp:0:interface=127.0.0.1``) runs in this
process under ``cProfile`` during the measured phase only (after the load
generator's warm-up); ``loadgen.py connrate`` runs as a child. Prints the Python
calls per connection, then each function's calls per connection (most first).
Call counts do not depend on the machine's load; cProfile's times do (and it slows
every call), so they are not printed.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
root = os.environ.get("BENCH_GREENPOINT_ROOT")
if root:
    sys.path.insert(0, root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--dispatch", choices=("loop", "greenlet"), default="loop")
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args()

    import gevent.subprocess as subprocess

    from greenpoint import Factory, Protocol, server_from_string

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    endpoint = server_from_string("tcp:0:interface=127.0.0.1")
    port = endpoint.listen(Factory.forProtocol(Echo), dispatch=args.dispatch)
    command = [sys.executable, str(BENCH_DIR / "loadgen.py"), "connrate"]
    command += ["--port", str(port.get_host().port), "--count", str(args.count)]
    generator = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = generator.stdout.readline()
        if not line.startswith("WARM"):
            raise SystemExit(f"load generator: {line!r}")
        profile = cProfile.Profile()
        profile.enable()
        generator.stdin.write("GO\n")
        generator.stdin.flush()
        result = generator.stdout.readline()
        profile.disable()
    finally:
        generator.wait()
        port.stop_listening()
    print(result.strip())
    stats = pstats.Stats(profile)
    count = args.count
    print(f"Python calls per connection: {stats.total_calls / count:.1f}")  # type: ignore[attr-defined]
    rows = []
    for (path, line_number, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        calls = entry[1]
        where = name if path == "~" else f"{Path(path).name}:{line_number}({name})"
        rows.append((calls / count, where))
    for per, where in sorted(rows, reverse=True)[: args.top]:
        if per >= 0.05:
            print(f"{per:6.2f}  {where}")


if __name__ == "__main__":
    main()
