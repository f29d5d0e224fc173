"""Connect latency through a local SOCKS5 proxy (microsocks) against a direct connect.

    python bench/proxy_latency.py [--trials 300]

Three ways to a loopback echo server, each timed from "start connecting" to "first
echo back", median and 90th percentile over ``--trials``:

* direct: ``tcp:127.0.0.1:PORT`` (greenpoint);
* raw socks5: a hand-written SOCKS5 handshake on a plain gevent socket, the limit;
* greenpoint socks5: ``socks5:127.0.0.1:PORT:proxy=[tcp:127.0.0.1:PROXY]``.

What greenpoint adds should be the proxy's own round trip (raw socks5 minus direct),
nothing more: the last ratio should be close to 1.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gevent  # noqa: E402
from gevent import socket as gsocket  # noqa: E402

from greenpoint import client_from_string  # noqa: E402

LOOPBACK = "127.0.0.1"


def echo_server() -> tuple[gsocket.socket, int]:
    listener = gsocket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(128)

    def handle(conn: gsocket.socket) -> None:
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            gevent.spawn(handle, conn)

    gevent.spawn(accept)
    return listener, listener.getsockname()[1]


def raw_socks5(proxy: int, port: int) -> gsocket.socket:
    sock = gsocket.create_connection((LOOPBACK, proxy))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"\x05\x01\x00")
    assert sock.recv(2) == b"\x05\x00"
    sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(LOOPBACK) + port.to_bytes(2, "big"))
    assert len(sock.recv(10)) == 10
    return sock


def timed(open_stream: Callable[[], Any], trials: int) -> list[float]:
    times = []
    for _ in range(trials):
        started = time.perf_counter()
        stream = open_stream()
        stream.sendall(b"x")
        stream.recv(1)
        times.append(time.perf_counter() - started)
        stream.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    args = parser.parse_args()
    microsocks = shutil.which("microsocks")
    if microsocks is None:
        print("microsocks not installed (apt-get install microsocks)")
        return 1
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        proxy = probe.getsockname()[1]
    child = subprocess.Popen(
        [microsocks, "-i", LOOPBACK, "-p", str(proxy)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    listener, port = echo_server()
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex((LOOPBACK, proxy)) == 0:
                    break
            time.sleep(0.02)
        direct = client_from_string(f"tcp:{LOOPBACK}:{port}")
        socks = client_from_string(f"socks5:{LOOPBACK}:{port}:proxy=[tcp:{LOOPBACK}:{proxy}]")
        ways = {
            "direct": direct.open,
            "raw socks5": lambda: raw_socks5(proxy, port),
            "greenpoint socks5": socks.open,
        }
        results: dict[str, list[float]] = {name: [] for name in ways}
        for way in ways.values():
            timed(way, 20)  # warm up
        # Round-robin, one of each per round: a noisy shared machine drifts, and
        # this spreads the drift over all three.
        for _ in range(args.trials):
            for name, way in ways.items():
                results[name] += timed(way, 1)
        print(f"{'':20} {'median µs':>10} {'p90 µs':>10}")
        for name, times in results.items():
            p90 = statistics.quantiles(times, n=10)[-1]
            print(f"{name:20} {statistics.median(times) * 1e6:10.0f} {p90 * 1e6:10.0f}")
        ratio = statistics.median(results["greenpoint socks5"]) / statistics.median(
            results["raw socks5"]
        )
        print(f"greenpoint socks5 / raw socks5: {ratio:.2f}")
    finally:
        listener.close()
        child.terminate()
        child.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
