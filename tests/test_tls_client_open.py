"""What the client endpoints work out once and reuse on every ``open()``.

``HostnameEndpoint`` remembers the route to an IP literal, ``SSL4ClientEndpoint`` its
TCP endpoint, the ``tls:`` wrapper the address text its errors show; all three are
mutable dataclasses, so each is remembered by the fields it was made of and a field
changed after an open must take effect. ``TCP_NODELAY`` is set once per connection
(the TCP endpoint sets it; the TLS layer then does not set it again), and still set
when the endpoint under TLS does not set it itself.
"""

from __future__ import annotations

import dataclasses
import socket as stdsocket

import pytest
from _tls_helpers import LOOPBACK, Server, echo, make_certs, port_of
from gevent import socket as gsocket

import greenpoint._socket
import greenpoint._tls_stream
from greenpoint import (
    HostnameEndpoint,
    SSL4ClientEndpoint,
    client_from_string,
    quote_string_argument,
    server_from_string,
    wrap_client_tls,
)
from greenpoint._sockopts import TCPOptions
from greenpoint._tls_verify import server_name_to_send
from greenpoint.errors import ConnectRefusedError, TLSVerificationError
from greenpoint.testing import FakeResolver
from greenpoint.tls import ClientTLSOptions, options_for_client_tls

pytestmark = pytest.mark.timeout(20)

q = quote_string_argument


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


def tls_server(certs, pem=None, interface=LOOPBACK):
    listener = server_from_string(
        f"ssl:0:privateKey={q(pem or certs.server_pem)}:interface={q(interface)}"
    ).bind()
    return Server(listener, echo)


def plain_listener(host=LOOPBACK):
    sock = gsocket.socket(stdsocket.AF_INET6 if ":" in host else stdsocket.AF_INET)
    sock.bind((host, 0))
    sock.listen(8)
    return sock


def nodelay_of(stream) -> int:
    return stream.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY)


# -- HostnameEndpoint: the route to an IP literal ---------------------------------


def test_hostname_endpoint_follows_a_changed_port_host_and_bind_address():
    first, second, six = plain_listener(), plain_listener(), plain_listener("::1")
    try:
        endpoint = HostnameEndpoint(LOOPBACK, port_of(first), timeout=5)
        with endpoint.open() as sock:
            assert sock.getpeername() == (LOOPBACK, port_of(first))
        endpoint.port = port_of(second)
        with endpoint.open() as sock:
            assert sock.getpeername() == (LOOPBACK, port_of(second))
        endpoint.bind_address = "127.0.0.2"
        with endpoint.open() as sock:
            assert sock.getsockname()[0] == "127.0.0.2"
        endpoint.host, endpoint.port = "::1", port_of(six)
        with endpoint.open() as sock:
            assert sock.getpeername()[:2] == ("::1", port_of(six))
            assert sock.getsockname()[0] == "::1"  # the IPv4 bind address is not for IPv6
    finally:
        for sock in (first, second, six):
            sock.close()


def test_hostname_endpoint_sees_a_bind_address_list_changed_in_place():
    listener = plain_listener()
    try:
        bind = ["127.0.0.2", 0]
        endpoint = HostnameEndpoint(LOOPBACK, port_of(listener), timeout=5)
        endpoint.bind_address = bind  # a list, as a user may assign it
        with endpoint.open() as sock:
            assert sock.getsockname()[0] == "127.0.0.2"
        bind[0] = "127.0.0.3"
        with endpoint.open() as sock:
            assert sock.getsockname()[0] == "127.0.0.3"
    finally:
        listener.close()


def test_hostname_endpoint_goes_from_a_literal_to_a_name_and_back():
    listener = plain_listener()
    try:
        port = port_of(listener)
        resolver = FakeResolver()
        resolver.add("example.test", stdsocket.AF_INET, [LOOPBACK])
        resolver.add("example.test", stdsocket.AF_INET6, [])
        endpoint = HostnameEndpoint(LOOPBACK, port, timeout=5, resolver=resolver)
        endpoint.open().close()
        assert resolver.calls == []  # a literal is not looked up
        endpoint.host = "example.test"
        endpoint.open().close()
        assert {family for _, _, family in resolver.calls} == {
            stdsocket.AF_INET,
            stdsocket.AF_INET6,
        }
        endpoint.host = LOOPBACK
        resolver.calls.clear()
        endpoint.open().close()
        assert resolver.calls == []
    finally:
        listener.close()


