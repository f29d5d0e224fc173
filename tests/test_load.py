"""Load: many concurrent echo connections, and thousands of sequential connects.

Each test runs twice: a small size in ``make test`` and the full size under the
``load`` marker (``make load``), with the same code. After each phase the process
holds exactly the file descriptors and running greenlets it held before.

* Concurrent echo: every client connects first (all are held open by the server at
  once), then all send random data at the same time and half-close; each checks what
  came back by SHA-256. Over TCP, UNIX and TLS, served with ``serve()`` (the stream
  API) and with ``listen()`` (the protocol layer).
* Sequential connects: successes, refusals, black holes with short timeouts,
  cancellations (a killed greenlet, ``connector.stopConnecting()``), and happy-eyeballs
  races (IPv6 black-holed or refusing, IPv4 answering), one after the other.
"""

from __future__ import annotations

import itertools
import socket as stdsocket
import time
from socket import AF_INET, AF_INET6

import gevent
import pytest
from _reliability_helpers import (
    APIS,
    KINDS,
    Baseline,
    KiB,
    client_for,
    echo_exchange,
    echo_server,
    raise_fd_limit,
    record,
)
from _tls_helpers import make_certs
from conftest import open_fds
from gevent import socket as gsocket
from gevent.pool import Pool

from greenpoint import (
    ClientFactory,
    ConnectCancelledError,
    ConnectRefusedError,
    ConnectTimeoutError,
    HostnameEndpoint,
    Protocol,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
)
from greenpoint.testing import FakeResolver

SMALL = {"clients": 100, "size": 64 * KiB, "connects": 500}
FULL = {"clients": 1000, "size": 256 * KiB, "connects": 10_000}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("load-certs"))


# -- concurrent echo -------------------------------------------------------------------


