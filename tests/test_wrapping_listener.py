"""The wrapping-listener shape shared by TLS and PROXY listeners, nested either way round."""

from __future__ import annotations

import logging
import socket
import time

import gevent
import pytest
from _tls_helpers import make_certs
from gevent import socket as gsocket

from greenpoint import IPv4Address, encode_proxy_header, server_from_string
from greenpoint._address import listener_address
from greenpoint._tls_listener import TLSListener
from greenpoint._wrapping_listener import WrappingListener
from greenpoint.endpoints.haproxy import HAProxyListener
from greenpoint.tls import options_for_client_tls, options_for_server_tls, wrap_client_stream

CLIENT = IPv4Address("203.0.113.7", 51000)
DESTINATION = IPv4Address("198.51.100.1", 443)
HEADER = encode_proxy_header(CLIENT, DESTINATION)


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


@pytest.fixture
def server_options(certs):
    return options_for_server_tls(certs.server_pem)


@pytest.fixture
def client_options(certs):
    return options_for_client_tls("localhost", trust_root=certs.ca_file)


def loopback_listener():
    sock = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def connect(listener):
    return gsocket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5)


def wait_closed_by_server(sock):
    """The server closed ``sock``'s other end: end of stream, or a reset (unread bytes).

    A TLS alert may come first. A socket left open times out (``create_connection``'s
    5 s) and fails the test.
    """
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass


def tls_client(listener, client_options, first=b""):
    """A client that sends ``first`` (a PROXY header), then handshakes, in a greenlet."""

    def run():
        raw = connect(listener)
        raw.sendall(first)
        return wrap_client_stream(raw, client_options, timeout=5)

    return gevent.spawn(run)


@pytest.mark.timeout(20)
def test_a_proxy_listener_over_tls_skips_a_client_whose_handshake_fails(
    server_options, client_options, caplog
):
    listener = HAProxyListener(TLSListener(loopback_listener(), server_options, 5))
    with listener, connect(listener) as bad:
        bad.sendall(HEADER + b"GET / HTTP/1.0\r\n\r\n")  # a good header, then no TLS
        good = tls_client(listener, client_options, HEADER)
        with caplog.at_level(logging.INFO, logger="greenpoint"):
            stream, address = listener.accept()
        with stream, good.get(timeout=10) as client:
            assert address == CLIENT
            assert stream.proxy_header.source == CLIENT  # found on the TLS stream too
            client.sendall(b"x")
            assert stream.recv(1) == b"x"
        wait_closed_by_server(bad)
    assert "failed before the handler: TLSError" in caplog.text


@pytest.mark.timeout(20)
def test_a_tls_listener_over_a_proxy_one_skips_a_client_with_a_bad_header(
    server_options, client_options
):
    listener = TLSListener(HAProxyListener(loopback_listener()), server_options, 5)
    with listener, connect(listener) as bad:
        bad.sendall(b"GET / HTTP/1.0\r\n\r\n")  # no PROXY header
        good = tls_client(listener, client_options, HEADER)
        stream, address = listener.accept()
        with stream, good.get(timeout=10) as client:
            assert address == CLIENT
            client.sendall(b"y")
            assert stream.recv(1) == b"y"
        wait_closed_by_server(bad)


class Broken(WrappingListener):
    """A listener whose own step has a bug (not one client's failure)."""

    def prepare(self, stream, address):
        stream, address = self._prepare_inner(stream, address)
        stream.close()
        raise RuntimeError("a bug in prepare")


@pytest.mark.timeout(10)
def test_a_bug_in_prepare_is_raised_by_accept_not_skipped():
    listener = Broken(loopback_listener())
    with listener, connect(listener), pytest.raises(RuntimeError, match="a bug in prepare"):
        listener.accept()


@pytest.mark.timeout(10)
def test_a_failing_inner_step_closes_the_stream_for_the_outer_one():
    class Refusing(WrappingListener):
        def prepare(self, stream, address):
            raise ConnectionResetError("the client went away")

    outer = HAProxyListener(Refusing(loopback_listener()))
    with outer, connect(outer) as client:
        client.sendall(HEADER)
        stream, address = outer.accept_unprepared()
        with pytest.raises(ConnectionResetError):
            outer.prepare(stream, address)
        assert stream.fileno() == -1  # closed by the chain, not left to the caller


@pytest.mark.parametrize("wrap", ["tls", "haproxy"])
def test_both_listeners_pass_the_listening_socket_through(wrap, server_options):
    inner = loopback_listener()
    listener = TLSListener(inner, server_options, 5) if wrap == "tls" else HAProxyListener(inner)
    with listener:
        bound = IPv4Address("127.0.0.1", inner.getsockname()[1])
        assert listener.get_host() == listener.getHost() == listener_address(listener) == bound
        assert listener.getsockname() == inner.getsockname()
        assert listener.fileno() == inner.fileno()
        assert listener.family == socket.AF_INET
        assert repr(listener).startswith(f"<{type(listener).__name__} over <gevent")
    assert inner.fileno() == -1  # leaving the block closed the socket underneath


@pytest.mark.timeout(20)
def test_idle_timeout_reaches_proxied_unix_connections(tmp_path, caplog):
    # The PROXY listener passes its socket's family through, so the serve loop knows
    # a UNIX port and has its streams note their own last I/O (UNIX has no TCP_INFO).
    path = tmp_path / "proxied.sock"
    seen = []

    def handler(stream, address):
        seen.append(address)
        while data := stream.recv(10):
            stream.sendall(data)

    caplog.set_level(logging.INFO, logger="greenpoint")
    with server_from_string(f"haproxy:unix:{path}").serve(handler, idle_timeout=0.4) as port:
        client = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with client:
            client.settimeout(10)
            client.connect(str(path))
            client.sendall(HEADER + b"ping")
            assert client.recv(10) == b"ping"
            started = time.monotonic()
            wait_closed_by_server(client)
            assert 0.3 <= time.monotonic() - started < 5.0
        assert seen == [CLIENT]
        assert port.stats.closed_idle == 1
    # Logged naming the client the header gave, not the proxy's UNIX socket.
    assert f"connection from {CLIENT} on unix:{path} closed: no data" in caplog.text