def test_hostname_endpoint_errors_name_the_changed_port():
    listener = plain_listener()
    refusing = gsocket.socket()
    refusing.bind((LOOPBACK, 0))  # bound, not listening: refuses
    try:
        endpoint = HostnameEndpoint(LOOPBACK, port_of(listener), timeout=5)
        endpoint.open().close()
        endpoint.port = port_of(refusing)
        with pytest.raises(ConnectRefusedError) as caught:
            endpoint.open()
        assert str(caught.value.address) == f"{LOOPBACK}:{port_of(refusing)}"
        assert len(caught.value.attempts) == 1  # as open_tcp_connection reports it
    finally:
        listener.close()
        refusing.close()


# -- tls: and ssl: endpoints changed after an open ---------------------------------


def test_tls_endpoint_errors_name_the_port_and_host_given_after_an_open(certs):
    other = certs.issue("other.pem", "other.test")  # valid, but not for 127.0.0.1
    with tls_server(certs) as good, tls_server(certs, other) as wrong:
        endpoint = client_from_string(
            f"tls:{LOOPBACK}:{port_of(good.listener)}:trustRoots={q(certs.ca_file)}"
        )
        endpoint.open().close()
        endpoint.endpoint.port = port_of(wrong.listener)
        with pytest.raises(TLSVerificationError) as caught:
            endpoint.open()
        assert f"{LOOPBACK}:{port_of(wrong.listener)}" in str(caught.value)
        # New options for another name: the errors name it.
        endpoint.tls_options = options_for_client_tls("localhost", trust_root=certs.ca_file)
        with pytest.raises(TLSVerificationError) as caught:
            endpoint.open()
        assert f"localhost:{port_of(wrong.listener)}" in str(caught.value)
        endpoint.endpoint.port = port_of(good.listener)
        endpoint.open().close()  # the certificate is for localhost too


def test_ssl_endpoint_follows_changed_fields(certs):
    with tls_server(certs) as first, tls_server(certs) as second:
        endpoint = client_from_string(
            f"ssl:{LOOPBACK}:{port_of(first.listener)}:caCertsDir={q(certs.ca_file)}"
        )
        assert isinstance(endpoint, SSL4ClientEndpoint)
        with endpoint.open() as stream:
            assert stream.getpeername()[1] == port_of(first.listener)
            assert nodelay_of(stream)
        endpoint.nodelay = False
        with endpoint.open() as stream:
            assert not nodelay_of(stream)  # neither the TCP nor the TLS layer set it
        endpoint.port = port_of(second.listener)
        with endpoint.open() as stream:
            assert stream.getpeername()[1] == port_of(second.listener)
        endpoint.bind_address = "127.0.0.2"
        with endpoint.open() as stream:
            assert stream.getsockname()[0] == "127.0.0.2"
        endpoint.tcp_options = TCPOptions(keep_alive=True)
        with endpoint.open() as stream:
            assert stream.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE)
        endpoint.nodelay = True
        with endpoint.open() as stream:
            assert nodelay_of(stream)


def test_ssl_endpoint_sees_socket_options_changed_in_place(certs):
    with tls_server(certs) as server:
        endpoint = client_from_string(
            f"ssl:{LOOPBACK}:{port_of(server.listener)}:caCertsDir={q(certs.ca_file)}"
        )
        endpoint.open().close()
        options = [(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE, 1)]
        endpoint.socket_options = options
        with endpoint.open() as stream:
            assert stream.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE)
        options[0] = (stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE, 0)
        with endpoint.open() as stream:
            assert not stream.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE)


# -- TCP_NODELAY: once ------------------------------------------------------------


@pytest.fixture
def nodelay_calls(monkeypatch):
    """The descriptors ``set_nodelay`` was called on, by the TCP connect and by the
    TLS layer (the in-process servers' accepted sockets are listed too)."""
    calls = []
    real = greenpoint._socket.set_nodelay

    def counting(sock):
        calls.append(sock.fileno())
        real(sock)

    monkeypatch.setattr(greenpoint._socket, "set_nodelay", counting)
    monkeypatch.setattr(greenpoint._tls_stream, "set_nodelay", counting)
    return calls


