"""TLS with the rest of greenpoint: serving, protocols, happy eyeballs, PROXY, processes.

Everything here uses the real modules end to end, over loopback, with trustme
certificates; OpenSSL's own command-line tools are used where the test is about
interoperating with another TLS implementation (Debian package ``openssl``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket as _stdsocket
import sys
import time

import gevent
import pytest
from _net_helpers import read_all
from _protocol_helpers import Recorder, RecordingFactory
from _tls_helpers import LOOPBACK, echo, expired, make_certs, not_yet_valid
from _wait_helpers import wait_until
from cryptography import x509
from gevent import socket as gsocket
from gevent import subprocess as gsubprocess
from OpenSSL import SSL, crypto

from greenpoint import (
    ConnectionDone,
    Factory,
    HostnameEndpoint,
    IPv4Address,
    ProcessEndpoint,
    ProcessTerminated,
    Protocol,
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    client_from_string,
    quote_string_argument,
    server_from_string,
    wrap_client_tls,
)
from greenpoint._address import PipeAddress
from greenpoint._hostnames import BindAddress
from greenpoint.endpoints.haproxy import wrap_haproxy_client
from greenpoint.endpoints.tcp import TCP4ServerEndpoint, TCP6ServerEndpoint
from greenpoint.errors import DescriptionError, TLSError, TLSVerificationError
from greenpoint.testing import FakeResolver
from greenpoint.tls import TLSStream, options_for_client_tls

pytestmark = pytest.mark.timeout(30)

q = quote_string_argument
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1024 * 1024
needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command (Debian package openssl)"
)


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


@pytest.fixture
def split_pem(certs):
    """``(key file, certificate file)`` for localhost, as separate files."""
    cert = certs.ca.issue_cert("localhost", "127.0.0.1", "::1")
    key_file = os.path.join(certs.directory, "key.pem")
    cert_file = os.path.join(certs.directory, "cert.pem")
    cert.private_key_pem.write_to_path(key_file)
    cert.cert_chain_pems[0].write_to_path(cert_file)
    return key_file, cert_file


@pytest.fixture
def sites(certs, tmp_path_factory):
    """A ``tls:`` PEM directory serving localhost (and its addresses)."""
    directory = tmp_path_factory.mktemp("sites")
    certs.ca.issue_cert(
        "localhost", "127.0.0.1", "::1"
    ).private_key_and_cert_chain_pem.write_to_path(str(directory / "localhost.pem"))
    return str(directory)


@pytest.fixture
def client_options(certs):
    return options_for_client_tls("localhost", trust_root=certs.ca_file)


def ssl_server(certs, extra=""):
    return f"ssl:0:interface=127.0.0.1:privateKey={q(certs.server_pem)}{extra}"


# -- serve(): handshakes in the connection greenlets ---------------------------


def test_serve_ssl_silent_client_does_not_delay_a_second_one(certs, split_pem, client_options):
    key_file, cert_file = split_pem
    description = f"ssl:0:interface=127.0.0.1:privateKey={q(key_file)}:certKey={q(cert_file)}"
    with server_from_string(description).serve(echo) as port:
        silent = gsocket.create_connection((LOOPBACK, port.get_host().port))
        try:
            # The silent client is accepted and waiting for its hello.
            wait_until(lambda: port.handler_count == 1, what="the silent client's handler")
            started = time.monotonic()
            endpoint = SSL4ClientEndpoint(LOOPBACK, port.get_host().port, client_options)
            with endpoint.open(timeout=10) as stream:
                stream.sendall(b"second")
                assert stream.recv(100) == b"second"
            assert time.monotonic() - started < 10  # not the silent one's 30 s timeout
            # The silent one is still waiting for its handshake, not refused.
            assert port.handler_count >= 1
        finally:
            silent.close()


def _records_about(caplog, port_number):
    return [record for record in caplog.records if f":{port_number}" in record.getMessage()]


def test_serve_ssl_logs_handshake_failures_quietly_and_keeps_serving(
    certs, client_options, tmp_path_factory, caplog
):
    caplog.set_level(logging.DEBUG)
    with server_from_string(ssl_server(certs)).serve(echo) as port:
        server_port = port.get_host().port
        # 1. Bytes that are not a ClientHello.
        garbage = gsocket.create_connection((LOOPBACK, server_port))
        garbage_port = garbage.getsockname()[1]
        with garbage:
            garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")
            garbage.settimeout(5)
            try:
                read_all(garbage)  # the server gives up and closes...
            except ConnectionResetError:
                pass  # ...with the rest of our request unread: a reset
        # 2. A client that does not trust the server's certificate.
        other_ca = make_certs(tmp_path_factory.mktemp("other")).ca_file
        distrustful = SSL4ClientEndpoint(
            LOOPBACK,
            server_port,
            options_for_client_tls("localhost", trust_root=other_ca),
            bind_address=(LOOPBACK, 0),
        )
        with pytest.raises(TLSVerificationError, match="untrusted issuer"):
            distrustful.open(timeout=5)
        # 3. The server still serves.
        with SSL4ClientEndpoint(LOOPBACK, server_port, client_options).open(timeout=5) as stream:
            stream.sendall(b"still here")
            assert stream.recv(100) == b"still here"
        wait_until(lambda: _records_about(caplog, garbage_port), what="the garbage client's log")
    assert port.handler_count == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    about_garbage = _records_about(caplog, garbage_port)
    failures = [r for r in caplog.records if "handshake" in r.getMessage()]
    assert about_garbage and len(failures) >= 2  # the garbage client and the distrustful one
    for record in failures:
        assert record.levelno in (logging.INFO, logging.WARNING), record
        assert record.exc_info is None, "a handshake failure is not worth a traceback"
        assert "\n" not in record.getMessage()


# -- the protocol layer over TLS streams ---------------------------------------


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


SERVER_KINDS = ["ssl", "tls"]
CLIENT_KINDS = ["ssl", "tls"]


def server_description(kind, certs, sites, extra=""):
    if kind == "ssl":
        return ssl_server(certs, extra)
    return f"tls:{q(sites)}:port=0:interface=127.0.0.1{extra}"


def client_description(kind, certs, port_number, extra=""):
    if kind == "ssl":
        return (
            f"ssl:127.0.0.1:{port_number}:hostname=localhost:caCertsDir={q(certs.ca_file)}{extra}"
        )
    return f"tls:localhost:{port_number}:trustRoots={q(certs.ca_file)}{extra}"


@pytest.mark.parametrize("server_kind", SERVER_KINDS)
@pytest.mark.parametrize("client_kind", CLIENT_KINDS)
def test_listen_and_connect_echo_with_tls_details(certs, sites, server_kind, client_kind):
    server = RecordingFactory(Echo)
    description = server_description(server_kind, certs, sites, ":alpn=h2,http/1.1")
    with server_from_string(description).listen(server) as port:
        endpoint = client_from_string(
            client_description(client_kind, certs, port.get_host().port, ":alpn=h2")
        )
        client = endpoint.connect(Factory.forProtocol(Recorder), timeout=5)
        client.transport.write(b"ping over TLS")
        wait_until(lambda: bytes(client.received) == b"ping over TLS")
        (served,) = server.built
        # Addresses: the server's protocol sees the client's TCP address.
        assert served.addr == client.transport.getHost()
        assert served.transport.getPeer() == client.transport.getHost()
        assert client.transport.getPeer() == IPv4Address(LOOPBACK, port.get_host().port)
        # TLS details pass through the transport with Twisted's types.
        certificate = client.transport.getPeerCertificate()
        assert isinstance(certificate, crypto.X509)
        names = certificate.to_cryptography().extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        assert "localhost" in names.value.get_values_for_type(x509.DNSName)
        assert client.transport.negotiatedProtocol == b"h2"
        assert served.transport.negotiatedProtocol == b"h2"
        assert served.transport.getPeerCertificate() is None  # no client certificate
        assert isinstance(client.transport.getHandle(), TLSStream)
        client.transport.loseConnection()
        assert client.closed.wait(5)
        assert isinstance(client.reason, ConnectionDone)
        # Our own address, never asked for while open, is still known after the close.
        assert served.transport.wait_closed(5)
        assert served.transport.getHost() == port.get_host()


class Sink(Recorder):
    """Server side: counts and hashes what arrives until the connection ends."""

    def __init__(self):
        super().__init__()
        self.digest = hashlib.sha256()
        self.count = 0

    def dataReceived(self, data):
        self.digest.update(data)
        self.count += len(data)


@pytest.mark.parametrize("server_kind", SERVER_KINDS)
def test_large_write_then_lose_connection_arrives_whole_both_ways(certs, sites, server_kind):
    payload = os.urandom(8 * MiB)
    expected = hashlib.sha256(payload).hexdigest()

    class Uploader(Protocol):
        def connectionMade(self):
            self.transport.write(payload)
            self.transport.loseConnection()

    sinks = RecordingFactory(Sink)
    with server_from_string(server_description(server_kind, certs, sites)).listen(sinks) as port:
        # Client to server: 8 MiB written at once, then loseConnection.
        endpoint = client_from_string(client_description("ssl", certs, port.get_host().port))
        endpoint.connect(Factory.forProtocol(Uploader), timeout=5)
        wait_until(lambda: sinks.built and sinks.built[0].closed.is_set(), 20, "the upload")
        (sink,) = sinks.built
        assert sink.count == len(payload)
        assert sink.digest.hexdigest() == expected
        assert isinstance(sink.reason, ConnectionDone)

    # Server to client: the server writes 8 MiB and closes.
    uploaders = RecordingFactory(Uploader)
    with server_from_string(server_description(server_kind, certs, sites)).listen(
        uploaders
    ) as port:
        endpoint = client_from_string(client_description("tls", certs, port.get_host().port))
        sink = endpoint.connect(Factory.forProtocol(Sink), timeout=5)
        assert sink.closed.wait(20)
        assert sink.count == len(payload)
        assert sink.digest.hexdigest() == expected
        assert isinstance(sink.reason, ConnectionDone)


def test_lose_write_connection_sends_close_notify_and_the_answer_still_arrives(certs, sites):
    class Answerer(Protocol):
        """Answers once the client has finished its request (half-close)."""

        def __init__(self):
            self.request = bytearray()
            self.saw_close_notify = None

        def dataReceived(self, data):
            self.request += data

        def readConnectionLost(self):
            connection = self.transport.getHandle().connection
            self.saw_close_notify = bool(connection.get_shutdown() & SSL.RECEIVED_SHUTDOWN)
            self.transport.write(b"answer to " + bytes(self.request))
            self.transport.loseConnection()

    class Requester(Recorder):
        def connectionMade(self):
            super().connectionMade()
            self.transport.write(b"the request")
            self.transport.loseWriteConnection()

        def writeConnectionLost(self):
            self.log.append("write closed")

    answerers = RecordingFactory(Answerer)
    with server_from_string(server_description("tls", certs, sites)).listen(answerers) as port:
        endpoint = client_from_string(client_description("tls", certs, port.get_host().port))
        client = endpoint.connect(Factory.forProtocol(Requester), timeout=5)
        assert client.closed.wait(5)
    assert bytes(client.received) == b"answer to the request"
    assert client.log == [
        "connectionMade",
        "write closed",
        ("connectionLost", "ConnectionDone"),
    ]
    assert isinstance(client.reason, ConnectionDone)
    assert answerers.built[0].saw_close_notify is True


# Many small records, then silence: every byte must be delivered although no
# more data reaches the socket (OpenSSL, not the kernel, holds what is left).
RECORDS = 3000
RECORD = b"0123456;"


def send_records_then_wait(stream, address):
    for _ in range(RECORDS):
        stream.sendall(RECORD)  # one TLS record each
    stream.sendall(os.urandom(64 * 1024))  # four full-size records
    stream.recv(1)  # silence until the client hangs up


class PausingRecorder(Recorder):
    """Pauses reading after each chunk and resumes a moment later."""

    def dataReceived(self, data):
        super().dataReceived(data)
        self.transport.pauseProducing()
        gevent.spawn(self.transport.resumeProducing)  # from another greenlet, later


@pytest.mark.parametrize("protocol", [Recorder, PausingRecorder])
def test_transport_reads_everything_openssl_holds_without_waiting_for_the_socket(certs, protocol):
    expected = RECORDS * len(RECORD) + 64 * 1024
    with server_from_string(ssl_server(certs)).serve(send_records_then_wait) as port:
        endpoint = client_from_string(client_description("ssl", certs, port.get_host().port))
        client = endpoint.connect(Factory.forProtocol(protocol), timeout=5)
        wait_until(lambda: len(client.received) >= expected, 10, "every record")
        assert len(client.received) == expected
        assert bytes(client.received[: len(RECORD) * 3]) == RECORD * 3
        client.transport.loseConnection()
        assert client.closed.wait(5)


def test_small_reads_drain_a_full_record_without_new_data(certs, client_options):
    def one_record(stream, address):
        stream.sendall(b"x" * 16384)  # one full-size record
        stream.recv(1)

    with server_from_string(ssl_server(certs)).serve(one_record) as port:
        endpoint = SSL4ClientEndpoint(LOOPBACK, port.get_host().port, client_options)
        with endpoint.open(timeout=5) as stream:
            stream.settimeout(2)  # a wait on the socket would time out here
            got = bytearray()
            while len(got) < 16384:
                got += stream.recv(100)
            assert bytes(got) == b"x" * 16384


# -- tls: through the real HostnameEndpoint ------------------------------------


@pytest.fixture
def black_hole():
    """``::1`` and a port whose full accept queue drops SYNs: connect() hangs there."""
    sockets = []

    def make(host):
        server = _stdsocket.socket(_stdsocket.AF_INET6, _stdsocket.SOCK_STREAM)
        sockets.append(server)
        server.bind((host, 0))
        server.listen(0)
        address = server.getsockname()
        for _ in range(2):  # the first fills the queue; the second already hangs
            filler = _stdsocket.socket(_stdsocket.AF_INET6, _stdsocket.SOCK_STREAM)
            sockets.append(filler)
            filler.setblocking(False)
            filler.connect_ex(address)
        return address[1]

    yield make
    for sock in sockets:
        sock.close()


def test_tls_localhost_description_runs_over_happy_eyeballs(certs, sites):
    seen = []

    def handler(stream, address):
        seen.append((stream.server_name, address))
        echo(stream, address)

    with server_from_string(server_description("tls", certs, sites)).serve(handler) as port:
        endpoint = client_from_string(
            f"tls:localhost:{port.get_host().port}:trustRoots={q(certs.ca_file)}"
        )
        assert type(endpoint.endpoint) is HostnameEndpoint
        with endpoint.open(timeout=5) as stream:
            stream.sendall(b"by name")
            assert stream.recv(100) == b"by name"
            assert stream.getpeername() == (LOOPBACK, port.get_host().port)
    assert seen[0][0] == "localhost"  # SNI from the name, chosen by the SNI directory
    assert seen[0][1].host == LOOPBACK


def test_tls_over_hostname_endpoint_races_past_a_hanging_ipv6_address(
    certs, black_hole, tmp_path_factory
):
    pem = certs.issue("service.pem", "service.test")
    hanging = black_hole("::1")
    seen = []

    def handler(stream, address):
        seen.append(stream.server_name)
        echo(stream, address)

    with server_from_string(f"ssl:0:interface=127.0.0.1:privateKey={q(pem)}").serve(
        handler
    ) as port:
        resolver = FakeResolver()
        resolver.add("service.test", _stdsocket.AF_INET6, [("::1", hanging)])
        resolver.add("service.test", _stdsocket.AF_INET, [(LOOPBACK, port.get_host().port)])
        inner = HostnameEndpoint("service.test", 443, attempt_delay=0.1, resolver=resolver)
        options = options_for_client_tls("service.test", trust_root=certs.ca_file)
        started = time.monotonic()
        with wrap_client_tls(options, inner).open(timeout=5) as stream:
            stream.sendall(b"raced")
            assert stream.recv(100) == b"raced"
            assert stream.getpeername() == (LOOPBACK, port.get_host().port)
        assert time.monotonic() - started < 2
    assert seen == ["service.test"]


def test_tls_server_interfaces_dual_stack_ipv4_and_default(certs, sites):
    # The default interface "::" is a dual-stack IPv6 socket (every address, both
    # families). Tests stay on loopback, so the dual-stack path is shown with the
    # IPv4-mapped loopback address: an IPv4 client reaches the IPv6 socket and the
    # handler sees a plain IPv4 address.
    default = server_from_string(f"tls:{q(sites)}")
    assert default.endpoint == TCP6ServerEndpoint(443, interface="::")
    assert default.endpoint.ipv6only is False
    addresses = []

    def handler(stream, address):
        addresses.append(address)
        echo(stream, address)

    for interface, inner_type in [
        ("[::ffff:127.0.0.1]", TCP6ServerEndpoint),
        ("127.0.0.1", TCP4ServerEndpoint),
    ]:
        endpoint = server_from_string(f"tls:{q(sites)}:port=0:interface={interface}")
        assert type(endpoint.endpoint) is inner_type
        assert server_from_string(str(endpoint)) == endpoint
        with endpoint.serve(handler) as port:
            client = client_from_string(
                f"tls:localhost:{port.get_host().port}:trustRoots={q(certs.ca_file)}"
            )
            with client.open(timeout=5) as stream:
                stream.sendall(b"v4")
                assert stream.recv(10) == b"v4"
                assert stream.getsockname()[0] == LOOPBACK
    assert [type(address) for address in addresses] == [IPv4Address, IPv4Address]
    assert all(address.host == LOOPBACK for address in addresses)


# -- SSL4ClientEndpoint over the real TCP endpoints ----------------------------


@pytest.mark.parametrize("bind_address", [(LOOPBACK, 0), LOOPBACK, "description"])
def test_ssl4_client_bind_address(certs, client_options, bind_address):
    peers = []

    def handler(stream, address):
        peers.append(address)
        echo(stream, address)

    with server_from_string(ssl_server(certs)).serve(handler) as port:
        number = port.get_host().port
        if bind_address == "description":
            endpoint = client_from_string(
                client_description("ssl", certs, number, f":bindAddress={LOOPBACK}")
            )
            assert endpoint.bind_address == BindAddress(ipv4=LOOPBACK)
            assert client_from_string(str(endpoint)) == endpoint
        else:
            endpoint = SSL4ClientEndpoint(
                LOOPBACK, number, client_options, bind_address=bind_address
            )
        with endpoint.open(timeout=5) as stream:
            stream.sendall(b"bound")
            assert stream.recv(10) == b"bound"
            local = stream.getsockname()
    assert peers == [IPv4Address(*local)]


def test_ssl4_client_fixed_local_port_and_checks(certs, client_options):
    with server_from_string(ssl_server(certs)).serve(echo) as port:
        probe = _stdsocket.socket()
        probe.bind((LOOPBACK, 0))
        free = probe.getsockname()[1]
        probe.close()
        endpoint = SSL4ClientEndpoint(
            LOOPBACK, port.get_host().port, client_options, bind_address=(LOOPBACK, free)
        )
        with endpoint.open(timeout=5) as stream:
            assert stream.getsockname() == (LOOPBACK, free)
        # No limit at all is allowed too (the TCP half then uses its own default).
        unlimited = SSL4ClientEndpoint(LOOPBACK, port.get_host().port, client_options, timeout=None)
        with unlimited.open() as stream:
            stream.sendall(b"x")
            assert stream.recv(1) == b"x"
    # A bind address of the wrong family is refused when the endpoint is made.
    with pytest.raises(ValueError, match="bind_address"):
        SSL4ClientEndpoint(LOOPBACK, 443, client_options, bind_address=("::1", 0))
    with pytest.raises(DescriptionError) as info:
        client_from_string("ssl:[::1]:443:bindAddress=127.0.0.1")
    assert info.value.parameter == "bindAddress"
    assert "IPv4" in str(info.value)


@pytest.mark.parametrize("server_kind", SERVER_KINDS)
def test_client_that_writes_and_closes_without_reading_loses_nothing(
    certs, sites, client_options, server_kind
):
    # TLS 1.3 session tickets sit unread in the client's socket; closing over them
    # must not reset the connection and drop the data still being sent.
    payload = os.urandom(4 * MiB)
    digests = []

    def digest(stream, address):
        hashed = hashlib.sha256()
        while data := stream.recv(65536):
            hashed.update(data)
            gevent.sleep(0.001)  # a slow reader: the client's buffer is full when it closes
        digests.append(hashed.hexdigest())

    with server_from_string(server_description(server_kind, certs, sites)).serve(digest) as port:
        for _ in range(2):
            endpoint = SSL4ClientEndpoint(LOOPBACK, port.get_host().port, client_options)
            stream = endpoint.open(timeout=5)
            assert stream.tls_version == "TLSv1.3"
            stream.sendall(payload)
            stream.close()
        wait_until(lambda: len(digests) == 2, 10, "both uploads")
    assert digests == [hashlib.sha256(payload).hexdigest()] * 2


# -- haproxy:ssl: the PROXY header first, on the raw TCP connection, then TLS ----

CLIENT = IPv4Address("203.0.113.7", 40000)  # only ever written into the header
FRONTEND = IPv4Address("192.0.2.10", 443)


def haproxy_ssl(certs):
    return f"haproxy:ssl:0:interface=127.0.0.1:privateKey={q(certs.server_pem)}:alpn=h2"


def test_haproxy_ssl_header_precedes_tls_and_the_handler_sees_the_client(certs, client_options):
    seen = []

    def handler(stream, address):
        seen.append((address, stream.getPeer(), stream.getHost(), stream.proxy_header.version))
        seen.append(stream)
        echo(stream, address)

    with server_from_string(haproxy_ssl(certs)).serve(handler) as port:
        tcp = TCP4ClientEndpoint(LOOPBACK, port.get_host().port)
        # Header on the raw TCP connection, then TLS over it: TLS wraps the
        # header-sending endpoint.
        endpoint = wrap_client_tls(client_options, wrap_haproxy_client(tcp, CLIENT, FRONTEND))
        with endpoint.open(timeout=5) as stream:
            stream.sendall(b"proxied")
            assert stream.recv(100) == b"proxied"
            assert stream.getpeername() == (LOOPBACK, port.get_host().port)
    (address, peer, host, version), tls_stream = seen
    assert (address, peer, host, version) == (CLIENT, CLIENT, FRONTEND, 2)
    assert isinstance(tls_stream, TLSStream)
    # The header was read exactly, so OpenSSL reads the socket itself (no memory BIO).
    assert tls_stream._memory is False


def test_haproxy_ssl_with_protocols_sees_the_client_in_connection_made(certs, client_options):
    class Greeter(Protocol):
        def connectionMade(self):
            peer = self.transport.getPeer()
            protocol = self.transport.negotiatedProtocol
            self.transport.write(f"{peer.host}:{peer.port} {protocol!r}\n".encode())
            self.transport.loseConnection()

    with server_from_string(haproxy_ssl(certs)).listen(Factory.forProtocol(Greeter)) as port:
        tcp = TCP4ClientEndpoint(LOOPBACK, port.get_host().port)
        options = options_for_client_tls("localhost", trust_root=certs.ca_file, alpn=["h2"])
        endpoint = wrap_client_tls(options, wrap_haproxy_client(tcp, CLIENT, FRONTEND, version=1))
        client = endpoint.connect(Factory.forProtocol(Recorder), timeout=5)
        assert client.closed.wait(5)
    assert bytes(client.received) == b"203.0.113.7:40000 b'h2'\n"


def test_haproxy_ssl_refuses_a_header_sent_inside_tls_and_keeps_serving(
    certs, client_options, caplog
):
    caplog.set_level(logging.INFO)
    with server_from_string(haproxy_ssl(certs)).serve(echo) as port:
        tcp = TCP4ClientEndpoint(LOOPBACK, port.get_host().port)
        # The other order: the ClientHello arrives where the header should be.
        wrong = wrap_haproxy_client(wrap_client_tls(client_options, tcp), CLIENT, FRONTEND)
        with pytest.raises(TLSError):
            wrong.open(timeout=5)
        right = wrap_client_tls(client_options, wrap_haproxy_client(tcp, CLIENT, FRONTEND))
        with right.open(timeout=5) as stream:
            stream.sendall(b"ok")
            assert stream.recv(10) == b"ok"
    warnings = [r for r in caplog.records if r.name == "greenpoint.haproxy"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


# -- TLS to a child process: memory BIOs over its stdin/stdout ------------------

# A TLS server on its own standard input and output: greenpoint's stdio: endpoint
# wrapped in TLS. argv: PEM file, "echo" or "burst", then the exit status.
CHILD_TLS_SERVER = f"""
import sys
from greenpoint import StandardIOEndpoint, wrap_server_tls
from greenpoint.tls import options_for_server_tls

