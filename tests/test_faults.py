"""Faults: misbehaving peers never block other connections nor stop the server.

Each test runs good clients next to the faulty ones (every good exchange is checked
by SHA-256), then checks that the server still serves a new client and that the
process is back to its descriptor and greenlet baseline.

Covered elsewhere (not repeated here): a real ``EMFILE`` in a low-``RLIMIT_NOFILE``
child (``test_serve.py::test_real_emfile_in_a_low_rlimit_process``), a streaming
producer paused and resumed over TCP
(``test_transport.py::test_streaming_producer_pauses_when_peer_stops_reading_and_resumes_after``),
a TLS client that sends nothing (``test_tls.py::test_silent_client_does_not_block_a_second_one``)
and a PROXY client that sends nothing
(``test_haproxy.py::test_silent_client_is_closed_at_the_deadline_without_holding_up_others``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket as stdsocket
import struct
import time

import gevent
import pytest
from _reliability_helpers import (
    APIS,
    KINDS,
    Baseline,
    KiB,
    MiB,
    client_for,
    echo_exchange,
    echo_server,
    random_chunks,
    record,
)
from _tls_helpers import make_certs
from _wait_helpers import wait_until
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint import (
    Factory,
    IPv4Address,
    Protocol,
    encode_proxy_header,
    server_from_string,
)
from greenpoint._description import quote_string_argument as q

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("fault-certs"))


def good_clients(endpoint, count=8, size=256 * KiB):
    """``count`` clients echoing ``size`` bytes each, running in the background."""

    def one():
        with endpoint.open() as stream:
            return echo_exchange(stream, size)

    return [gevent.spawn(one) for _ in range(count)]


def all_verified(greenlets, count=8, size=256 * KiB, timeout=30):
    gevent.joinall(greenlets, timeout=timeout, raise_error=True)
    assert [g.value for g in greenlets] == [size] * count


def still_serving(endpoint):
    """A new client gets a full echo: the server is alive and accepting."""
    with endpoint.open(timeout=5) as stream:
        assert echo_exchange(stream, 64 * KiB) == 64 * KiB


def reset(stream):
    """Close ``stream`` abortively: a TCP RST (SO_LINGER 0), no TLS close_notify.

    Over a UNIX socket there is no RST; closing with unread data is the same fault
    there (the peer's next read fails with ECONNRESET).
    """
    connection = getattr(stream, "connection", None)
    if connection is not None:
        from OpenSSL import SSL

        connection.set_shutdown(SSL.SENT_SHUTDOWN)  # as if sent: close() stays silent
    if stream.family != stdsocket.AF_UNIX:
        stream.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.close()


# -- peer resets mid-stream -------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_peers_resetting_mid_stream_disturb_nobody(kind, api, tmp_path, certs, caplog):
    caplog.set_level(logging.INFO)
    baseline = Baseline()
    resets = 0
    with echo_server(kind, api, tmp_path, certs) as port:
        endpoint = client_for(kind, port, certs)
        good = good_clients(endpoint)
        for _ in range(8):
            stream = endpoint.open()
            stream.sendall(os.urandom(200 * KiB))  # more than comes back before the reset
            assert stream.recv(KiB)  # the server is mid-echo
            reset(stream)
            resets += 1
        all_verified(good)
        still_serving(endpoint)
        wait_until(lambda: port.handler_count == 0, what="every reset connection to close")
    baseline.check("resets")
    # A reset is the peer's doing, not a server bug: no tracebacks in the log.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    record("fault_reset", kind=kind, api=api, faults=resets)


# -- peer that stops reading ---------------------------------------------------------------


class Streamer(Protocol):
    """A streaming producer: writes 64 KiB chunks while not paused, ``total`` in all."""

    total = 64 * MiB
    chunk = 64 * KiB

    def connectionMade(self):
        self.factory.connections.append(self)
        self.resumed = Event()
        self.resumed.set()
        self.paused_count = 0
        self.sent = 0
        self.digest = hashlib.sha256()
        self.max_buffered = 0
        self.transport.registerProducer(self, True)
        self.greenlet = gevent.spawn(self.produce)

    def pauseProducing(self):
        self.paused_count += 1
        self.resumed.clear()

    def resumeProducing(self):
        self.resumed.set()

    def stopProducing(self):
        self.resumed.set()

    def produce(self):
        transport = self.transport
        for piece in random_chunks(self.total, self.chunk):
            self.resumed.wait()
            if transport.disconnected:
                return
            self.digest.update(piece)
            transport.write(piece)
            self.sent += len(piece)
            self.max_buffered = max(self.max_buffered, transport.get_write_buffer_size())
        transport.unregisterProducer()
        transport.loseConnection()


@pytest.mark.parametrize("kind", KINDS)
def test_producer_to_a_peer_that_stops_reading_is_bounded(kind, tmp_path, certs):
    baseline = Baseline()
    with echo_server(kind, "listen", tmp_path, certs, handler=Streamer) as port:
        connections = port.handler.factory.connections = []
        stream = client_for(kind, port, certs).open()
        try:
            wait_until(lambda: connections, timeout=10, what="the connection")
            (protocol,) = connections
            # The peer reads nothing: once the kernel's buffers are full the producer
            # is paused and stays paused.
            previous = -1
            while protocol.sent != previous:
                previous = protocol.sent
                gevent.sleep(0.3)  # the sleep is the check: no progress in 0.3 s is a stall
            sent_when_paused = protocol.sent
            assert protocol.transport.producerPaused
            assert sent_when_paused < 32 * MiB
            buffered = protocol.transport.get_write_buffer_size()
            high = protocol.transport.write_high_water
            assert buffered <= high + Streamer.chunk
            assert protocol.max_buffered <= high + Streamer.chunk
            # Now read it all: nothing was lost, in order.
            received = hashlib.sha256()
            count = 0
            while data := stream.recv(64 * KiB):
                received.update(data)
                count += len(data)
        finally:
            stream.close()
        protocol.greenlet.join(10)
    assert count == Streamer.total
    assert received.digest() == protocol.digest.digest()
    baseline.check("stalled reader, listen()")
    record(
        "fault_stalled_reader_listen",
        kind=kind,
        sent_when_paused=sent_when_paused,
        max_buffered=protocol.max_buffered,
        high_water=high,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_handler_writing_to_a_peer_that_stops_reading_blocks(kind, tmp_path, certs):
    baseline = Baseline()
    total = 64 * MiB
    progress = {"sent": 0}
    digest = hashlib.sha256()
    floods = []

    def flood(stream, address):
        floods.append(address)
        if len(floods) > 1:  # the second client only checks that we still answer
            stream.sendall(b"!")
            return
        for piece in random_chunks(total):
            digest.update(piece)
            stream.sendall(piece)  # blocks this handler, and only it, when the peer stalls
            progress["sent"] += len(piece)

    with echo_server(kind, "serve", tmp_path, certs, handler=flood) as port:
        endpoint = client_for(kind, port, certs)
        stream = endpoint.open()
        try:
            previous = -1
            while progress["sent"] != previous:  # until the handler stops advancing
                previous = progress["sent"]
                gevent.sleep(0.2)  # the sleep is the check: no progress in 0.2 s is a stall
            stalled_at = progress["sent"]
            assert stalled_at < 32 * MiB  # the kernel's buffers, not our memory, hold it
            still_serving_other = client_for(kind, port, certs)  # others are not held up
            with still_serving_other.open(timeout=5) as other:
                other.sendall(b"x")
                assert other.recv(1)  # the flood handler answers everyone
            received = hashlib.sha256()
            count = 0
            while data := stream.recv(256 * KiB):
                received.update(data)
                count += len(data)
                if count >= total:
                    break
        finally:
            stream.close()
    assert count == total
    assert received.digest() == digest.digest()
    baseline.check("stalled reader, serve()")
    record("fault_stalled_reader_serve", kind=kind, handler_blocked_after=stalled_at)


# -- half-close --------------------------------------------------------------------------


def collect_then_answer(stream, address):
    """Read until the peer half-closes, then send everything back."""
    parts = []
    while data := stream.recv(64 * KiB):
        parts.append(data)
    stream.sendall(b"".join(parts))


class CollectThenAnswer(Protocol):
    def connectionMade(self):
        self.parts = []

    def dataReceived(self, data):
        self.parts.append(data)

    def readConnectionLost(self):
        self.transport.write(b"".join(self.parts))
        self.transport.loseConnection()


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_peer_half_close_still_gets_the_whole_answer(kind, api, tmp_path, certs):
    baseline = Baseline()
    handler = collect_then_answer if api == "serve" else CollectThenAnswer
    size = 2 * MiB
    with echo_server(kind, api, tmp_path, certs, handler=handler) as port:
        endpoint = client_for(kind, port, certs)

        def one():
            with endpoint.open() as stream:
                return echo_exchange(stream, size)  # sends all, half-closes, reads back

        results = [gevent.spawn(one) for _ in range(4)]
        gevent.joinall(results, timeout=30, raise_error=True)
        assert [g.value for g in results] == [size] * 4
    baseline.check("half-close")


# -- the listener goes away while handlers run -------------------------------------------


def slow_echo(stream, address):
    while data := stream.recv(16 * KiB):
        gevent.sleep(0.005)  # the sleep is the behaviour: a slow handler
        stream.sendall(data)


@pytest.mark.parametrize("how", ["stop_listening", "closed_under_the_port"])
@pytest.mark.parametrize("kind", KINDS)
def test_listener_closed_while_handlers_run_lets_them_finish(kind, how, tmp_path, certs):
    baseline = Baseline()
    with echo_server(kind, "serve", tmp_path, certs, handler=slow_echo) as port:
        endpoint = client_for(kind, port, certs)
        streams = [endpoint.open() for _ in range(6)]
        wait_until(lambda: port.handler_count == 6)
        running = [gevent.spawn(echo_exchange, s, 512 * KiB, 16 * KiB) for s in streams]
        gevent.idle()  # every greenlet has run: every exchange is under way
        if how == "stop_listening":
            stopping = gevent.spawn(port.stop_listening, 30)  # a graceful drain
            wait_until(lambda: port.closing)  # set as the listener is closed
        else:
            port.listener.close()  # as if its descriptor vanished: accept() fails for good
            stopping = None
        with pytest.raises(OSError):  # new clients are refused at once
            client_for(kind, port, certs, timeout=2).open()
        gevent.joinall(running, timeout=30, raise_error=True)
        assert [g.value for g in running] == [512 * KiB] * 6
        for stream in streams:
            stream.close()
        if stopping is not None:
            stopping.get(timeout=10)
        else:
            with pytest.raises(OSError), gevent.Timeout(10):
                port.serve_forever()  # the port stopped itself after the handlers ended
    baseline.check("listener closed")


# -- TLS client that stalls mid-handshake -----------------------------------------------


def client_hello():
    """The first flight of a real TLS client: a ClientHello record."""
    from OpenSSL import SSL

    connection = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    connection.set_connect_state()
    connection.set_tlsext_host_name(b"localhost")
    with pytest.raises(SSL.WantReadError):
        connection.do_handshake()
    return connection.bio_read(65536)


@pytest.mark.parametrize("api", APIS)
def test_tls_client_stalling_mid_handshake_holds_up_nobody(api, certs, caplog):
    caplog.set_level(logging.INFO)
    baseline = Baseline()
    description = f"ssl:0:interface=127.0.0.1:privateKey={q(certs.server_pem)}:handshakeTimeout=0.5"
    endpoint = server_from_string(description)
    if api == "serve":
        from _reliability_helpers import echo_handler

        port = endpoint.serve(echo_handler)
    else:
        from _reliability_helpers import EchoProtocol

        port = endpoint.listen(Factory.forProtocol(EchoProtocol))
    hello = client_hello()
    stalled = []
    try:
        for _ in range(3):
            sock = gsocket.create_connection(("127.0.0.1", port.get_host().port))
            sock.sendall(hello[: len(hello) // 2])  # half a ClientHello, then nothing
            stalled.append(sock)
        started = time.monotonic()
        good = good_clients(client_for("tls", port, certs), count=6, size=128 * KiB)
        all_verified(good, count=6, size=128 * KiB)
        assert time.monotonic() - started < 5
        for sock in stalled:  # the server gives up on them at the handshake timeout
            sock.settimeout(5)
            assert sock.recv(100) == b""
        assert time.monotonic() - started < 5
        still_serving(client_for("tls", port, certs))
    finally:
        for sock in stalled:
            sock.close()
        port.stop_listening(timeout=5)
    baseline.check("stalled handshakes")
    assert "timed out" in caplog.text
    record("fault_tls_stalled_handshake", api=api, faults=len(stalled))


# -- PROXY client that sends half a header ---------------------------------------------


def test_proxy_client_sending_half_a_header_holds_up_nobody(caplog):
    caplog.set_level(logging.INFO)
    baseline = Baseline()
    seen = []

    def handler(stream, address):
        seen.append(address)
        while data := stream.recv(64 * KiB):
            stream.sendall(data)

    # A deadline (2 s) a loaded machine serves the whole ones well within, so "held up
    # by nobody" is an order: they were served while the half headers still waited.
    port = server_from_string("haproxy:timeout=2:tcp:0:interface=127.0.0.1").serve(handler)
    client = IPv4Address("192.0.2.1", 4321)
    server = IPv4Address("192.0.2.2", 80)
    halves = [
        encode_proxy_header(client, server, version=1)[:20],
        encode_proxy_header(client, server, version=2)[:20],
        encode_proxy_header(client, server, version=2)[:10],  # not even the signature
    ]
    stalled = []
    try:
        for half in halves:
            sock = gsocket.create_connection(("127.0.0.1", port.get_host().port))
            sock.sendall(half)
            stalled.append(sock)
        for version in (1, 2):
            with gsocket.create_connection(("127.0.0.1", port.get_host().port)) as sock:
                sock.sendall(encode_proxy_header(client, server, version=version) + b"hello")
                assert sock.recv(100) == b"hello"
        for sock in stalled:  # not closed yet: the whole ones did not wait for them
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(100)
        for sock in stalled:
            sock.settimeout(5)
            assert sock.recv(100) == b""  # closed at the header deadline
        assert seen == [client, client]
    finally:
        for sock in stalled:
            sock.close()
        port.stop_listening(timeout=5)
    baseline.check("half PROXY headers")
    assert "no complete PROXY header within 2 s" in caplog.text
    record("fault_proxy_half_header", faults=len(halves))


# -- a reset while one greenlet reads and another writes ---------------------------------


def test_tls_reset_under_full_duplex_is_an_os_error_for_reader_and_writer(certs):
    # The peer resets (SO_LINGER 0, no close_notify) while the client has a reader
    # and a writer greenlet on one stream. OpenSSL's error queue is shared by every
    # greenlet of the thread: the one that fails second used to get an empty
    # TLSError("TLS error: []") instead of the reset.
    from greenpoint.errors import TLSError
    from greenpoint.tls import (
        ServerTLSOptions,
        options_for_client_tls,
        wrap_client_stream,
        wrap_server_stream,
    )

    server_options = ServerTLSOptions(certs.server_pem)
    client_options = options_for_client_tls("localhost", trust_root=certs.ca_file)
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve_then_reset(raw):
        stream = wrap_server_stream(raw, server_options, 10)
        received = 0
        while received < 256 * KiB:  # echo a while, then reset mid-stream
            data = stream.recv(64 * KiB)
            received += len(data)
            stream.sendall(data)
        reset(stream)

    def client():
        raw = gsocket.create_connection(listener.getsockname(), timeout=10)
        stream = wrap_client_stream(raw, client_options, timeout=10)
        raw.settimeout(None)

        def read():
            while stream.recv(64 * KiB):
                pass

        def write():
            chunk = os.urandom(16 * KiB)
            while True:
                stream.sendall(chunk)

        reader, writer = gevent.spawn(read), gevent.spawn(write)
        gevent.joinall([reader, writer], timeout=20)
        stream.close()
        return reader.exception, writer.exception

    try:
        clients = [gevent.spawn(client) for _ in range(5)]
        servers = [gevent.spawn(serve_then_reset, listener.accept()[0]) for _ in range(5)]
        gevent.joinall(servers + clients, timeout=30, raise_error=True)
    finally:
        listener.close()
    for reader_error, writer_error in (g.value for g in clients):
        assert isinstance(writer_error, (ConnectionResetError, BrokenPipeError)), writer_error
        assert not isinstance(writer_error, TLSError)
        # The reader either sees the reset or, when the writer met it first, the end.
        assert reader_error is None or (
            isinstance(reader_error, (ConnectionResetError, BrokenPipeError))
            and not isinstance(reader_error, TLSError)
        ), reader_error