@pytest.mark.parametrize("prefix", ["tls", "ssl"])
def test_tcp_nodelay_is_set_once_per_connection(certs, nodelay_calls, prefix):
    trust = "trustRoots" if prefix == "tls" else "caCertsDir"
    with tls_server(certs) as server:
        endpoint = client_from_string(
            f"{prefix}:{LOOPBACK}:{port_of(server.listener)}:{trust}={q(certs.ca_file)}"
        )
        for _ in range(2):
            with endpoint.open() as stream:
                assert nodelay_of(stream)
                assert nodelay_calls.count(stream.fileno()) == 1
                nodelay_calls.clear()


def test_tls_sets_nodelay_over_an_endpoint_that_does_not(certs, nodelay_calls):
    def plain_connect(family, sockaddr, *, timeout, bind_address):
        sock = gsocket.socket(family, stdsocket.SOCK_STREAM)
        sock.connect(sockaddr)
        return sock  # Nagle left on

    with tls_server(certs) as server:
        inner = HostnameEndpoint(
            LOOPBACK, port_of(server.listener), timeout=5, connector=plain_connect
        )
        options = options_for_client_tls(LOOPBACK, trust_root=certs.ca_file)
        with wrap_client_tls(options, inner).open() as stream:
            assert nodelay_of(stream)
            assert nodelay_calls.count(stream.fileno()) == 1  # by the TLS layer


def test_nodelay_0_leaves_nagle_on_under_tls(certs):
    with tls_server(certs) as server:
        endpoint = client_from_string(
            f"tls:{LOOPBACK}:{port_of(server.listener)}:trustRoots={q(certs.ca_file)}:nodelay=0"
        )
        with endpoint.open() as stream:
            assert not nodelay_of(stream)
        endpoint.endpoint.nodelay = True
        with endpoint.open() as stream:
            assert nodelay_of(stream)


# -- values worked out once, with the options ----------------------------------------


@pytest.mark.parametrize(
    ("hostname", "send", "expected"),
    [
        ("example.com", None, b"example.com"),
        ("example.com.", None, b"example.com"),  # RFC 6066 §3: no trailing dot
        ("bücher.example", None, b"xn--bcher-kva.example"),
        ("127.0.0.1", None, None),  # RFC 6066 §3: no SNI for an address
        ("::1", None, None),
        ("example.com", False, None),
        ("127.0.0.1", True, b"127.0.0.1"),
        (None, True, None),
    ],
)
def test_server_name_to_send(hostname, send, expected):
    assert server_name_to_send(hostname, send) == expected


def test_forced_server_name_is_sent(certs):
    seen = []

    def record(stream, address):
        seen.append(stream.server_name)
        stream.close()

    listener = server_from_string(
        f"ssl:0:privateKey={q(certs.server_pem)}:interface={LOOPBACK}"
    ).bind()
    with Server(listener, record):
        options = ClientTLSOptions(LOOPBACK, trust_root=certs.ca_file, send_server_name=True)
        inner = HostnameEndpoint(LOOPBACK, port_of(listener), timeout=5)
        with wrap_client_tls(options, inner).open() as stream:
            stream.recv(1)
    assert seen == [LOOPBACK]


def test_replaced_options_get_their_own_server_name_and_sessions(certs):
    options = ClientTLSOptions("example.com", trust_root=certs.ca_file)
    copy = dataclasses.replace(options, hostname="other.example")
    assert options._cache["server_name"] == b"example.com"
    assert copy._cache["server_name"] == b"other.example"
    assert copy._cache["sessions"] is not options._cache["sessions"]


@pytest.mark.parametrize(
    ("options", "given"),
    [
        (TCPOptions(), False),
        (TCPOptions(keep_alive=False), True),
        (TCPOptions(keep_alive_idle=5), True),
        (TCPOptions(user_timeout=1.5), True),
        (dataclasses.replace(TCPOptions(keep_alive=True), keep_alive=None), False),
    ],
)
def test_tcp_options_are_true_when_any_is_given(options, given):
    assert bool(options) is given
