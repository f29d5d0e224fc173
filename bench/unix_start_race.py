"""Two processes start a greenpoint ``unix:`` server on one path at the same moment.

Counts, per trial, how many of the two ended up with a listener. One is right (the
other gets ``ListenError``); two means one of them lost its socket file to the other
and listens where nobody can reach it (the race fixed in docs/unix-and-systemd.md,
"How a stale socket is told from a live one"). Run on a fresh path and on a stale
socket file left by a dead server::

    python bench/unix_start_race.py [TRIALS]
    BENCH_GREENPOINT_ROOT=/work/main python bench/unix_start_race.py   # another tree
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from typing import Any

sys.path.insert(
    0,
    os.environ.get(
        "BENCH_GREENPOINT_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ),
)

from greenpoint import UNIXServerEndpoint  # noqa: E402
from greenpoint.errors import ListenError  # noqa: E402


def start_server(path: str, go: Any, results: Any) -> None:
    go.wait()
    try:
        listener = UNIXServerEndpoint(path).bind()
    except ListenError:
        results.put(False)
        return
    results.put(True)
    time.sleep(0.3)  # hold the socket while the other one finishes
    listener.leave_file_on_close()
    listener.close()


def trial(stale: bool) -> int:
    folder = tempfile.mkdtemp(prefix="gp-race-")
    path = os.path.join(folder, "s.sock")
    try:
        if stale:
            dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            dead.bind(path)
            dead.close()
        go = multiprocessing.Event()
        results: Any = multiprocessing.Queue()
        servers = [
            multiprocessing.Process(target=start_server, args=(path, go, results)) for _ in range(2)
        ]
        for server in servers:
            server.start()
        time.sleep(0.05)
        go.set()
        started = sum(results.get(timeout=30) for _ in servers)
        for server in servers:
            server.join()
        results.close()
        return started
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    multiprocessing.set_start_method("fork")
    for stale in (False, True):
        counts = Counter(trial(stale) for _ in range(trials))
        where = "a stale socket file" if stale else "a fresh path"
        print(
            f"{where}: {counts[1]} of {trials} trials one server started, "
            f"{counts[2]} both (one orphaned), {counts[0]} neither"
        )


if __name__ == "__main__":
    main()
