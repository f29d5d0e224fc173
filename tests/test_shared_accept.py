"""Workers sharing a listening socket share a burst of connections (issue 15).

Without it, the worker that wakes first accepts every pending connection before it
runs anything else, so a burst of keep-alive clients (wrk's 32) sticks to one worker
while the other idles: half the capacity, and the p99 of the busy worker.
"""

from __future__ import annotations

import collections
import os
import socket as stdsocket
import textwrap

import gevent
import pytest
from _cli_helpers import Child, child_env, greenpoint_command
from gevent import socket as gsocket

from greenpoint import ListeningPort

pytestmark = pytest.mark.timeout(60)

PENDING = 6


def _port_with_pending_clients(shares: bool) -> tuple[list[int], list[gsocket.socket]]:
    """Start a port with PENDING clients already waiting; what each handler saw."""
    listener = gsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    clients = [
        gsocket.create_connection(listener.getsockname()[:2], timeout=5) for _ in range(PENDING)
    ]
    seen: list[int] = []
    done = gevent.event.Event()

    def handler(stream, address):
        # How many connections the port had accepted when this handler first ran.
        seen.append(port.stats.accepted)
        if len(seen) == PENDING:
            done.set()
        stream.close()

    port = ListeningPort(listener, handler)
    port.shares_listener = shares
    port._accept_greenlet = gevent.spawn(port._accept_loop)
    try:
        assert done.wait(10), f"only {len(seen)} of {PENDING} handlers ran"
    finally:
        port.stop_listening(timeout=0)
    return seen, clients


@pytest.mark.parametrize("shares", [False, True])
def test_a_port_that_shares_its_listener_runs_each_handler_before_the_next_accept(shares):
    seen, clients = _port_with_pending_clients(shares)
    for client in clients:
        client.close()
    if shares:
        # Each connection's handler ran before the port took the next one, so the
        # sibling processes get their turn at the rest of the burst.
        assert seen == list(range(1, PENDING + 1))
    else:
        # Alone on its socket, the port takes the whole burst first (fewest switches).
        assert seen == [PENDING] * PENDING


PID_APP = """
    import os

    def application(environ, start_response):
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
"""


def _pid_of_each_connection(port: int, count: int) -> collections.Counter[str]:
    socks = [stdsocket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        pids: collections.Counter[str] = collections.Counter()
        for sock in socks:
            data = b""
            while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 3:
                chunk = sock.recv(4096)
                assert chunk, "closed without a response"
                data += chunk
            pids[data.partition(b"\r\n\r\n")[2].decode()] += 1
        return pids
    finally:
        for sock in socks:
            sock.close()


def test_two_workers_share_a_burst_of_keep_alive_connections(tmp_path):
    (tmp_path / "pid_app.py").write_text(textwrap.dedent(PID_APP))
    command = greenpoint_command(
        "wsgi", "tcp:0:interface=127.0.0.1", "pid_app:application", "--workers", "2"
    )
    child = Child(command, cwd=tmp_path, env=child_env(), start_new_session=True)
    try:
        port = int(child.wait_for(r"serving \S+ on 127\.0\.0\.1:(\d+)").group(1))
        # Announced once every worker's accept loop runs.
        workers = child.wait_for(r"started \d+ workers?: ([\d ]+)")[1].split()
        # Bursts of 32 connections, as wrk opens them: each worker gets a share of
        # every burst (before, 2 bursts in 3 all went to one worker).
        for _ in range(3):
            pids = _pid_of_each_connection(port, 32)
            assert set(pids) == set(workers), pids
            assert min(pids.values()) >= 4, pids
    finally:
        try:
            os.killpg(child.process.pid, 9)
        except ProcessLookupError:
            pass
        child.close()