pem, mode, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
options = options_for_server_tls(pem, alpn=["h2"])
listener = wrap_server_tls(options, StandardIOEndpoint(), handshake_timeout=10).bind()
stream, address = listener.accept()
listener.close()
if mode == "echo":
    while data := stream.recv(65536):
        stream.sendall(data)
else:
    for _ in range({RECORDS}):
        stream.sendall({RECORD!r})
    stream.sendall(bytes(64 * 1024))
    stream.recv(1)
stream.close()
sys.exit(status)
"""


def child_tls_server(certs, mode, status=0):
    return ProcessEndpoint(
        sys.executable,
        (sys.executable, "-c", CHILD_TLS_SERVER, certs.server_pem, mode, str(status)),
        env={**os.environ, "PYTHONPATH": ROOT},
        path=ROOT,
    )


def test_tls_client_over_a_child_process_stdio(certs, client_options):
    endpoint = wrap_client_tls(client_options, child_tls_server(certs, "echo"))
    stream = endpoint.open(timeout=10)
    with stream:
        assert stream._memory  # pipes: OpenSSL works on memory BIOs
        assert stream.alpn_protocol is None  # we offered none
        assert stream.peer_certificate is not None
        assert stream.getPeer() == stream._raw.getPeer()
        payload = os.urandom(MiB)
        got = bytearray()

        def read():
            while len(got) < len(payload):
                got.extend(stream.recv(65536))

        reader = gevent.spawn(read)
        stream.sendall(payload)
        reader.get(timeout=10)
        assert bytes(got) == payload
        process = stream._raw
        stream.shutdown(_stdsocket.SHUT_WR)  # close_notify, then end-of-file on its stdin
        assert stream.recv(10) == b""
    assert process.wait(timeout=10) == 0


def test_protocol_over_tls_to_a_child_reads_every_buffered_record(certs):
    options = options_for_client_tls("localhost", trust_root=certs.ca_file, alpn=["h2"])
    endpoint = wrap_client_tls(options, child_tls_server(certs, "burst"))
    client = endpoint.connect(Factory.forProtocol(PausingRecorder), timeout=10)
    expected = RECORDS * len(RECORD) + 64 * 1024
    # The child sends everything, then waits: the last records are already in
    # OpenSSL's memory BIO while the pipe has nothing more to read.
    wait_until(lambda: len(client.received) >= expected, 10, "every record from the child")
    assert len(client.received) == expected
    peer = client.transport.getPeer()
    assert isinstance(peer, PipeAddress) and "python" in str(peer)
    assert client.transport.negotiatedProtocol == b"h2"
    assert isinstance(client.transport.getPeerCertificate(), crypto.X509)
    process = client.transport.getHandle()._raw
    client.transport.loseConnection()
    assert client.closed.wait(5)
    assert isinstance(client.reason, ConnectionDone)
    assert process.wait(timeout=10) == 0


def test_connection_lost_over_tls_to_a_child_gets_its_exit_status(certs, client_options):
    endpoint = wrap_client_tls(client_options, child_tls_server(certs, "echo", status=5))
    client = endpoint.connect(Factory.forProtocol(Recorder), timeout=10)
    client.transport.write(b"ping")
    wait_until(lambda: client.received == b"ping", 10, "the echo")
    client.transport.loseConnection()  # close_notify, then end of file: the child exits
    assert client.closed.wait(10)
    assert isinstance(client.reason, ProcessTerminated)
    assert client.reason.exit_code == 5


# -- interoperating with OpenSSL's own tools ------------------------------------


@needs_openssl
def test_openssl_s_client_as_a_child_talks_to_a_greenpoint_server(certs):
    seen = []

    def handler(stream, address):
        line = stream.makefile("rb").readline()
        seen.append((stream.server_name, stream.alpn_protocol, stream.tls_version))
        stream.sendall(b"greenpoint heard " + line)

    description = ssl_server(certs, ":alpn=h2,http/1.1")
    with server_from_string(description).serve(handler) as port:
        command = (
            "openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{port.get_host().port}",
            "-servername", "localhost", "-CAfile", certs.ca_file, "-verify_return_error",
            "-verify_hostname", "localhost", "-alpn", "http/1.1",
        )  # fmt: skip
        endpoint = ProcessEndpoint("openssl", command, err_flag="drop")
        with endpoint.open() as child:
            child.sendall(b"hello from s_client\n")
            child.settimeout(10)
            assert read_all(child) == b"greenpoint heard hello from s_client\n"
            assert child.wait(timeout=10) == 0
    assert seen == [("localhost", "http/1.1", "TLSv1.3")]


@needs_openssl
def test_greenpoint_client_talks_to_openssl_s_server(tmp_path, certs):
    cert = certs.ca.issue_cert("localhost")
    key_file, cert_file = str(tmp_path / "s_key.pem"), str(tmp_path / "s_cert.pem")
    cert.private_key_pem.write_to_path(key_file)
    cert.cert_chain_pems[0].write_to_path(cert_file)
    command = (
        "openssl", "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-rev",
        "-cert", cert_file, "-key", key_file, "-alpn", "h2",
    )  # fmt: skip
    with ProcessEndpoint("openssl", command, err_flag="drop").open() as server:
        server.settimeout(10)
        output = server.makefile("rb")
        for line in output:  # "ACCEPT 127.0.0.1:PORT" once it listens
            if line.startswith(b"ACCEPT"):
                port_number = int(line.rsplit(b":", 1)[1])
                break
        options = options_for_client_tls("localhost", trust_root=certs.ca_file, alpn=["h2"])
        endpoint = SSL4ClientEndpoint(LOOPBACK, port_number, options)
        with endpoint.open(timeout=5) as stream:
            assert stream.alpn_protocol == "h2"
            stream.sendall(b"hello\n")
            stream.settimeout(5)
            assert stream.makefile("rb").readline() == b"olleh\n"  # -rev reverses lines
        output.close()
        assert server.wait(timeout=10) == 0  # -naccept 1: it ends with our connection


@needs_openssl
@pytest.mark.parametrize(
    "version_options",
    [("-tls1_1",), ("-no_tls1_2", "-no_tls1_3", "-cipher", "DEFAULT@SECLEVEL=0")],
)
def test_tls_1_1_clients_are_refused(certs, caplog, version_options):
    caplog.set_level(logging.INFO)
    with server_from_string(ssl_server(certs)).serve(echo) as port:
        result = gsubprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port.get_host().port}",
             "-CAfile", certs.ca_file, "-servername", "localhost", *version_options],
            input=b"", stdout=gsubprocess.PIPE, stderr=gsubprocess.STDOUT, timeout=10,
        )  # fmt: skip
        output = result.stdout.decode(errors="replace")
        if "no protocols available" in output:  # refused locally, before any hello
            pytest.skip("this openssl build cannot offer TLS 1.1 (the pyOpenSSL test can)")
        wait_until(lambda: any("unsupported protocol" in r.getMessage() for r in caplog.records))
    assert result.returncode != 0
    # It did offer TLS 1.1 (OpenSSL 3.0 here still can) and our server said no.
    assert "alert protocol version" in output
    assert "Protocol  : TLSv1.1" in output


def test_a_tls_1_1_hello_from_pyopenssl_is_refused(certs, caplog):
    # The same check without the openssl command: a pyOpenSSL client limited to
    # TLS 1.1 (SECLEVEL=0 lets this OpenSSL build offer it at all).
    caplog.set_level(logging.INFO)
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_1_VERSION)
    context.set_max_proto_version(SSL.TLS1_1_VERSION)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    with server_from_string(ssl_server(certs)).serve(echo) as port:
        with gsocket.create_connection((LOOPBACK, port.get_host().port)) as sock:
            connection = SSL.Connection(context, sock)
            connection.set_connect_state()
            with pytest.raises(SSL.Error, match="alert protocol version"):
                while True:
                    try:
                        connection.do_handshake()
                        break
                    except SSL.WantReadError:
                        gsocket.wait_read(sock.fileno(), 5)
        wait_until(lambda: any("unsupported protocol" in r.getMessage() for r in caplog.records))


# -- certificates outside their validity period --------------------------------


@pytest.mark.parametrize("client_kind", CLIENT_KINDS)
@pytest.mark.parametrize(
    ("validity", "reason"),
    [(expired, "certificate expired"), (not_yet_valid, "certificate not yet valid")],
)
def test_certificates_outside_their_validity_are_refused(
    certs, tmp_path_factory, client_kind, validity, reason
):
    directory = tmp_path_factory.mktemp("dated")
    certs.ca.issue_cert(
        "localhost", "127.0.0.1", **validity()
    ).private_key_and_cert_chain_pem.write_to_path(str(directory / "localhost.pem"))
    with server_from_string(server_description("tls", certs, str(directory))).serve(echo) as port:
        endpoint = client_from_string(client_description(client_kind, certs, port.get_host().port))
        with pytest.raises(TLSVerificationError) as info:
            endpoint.open(timeout=5)
        assert info.value.reason == reason
        assert reason in str(info.value)
        # Turning verification off is the explicit way past it.
        unverified = client_from_string(
            client_description(client_kind, certs, port.get_host().port, ":verify=no")
        )
        with unverified.open(timeout=5) as stream:
            stream.sendall(b"anyway")
            assert stream.recv(10) == b"anyway"
