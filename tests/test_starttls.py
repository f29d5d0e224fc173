"""transport.startTLS: against Python's smtplib (server side) and a stdlib ssl server."""

from __future__ import annotations

import smtplib
import socket
import ssl

import gevent
import pytest
import trustme
from _protocol_helpers import LOOPBACK
from _tls_helpers import make_certs
from _wait_helpers import wait_until
from twisted.protocols import basic

import greenpoint
from greenpoint import tls
from greenpoint.errors import TLSVerificationError


def in_thread(function, *args):
    """Run blocking stdlib code in a real thread; the hub keeps serving meanwhile."""
    return gevent.get_hub().threadpool.spawn(function, *args)


class MiniSMTP(basic.LineReceiver):
    """Just enough ESMTP for smtplib: EHLO, STARTTLS (RFC 3207), NOOP, QUIT."""

    def connectionMade(self):
        self.secure = False
        self.sendLine(b"220 localhost ESMTP greenpoint test")

    def lineReceived(self, line):
        verb = line.split(b" ", 1)[0].upper()
        if verb == b"EHLO":
            if self.secure:
                self.sendLine(b"250 localhost")
            else:
                self.sendLine(b"250-localhost")
                self.sendLine(b"250 STARTTLS")
        elif verb == b"STARTTLS":
            self.sendLine(b"220 2.0.0 Ready to start TLS")  # in clear, before the switch
            self.transport.startTLS(self.factory.tls_options)
            self.secure = True
        elif verb == b"NOOP":
            cert = self.transport.getHandle().peer_certificate if self.secure else None
            self.sendLine(b"250 2.0.0 tls=%s client-cert=%s" % (
                b"yes" if self.secure else b"no", b"none" if cert is None else b"yes"))  # fmt: skip
        elif verb == b"QUIT":
            self.sendLine(b"221 2.0.0 bye")
            self.transport.loseConnection()
        else:
            self.sendLine(b"502 5.5.2 not implemented")


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


def _smtp_server(certs):
    factory = greenpoint.Factory.forProtocol(MiniSMTP)
    factory.tls_options = tls.options_for_server_tls(certs.server_pem)
    return greenpoint.server_from_string(f"tcp:0:interface={LOOPBACK}").listen(factory)


def _smtplib_session(port, ca_file):
    context = ssl.create_default_context(cafile=ca_file)
    with smtplib.SMTP(LOOPBACK, port, timeout=10) as client:
        code, features = client.ehlo()
        assert code == 250 and client.has_extn("starttls")
        client.starttls(context=context)
        version = client.sock.version()
        client.ehlo()
        reply = client.noop()
    return version, reply


def test_smtplib_starttls_against_a_greenpoint_line_protocol(certs):
    with _smtp_server(certs) as port:
        version, reply = in_thread(_smtplib_session, port.get_host().port, certs.ca_file).get(30)
    assert version in ("TLSv1.2", "TLSv1.3")
    assert reply == (250, b"2.0.0 tls=yes client-cert=none")


