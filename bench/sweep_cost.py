"""What one idle sweep costs: ``TCP_INFO`` read for N open connections (issue 14).

    python bench/sweep_cost.py [--connections 5000]

Opens N loopback connections to a greenpoint ``serve()`` port with ``idle_timeout``
set, then times the sweep's per-connection work (``stream_idle_seconds``) over all of
them. The sweep runs at most once per ``idle_timeout / 20`` and usually once per
timeout, so its cost per second is this figure divided by that interval.
"""

from __future__ import annotations

import argparse
import resource
import time

import gevent
from gevent import socket as gsocket

from greenpoint import server_from_string
from greenpoint._limits import stream_idle_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5_000)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def hold(stream, address):
        stream.recv(1)

    endpoint = server_from_string("tcp:0:interface=127.0.0.1:backlog=4096")
    with endpoint.serve(hold, idle_timeout=3600) as port:
        address = ("127.0.0.1", port.get_host().port)
        clients = [gsocket.create_connection(address) for _ in range(args.connections)]
        while port.stats.active < args.connections:
            gevent.sleep(0.05)
        streams = list(port._handlers.values())
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for stream in streams:
                stream_idle_seconds(stream)
            best = min(best, time.perf_counter() - started)
        print(
            f"{len(streams)} connections: one sweep {best * 1000:.1f} ms "
            f"({best / len(streams) * 1e6:.2f} us per connection)"
        )
        for client in clients:
            client.close()


if __name__ == "__main__":
    main()
