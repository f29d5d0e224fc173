"""Real peers under load: HAProxy in front of ``haproxy:``, systemd-socket-activate.

The interoperability tests (``test_haproxy_real.py``, ``test_adopted.py``) show one
connection getting through; these push many at once, with resets among them, through
the real programs and greenpoint's real ``serve()``, checking every byte by SHA-256
and every client address. Each test skips, naming the Debian package, where its
program is not installed (``.ci/install-programs`` installs both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket as stdsocket
import struct
import subprocess
import sys
import textwrap
import time

import gevent
import pytest
from _haproxy_helpers import HAPROXY, haproxy_process
from _reliability_helpers import Baseline, KiB, echo_exchange, record
from _wait_helpers import wait_until
from gevent import socket as gsocket

from greenpoint import IPv4Address, TCP4ClientEndpoint, server_from_string

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")

pytestmark = pytest.mark.timeout(90)

CLIENTS = 40  # per path
SIZE = 256 * KiB
RESETS = 5


def reset_after_some_data(sock):
    sock.sendall(os.urandom(64 * KiB))
    assert sock.recv(KiB)
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- HAProxy ---------------------------------------------------------------------------


@contextlib.contextmanager
def running_haproxy(tmp_path, backend_port):
    """HAProxy with two frontends to ``127.0.0.1:backend_port``: send-proxy, send-proxy-v2."""
    fronts = {}
    lines = [
        "global",
        "    nbthread 1",
        "    maxconn 1000",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 30s",
        "    timeout server 30s",
    ]
    for version, option in ((1, "send-proxy"), (2, "send-proxy-v2")):
        front = stdsocket.socket()
        front.bind(("127.0.0.1", 0))
        front.listen(128)
        fronts[version] = front
        lines += [
            f"frontend fe{version}",
            f"    bind fd@{front.fileno()}",
            f"    default_backend be{version}",
            f"backend be{version}",
            f"    server s{version} 127.0.0.1:{backend_port} {option}",
        ]
    try:
        with haproxy_process(tmp_path, lines, [f.fileno() for f in fronts.values()], 0.1):
            yield {version: front.getsockname()[1] for version, front in fronts.items()}
    finally:
        for front in fronts.values():
            front.close()


@pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (Debian package: haproxy)")
def test_many_clients_through_real_haproxy_send_proxy_v1_and_v2(tmp_path):
    baseline = Baseline()
    seen = []

    def echo(stream, address):
        seen.append(address)
        while data := stream.recv(64 * KiB):
            stream.sendall(data)

    port = server_from_string("haproxy:tcp:0:interface=127.0.0.1:backlog=256").serve(echo)
    try:
        with running_haproxy(tmp_path, port.get_host().port) as fronts:

            def one(front_port):
                with gsocket.create_connection(("127.0.0.1", front_port), timeout=30) as sock:
                    me = IPv4Address(*sock.getsockname())
                    return me, echo_exchange(sock, SIZE)

            def resetter(front_port):
                reset_after_some_data(gsocket.create_connection(("127.0.0.1", front_port)))

            jobs = [gevent.spawn(one, fronts[1 + i % 2]) for i in range(CLIENTS)]
            jobs += [gevent.spawn(resetter, fronts[1 + i % 2]) for i in range(RESETS)]
            gevent.joinall(jobs, timeout=60, raise_error=True)
            clients = [g.value for g in jobs[:CLIENTS]]
            assert [size for _, size in clients] == [SIZE] * CLIENTS
            # The handler saw each real client (address and port), through both versions.
            assert {me for me, _ in clients} <= set(seen)
            wait_until(lambda: port.handler_count == 0, timeout=10)
    finally:
        port.stop_listening(timeout=5)
    figures = baseline.check("through haproxy")
    record(
        "real_haproxy_load",
        clients=CLIENTS,
        resets=RESETS,
        bytes_verified=CLIENTS * SIZE,
        **figures,
    )


# -- systemd-socket-activate ------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, sys
    import gevent.event
    import greenpoint

    expected = int(sys.argv[2])
    done = gevent.event.Event()
    served = []

    def echo(stream, address):
        try:
            while data := stream.recv(65536):
                stream.sendall(data)
        finally:
            served.append(address)
            if len(served) >= expected:
                done.set()

    port = greenpoint.server_from_string(sys.argv[1]).serve(echo)
    fds_serving = len(os.listdir("/proc/self/fd"))
    done.wait(60)
    port.stop_listening(timeout=5)
    print(len(served), fds_serving, len(os.listdir("/proc/self/fd")), flush=True)
    """
)


def free_port():
    with stdsocket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(
    SOCKET_ACTIVATE is None,
    reason="systemd-socket-activate is not installed (Debian package: systemd)",
)
def test_many_clients_through_a_socket_activated_server():
    number = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT)
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(key, None)
    expected = 1 + CLIENTS + RESETS
    child = subprocess.Popen(
        [
            SOCKET_ACTIVATE,
            "-l",
            f"127.0.0.1:{number}",
            sys.executable,
            "-c",
            CHILD,
            "systemd:domain=INET:index=0",
            str(expected),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = TCP4ClientEndpoint("127.0.0.1", number, timeout=30)
        deadline = time.monotonic() + 10
        while True:  # the first connection makes systemd-socket-activate start the child
            try:
                first = endpoint.open()
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                gevent.sleep(0.05)
        with first:
            assert echo_exchange(first, SIZE) == SIZE

        def one():
            with endpoint.open() as stream:
                return echo_exchange(stream, SIZE)

        jobs = [gevent.spawn(one) for _ in range(CLIENTS)]
        jobs += [
            gevent.spawn(lambda: reset_after_some_data(endpoint.open())) for _ in range(RESETS)
        ]
        gevent.joinall(jobs, timeout=60, raise_error=True)
        assert [g.value for g in jobs[:CLIENTS]] == [SIZE] * CLIENTS
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert "Traceback" not in err, err
    served, fds_serving, fds_after = map(int, out.split())
    assert served == expected
    assert fds_after == fds_serving - 1  # only the adopted listener is gone
    record(
        "real_systemd_socket_activate_load",
        clients=expected,
        resets=RESETS,
        bytes_verified=(1 + CLIENTS) * SIZE,
        child_fds_serving=fds_serving,
        child_fds_after=fds_after,
    )