def test_smtplib_refuses_our_certificate_when_it_trusts_another_ca(certs, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    with _smtp_server(certs) as port:
        result = in_thread(_smtplib_session, port.get_host().port, str(other_ca))
        with pytest.raises(ssl.SSLCertVerificationError):
            result.get(30)


# -- writes after startTLS go over TLS, in order ------------------------------------


class SwitchThenSpeak(greenpoint.Protocol):
    def dataReceived(self, data):
        self.transport.write(b"GO\n")
        self.transport.startTLS(self.factory.tls_options)
        self.transport.write(b"secret ")
        self.transport.writeSequence([b"over ", b"tls\n"])


def _stdlib_client(port, ca_file):
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw:
        raw.sendall(b"STARTTLS\n")
        assert raw.recv(3) == b"GO\n"  # exactly: the rest is TLS
        with context.wrap_socket(raw, server_hostname="localhost") as secure:
            data = b""
            while not data.endswith(b"\n"):
                data += secure.recv(100)
            return data


def test_bytes_written_after_start_tls_are_sent_over_tls(certs):
    factory = greenpoint.Factory.forProtocol(SwitchThenSpeak)
    factory.tls_options = tls.options_for_server_tls(certs.server_pem)
    server = greenpoint.server_from_string(f"tcp:0:interface={LOOPBACK}")
    with server.listen(factory) as port:
        got = in_thread(_stdlib_client, port.get_host().port, certs.ca_file).get(30)
    assert got == b"secret over tls\n"


# -- client side, against a stdlib ssl server ---------------------------------------


def _stdlib_starttls_server(listener, server_pem):
    """Accept one client: STARTTLS in clear, then echo one line over TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pem)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        line = b""
        while not line.endswith(b"\n"):
            line += conn.recv(1)
        assert line == b"STARTTLS\n"
        conn.sendall(b"OK\n")
        try:
            with context.wrap_socket(conn, server_side=True) as secure:
                data = b""
                while not data.endswith(b"\n"):
                    data += secure.recv(100)
                secure.sendall(b"TLS:" + data)
                return secure.version()
        except ssl.SSLError as exc:
            return exc


class StartTLSClient(basic.LineReceiver):
    delimiter = b"\n"

    def connectionMade(self):
        self.lines = []
        self.reason = None
        self.sendLine(b"STARTTLS")

    def lineReceived(self, line):
        self.lines.append(line)
        if line == b"OK":
            self.transport.startTLS(self.factory.tls_options)
            self.sendLine(b"hello")
            self.peer_cert_before = self.transport.getPeerCertificate()
        else:
            self.peer_cert = self.transport.getPeerCertificate()
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.reason = reason


def _run_client(certs, client_options):
    listener = socket.socket()  # a stdlib socket: the ssl server runs in a real thread
    try:
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        server = in_thread(_stdlib_starttls_server, listener, certs.server_pem)
        factory = greenpoint.Factory.forProtocol(StartTLSClient)
        factory.tls_options = client_options
        endpoint = greenpoint.client_from_string(f"tcp:{LOOPBACK}:{listener.getsockname()[1]}")
        client = endpoint.connect(factory, timeout=10)
        assert client.transport.wait_closed(20)
        return client, server.get(20)
    finally:
        listener.close()


def test_client_start_tls_against_a_stdlib_ssl_server(certs):
    options = tls.options_for_client_tls("localhost", trust_root=certs.ca_file)
    client, server_version = _run_client(certs, options)
    assert client.lines == [b"OK", b"TLS:hello"]
    assert client.peer_cert_before is None  # still in clear when startTLS returned
    assert client.peer_cert is not None
    assert isinstance(client.reason, greenpoint.ConnectionDone)
    assert server_version in ("TLSv1.2", "TLSv1.3")


def test_client_start_tls_verifies_the_server(certs, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    options = tls.options_for_client_tls("localhost", trust_root=str(other_ca))
    client, server_result = _run_client(certs, options)
    assert client.lines == [b"OK"]
    assert isinstance(client.reason, TLSVerificationError)
    assert isinstance(server_result, ssl.SSLError)


def test_start_tls_rejects_options_it_cannot_use():
    transport = greenpoint._transport.Transport(object(), greenpoint.Protocol())
    with pytest.raises(TypeError, match="options_for_client_tls"):
        transport.startTLS("not options")


# -- from outside the reader, and over memory: ----------------------------------------


class TLSFromTheStart(greenpoint.Protocol):
    def connectionMade(self):
        self.transport.startTLS(self.factory.tls_options)

    def dataReceived(self, data):
        self.transport.write(data.upper())


class Collect(greenpoint.Protocol):
    def connectionMade(self):
        self.received = b""

    def dataReceived(self, data):
        self.received += data


def test_start_tls_called_from_another_greenlet_over_memory(certs):
    server_factory = greenpoint.Factory.forProtocol(TLSFromTheStart)
    server_factory.tls_options = tls.options_for_server_tls(certs.server_pem)
    with greenpoint.server_from_string("memory:starttls").listen(server_factory):
        client = greenpoint.client_from_string("memory:starttls").connect(
            greenpoint.Factory.forProtocol(Collect)
        )
        # The reader is parked in recv: startTLS wakes it to do the handshake.
        client.transport.startTLS(tls.options_for_client_tls("localhost", trust_root=certs.ca_file))
        client.transport.write(b"ping")
        with pytest.raises(RuntimeError, match="already TLS"):
            client.transport.startTLS(tls.options_for_client_tls("localhost"))
        wait_until(lambda: client.received == b"PING", timeout=10)
        assert client.transport.getPeerCertificate() is not None
        client.transport.loseConnection()
        assert client.transport.wait_closed(5)


class LastWordsOverTLS(greenpoint.Protocol):
    def connectionMade(self):
        self.transport.write(b"clear\n")
        self.transport.startTLS(self.factory.tls_options)
        self.transport.write(b"secret\n")
        self.transport.loseConnection()  # after the handshake and the secret


def test_lose_connection_right_after_start_tls_still_sends_over_tls(certs):
    factory = greenpoint.Factory.forProtocol(LastWordsOverTLS)
    factory.tls_options = tls.options_for_server_tls(certs.server_pem)
    with greenpoint.server_from_string("memory:lastwords").listen(factory):
        raw = greenpoint.client_from_string("memory:lastwords").open()
        raw.settimeout(10)
        assert raw.recv(6) == b"clear\n"
        options = tls.options_for_client_tls("localhost", trust_root=certs.ca_file)
        with tls.wrap_client_stream(raw, options, timeout=10) as secure:
            data = b""
            while chunk := secure.recv(100):
                data += chunk
    assert data == b"secret\n"