def concurrent_echo(kind, api, clients, size, tmp_path, certs):
    """Hold ``clients`` connections at once, then echo ``size`` bytes on each."""
    raise_fd_limit(2 * clients + 256)
    baseline = Baseline()
    started = time.monotonic()
    with echo_server(kind, api, tmp_path, certs, backlog=clients) as port:
        endpoint = client_for(kind, port, certs, timeout=120)
        # Connect in waves of 100 so that the accept queue never overflows into
        # SYN retransmits (a second each), which would only make the test slower.
        opening = Pool(100)
        streams = [s for s in opening.imap_unordered(lambda _: endpoint.open(), range(clients))]
        try:
            deadline = time.monotonic() + 60
            while port.handler_count < clients and time.monotonic() < deadline:
                gevent.sleep(0.01)
            held = port.handler_count
            assert held == clients, f"the server holds {held} of {clients} connections"
            fds_held = len(open_fds())
            exchanges = [gevent.spawn(echo_exchange, s, size, 16 * KiB) for s in streams]
            gevent.joinall(exchanges, raise_error=True)
            verified = sum(g.value for g in exchanges)
        finally:
            for stream in streams:
                stream.close()
    elapsed = time.monotonic() - started
    figures = baseline.check(f"{kind} {api} echo")
    assert verified == clients * size
    record(
        "concurrent_echo",
        kind=kind,
        api=api,
        connections_held=held,
        fds_while_held=fds_held,
        bytes_verified=verified,
        seconds=round(elapsed, 2),
        **figures,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_echo_small(kind, api, tmp_path, certs):
    concurrent_echo(kind, api, SMALL["clients"], SMALL["size"], tmp_path, certs)


@pytest.mark.load
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_echo_full(kind, api, tmp_path, certs):
    concurrent_echo(kind, api, FULL["clients"], FULL["size"], tmp_path, certs)


# -- sequential connects -----------------------------------------------------------------


class Places:
    """Loopback places to connect to: serving, refusing, black-holed. Closed at the end."""

    def __init__(self):
        self.sockets = []
        self.ports = []

    def serving(self, host):
        family = AF_INET6 if ":" in host else AF_INET
        endpoint = TCP4ServerEndpoint(0, interface=host, backlog=128)
        if family == AF_INET6:
            from greenpoint import TCP6ServerEndpoint

            endpoint = TCP6ServerEndpoint(0, interface=host, ipv6only=True, backlog=128)

        def answer(stream, address):
            stream.sendall(b"!")

        port = endpoint.serve(answer)
        self.ports.append(port)
        return port.get_host().port

    def refusing(self, host):
        family = AF_INET6 if ":" in host else AF_INET
        sock = stdsocket.socket(family, stdsocket.SOCK_STREAM)
        self.sockets.append(sock)
        sock.bind((host, 0))  # bound, never listening: connects are refused
        return sock.getsockname()[1]

    def black_hole(self, host):
        family = AF_INET6 if ":" in host else AF_INET
        server = stdsocket.socket(family, stdsocket.SOCK_STREAM)
        self.sockets.append(server)
        server.bind((host, 0))
        server.listen(0)
        address = server.getsockname()
        for _ in range(2):  # the first fills the accept queue; later SYNs are dropped
            filler = stdsocket.socket(family, stdsocket.SOCK_STREAM)
            self.sockets.append(filler)
            filler.setblocking(False)
            filler.connect_ex(address)
        return address[1]

    def close(self):
        for port in self.ports:
            port.stop_listening(timeout=0)
        for sock in self.sockets:
            sock.close()


def ipv6_loopback():
    try:
        with stdsocket.socket(AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class Waiting(Protocol):
    pass


class Cancelling(ClientFactory):
    """Calls ``stopConnecting()`` from another greenlet shortly after connecting starts."""

    protocol = Waiting
    noisy = False

    def startedConnecting(self, connector):
        gevent.spawn_later(0.002, connector.stopConnecting)


def sequential_connects(total):
    baseline = Baseline()
    places = Places()
    counts = dict.fromkeys(
        ["success", "refused", "black_hole", "killed", "stop_connecting", "race"], 0
    )
    started = time.monotonic()
    try:
        v4_serving = places.serving("127.0.0.1")
        v4_refusing = places.refusing("127.0.0.1")
        v4_hole = places.black_hole("127.0.0.1")
        have_v6 = ipv6_loopback()
        race_endpoints = []
        if have_v6:
            for v6 in (places.black_hole("::1"), places.refusing("::1")):
                resolver = FakeResolver()
                resolver.add("example.test", AF_INET6, [("::1", v6)])
                resolver.add("example.test", AF_INET, [("127.0.0.1", v4_serving)])
                race_endpoints.append(
                    HostnameEndpoint(
                        "example.test", 9, timeout=5, attempt_delay=0.01, resolver=resolver
                    )
                )
        races = itertools.cycle(race_endpoints)
        good = TCP4ClientEndpoint("127.0.0.1", v4_serving, timeout=5)
        refused = TCP4ClientEndpoint("127.0.0.1", v4_refusing, timeout=5)
        hole = TCP4ClientEndpoint("127.0.0.1", v4_hole, timeout=0.01)
        hanging = TCP4ClientEndpoint("127.0.0.1", v4_hole, timeout=30)
        kinds = ["success", "refused", "black_hole", "killed", "stop_connecting"]
        if have_v6:
            kinds.append("race")
        for i in range(total):
            kind = kinds[i % len(kinds)]
            if kind == "success":
                with good.open() as stream:
                    assert stream.recv(1) == b"!"
            elif kind == "refused":
                with pytest.raises(ConnectRefusedError):
                    refused.open()
            elif kind == "black_hole":
                with pytest.raises(ConnectTimeoutError):
                    hole.open()
            elif kind == "killed":
                opening = gevent.spawn(hanging.open)
                gevent.sleep(0.001 * (1 + i % 3))  # the behaviour: killed at varied moments
                opening.kill(timeout=5)
                assert opening.dead and isinstance(opening.value, gevent.GreenletExit)
            elif kind == "stop_connecting":
                with pytest.raises(ConnectCancelledError):
                    hanging.connect(Cancelling())
            else:
                with next(races).open() as stream:
                    assert stream.family == AF_INET
                    assert stream.recv(1) == b"!"
            counts[kind] += 1
    finally:
        places.close()
    elapsed = time.monotonic() - started
    figures = baseline.check("sequential connects")
    assert sum(counts.values()) == total
    record("sequential_connects", total=total, seconds=round(elapsed, 2), **counts, **figures)


@pytest.mark.timeout(120)
def test_sequential_connects_small():
    sequential_connects(SMALL["connects"])


@pytest.mark.load
@pytest.mark.timeout(1200)
def test_sequential_connects_full():
    sequential_connects(FULL["connects"])


def test_a_leftover_greenlet_or_descriptor_is_caught():
    # The checker itself can fail: a greenlet still running and a socket still open.
    baseline = Baseline()
    sleeper = gevent.spawn(gevent.sleep, 30)
    sock = gsocket.socket()
    try:
        with pytest.raises(AssertionError, match="descriptors left open"):
            baseline.check("leak", wait=0.1)
        sock.close()
        with pytest.raises(AssertionError, match="greenlets left running"):
            baseline.check("leak", wait=0.1)
    finally:
        sock.close()
        sleeper.kill()
    baseline.check("after cleanup")
