"""Soak: a bounded run of mixed traffic and faults, with a memory ceiling.

Workers pick actions at random until the time is up: echo exchanges of random sizes
over TCP, UNIX and TLS (``serve()`` and ``listen()``) and through a PROXY-protocol
listener, each verified by SHA-256; peers that reset mid-stream; refused connects;
black holes with short timeouts; garbage instead of a ClientHello; half PROXY headers.
Resident memory is sampled all along: after a warm-up it may not keep growing, and it
never passes a ceiling. At the end, descriptors and greenlets are back to baseline.

``make soak`` runs it for 60 seconds; ``make test`` runs the same code for 3.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket as stdsocket
import time

import gevent
import pytest
from _reliability_helpers import (
    Baseline,
    KiB,
    MiB,
    client_for,
    echo_exchange,
    echo_handler,
    echo_server,
    record,
    rss_bytes,
)
from _tls_helpers import make_certs
from gevent import socket as gsocket

from greenpoint import (
    ConnectRefusedError,
    ConnectTimeoutError,
    IPv4Address,
    TCP4ClientEndpoint,
    encode_proxy_header,
    server_from_string,
)

WORKERS = 16
GROWTH_LIMIT = 48 * MiB  # after warm-up: allocator noise, not a leak
CEILING = 512 * MiB


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("soak-certs"))


class Traffic:
    """The servers and places a soak run talks to, and what it did."""

    def __init__(self, tmp_path, certs, stack):
        self.certs = certs
        self.echo = {}
        for kind in ("tcp", "unix", "tls"):
            for api in ("serve", "listen"):
                folder = tmp_path / f"{kind}-{api}"
                folder.mkdir()
                port = stack.enter_context(echo_server(kind, api, folder, certs, backlog=128))
                self.echo[kind, api] = client_for(kind, port, certs, timeout=10)
        self.proxied = server_from_string(
            "haproxy:timeout=0.3:tcp:0:interface=127.0.0.1:backlog=128"
        ).serve(echo_handler)
        stack.callback(self.proxied.stop_listening, 5)
        self.tls_port = self.echo["tls", "serve"].endpoint.port
        refusing = stdsocket.socket()
        stack.callback(refusing.close)
        refusing.bind(("127.0.0.1", 0))
        self.refused = TCP4ClientEndpoint("127.0.0.1", refusing.getsockname()[1])
        hole = stdsocket.socket()
        stack.callback(hole.close)
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        for _ in range(2):
            filler = stdsocket.socket()
            stack.callback(filler.close)
            filler.setblocking(False)
            filler.connect_ex(hole.getsockname())
        self.black_hole = TCP4ClientEndpoint("127.0.0.1", hole.getsockname()[1], timeout=0.02)
        self.counts = {}
        self.bytes_verified = 0

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    # -- actions -------------------------------------------------------------------

    def echo_exchange(self, rng):
        kind, api = rng.choice(list(self.echo))
        size = rng.choice([1, 4 * KiB, 64 * KiB, 256 * KiB])
        with self.echo[kind, api].open() as stream:
            self.bytes_verified += echo_exchange(stream, size)
        self.count(f"echo_{kind}_{api}")

    def proxied_echo(self, rng):
        port = self.proxied.get_host().port
        client = IPv4Address("192.0.2.9", rng.randrange(1, 65536))
        header = encode_proxy_header(
            client, IPv4Address("192.0.2.10", 80), version=rng.choice([1, 2])
        )
        with gsocket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(header)
            self.bytes_verified += echo_exchange(sock, rng.choice([1, 16 * KiB]))
        self.count("proxied_echo")

    def reset_mid_stream(self, rng):
        kind, api = rng.choice(list(self.echo))
        stream = self.echo[kind, api].open()
        stream.sendall(os.urandom(128 * KiB))
        stream.recv(KiB)
        connection = getattr(stream, "connection", None)
        if connection is not None:
            from OpenSSL import SSL

            connection.set_shutdown(SSL.SENT_SHUTDOWN)
        if kind != "unix":
            stream.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        stream.close()
        self.count("reset")

    def refused_connect(self, rng):
        with pytest.raises(ConnectRefusedError):
            self.refused.open()
        self.count("refused")

    def black_hole(self, rng):
        with pytest.raises(ConnectTimeoutError):
            self.black_hole.open()
        self.count("black_hole")

    def tls_garbage(self, rng):
        with gsocket.create_connection(("127.0.0.1", self.tls_port)) as sock:
            sock.sendall(os.urandom(rng.randrange(1, 600)))
            # And no more: random bytes can read as the start of a longer record (an
            # SSLv2-style hello announces up to 32 KiB), which a server rightly awaits
            # until its handshake timeout; a stalled handshake is tested in test_faults.
            sock.shutdown(stdsocket.SHUT_WR)
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(4096):
                    pass
        self.count("tls_garbage")

    def half_proxy_header(self, rng):
        header = encode_proxy_header(IPv4Address("192.0.2.9", 1), IPv4Address("192.0.2.10", 2))
        with gsocket.create_connection(("127.0.0.1", self.proxied.get_host().port)) as sock:
            sock.sendall(header[: rng.randrange(1, len(header))])
            sock.settimeout(5)
            assert sock.recv(100) == b""  # closed at the 0.3 s header deadline
        self.count("half_proxy_header")

    ACTIONS = [
        (echo_exchange, 10),
        (proxied_echo, 2),
        (reset_mid_stream, 2),
        (refused_connect, 2),
        (black_hole, 2),
        (tls_garbage, 1),
        (half_proxy_header, 1),
    ]


def soak(seconds, tmp_path, certs):
    baseline = Baseline()
    samples = []
    started = time.monotonic()
    deadline = started + seconds
    with contextlib.ExitStack() as stack:
        traffic = Traffic(tmp_path, certs, stack)
        actions = [action for action, weight in Traffic.ACTIONS for _ in range(weight)]

        def worker(seed):
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                rng.choice(actions)(traffic, rng)

        def sampler():
            while True:
                samples.append((time.monotonic() - started, rss_bytes()))
                gevent.sleep(0.25)  # the behaviour: a sample every 0.25 s

        watching = gevent.spawn(sampler)
        workers = [gevent.spawn(worker, seed) for seed in range(WORKERS)]
        try:
            gevent.joinall(workers, timeout=seconds + 60, raise_error=True)
            assert all(w.dead for w in workers), "a worker is stuck"
        finally:
            gevent.killall(workers)
            watching.kill()
    elapsed = time.monotonic() - started
    figures = baseline.check("soak")
    warm = [rss for at, rss in samples if at >= seconds / 3]
    growth = max(warm) - warm[0]
    peak = max(rss for _, rss in samples)
    assert peak < CEILING, f"resident memory reached {peak / MiB:.0f} MiB"
    assert growth < GROWTH_LIMIT, f"memory grew {growth / MiB:.0f} MiB after warm-up"
    record(
        "soak",
        seconds=round(elapsed, 1),
        actions=sum(traffic.counts.values()),
        bytes_verified=traffic.bytes_verified,
        rss_after_warmup_mib=round(warm[0] / MiB, 1),
        rss_peak_mib=round(peak / MiB, 1),
        rss_growth_mib=round(growth / MiB, 1),
        **traffic.counts,
        **figures,
    )
    return traffic


@pytest.mark.timeout(60)
def test_short_soak(tmp_path, certs):
    traffic = soak(3, tmp_path, certs)
    assert traffic.counts.get("reset") and traffic.bytes_verified


@pytest.mark.soak
@pytest.mark.timeout(300)
def test_soak_60_seconds(tmp_path, certs):
    traffic = soak(60, tmp_path, certs)
    assert len(traffic.counts) == len(Traffic.ACTIONS) - 1 + 6  # every action, every echo
