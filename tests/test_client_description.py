"""ListeningPort.client_description(): a description that really reaches the port."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
import trustme

from greenpoint import client_from_string, quote_string_argument, server_from_string
from greenpoint._address import IPv4Address
from greenpoint._client_description import loopback_host
from greenpoint.endpoints.haproxy import wrap_haproxy_client

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("::", "::1"),
        ("127.0.0.5", "127.0.0.5"),
        ("::1", "::1"),
        ("fe80::1%2", "fe80::1%2"),
    ],
)
def test_wildcard_becomes_loopback_of_its_family(bound, expected):
    assert loopback_host(bound) == expected


def echo_once(stream, address):
    with stream:
        stream.sendall(stream.recv(100).upper())


def round_trip(port, description=None):
    stream = client_from_string(description or port.client_description()).open(timeout=5)
    with stream:
        stream.sendall(b"hello")
        return stream.recv(100)


def test_tcp_wildcard_port_gives_ipv4_loopback_and_real_port():
    with server_from_string("tcp:0").serve(echo_once) as port:
        number = port.get_host().port
        assert port.client_description() == f"tcp:127.0.0.1:{number}"
        assert round_trip(port) == b"HELLO"


def test_tcp6_wildcard_gives_bracketed_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("IPv6 not available on this machine")
    with server_from_string("tcp6:0:interface=\\:\\:").serve(echo_once) as port:
        number = port.get_host().port
        assert port.client_description() == f"tcp:[::1]:{number}"
        assert round_trip(port) == b"HELLO"


def test_unix_path(tmp_path):
    path = str(tmp_path / "s.sock")
    with server_from_string(f"unix:{path}").serve(echo_once) as port:
        assert port.client_description() == f"unix:{path}"
        assert round_trip(port) == b"HELLO"


def test_unix_abstract_name():
    name = f"gp-test-{uuid.uuid4().hex}"
    with server_from_string(f"unix:@{name}").serve(echo_once) as port:
        assert port.client_description() == f"unix:@{name}"
        assert round_trip(port) == b"HELLO"


@pytest.fixture
def chain_with_root(tmp_path):
    """A server PEM holding key, leaf and the self-signed CA: its own trust root."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
    path = str(tmp_path / "server.pem")
    with open(path, "wb") as file:
        file.write(leaf.private_key_and_cert_chain_pem.bytes())
        file.write(ca.cert_pem.bytes())
    return ca, leaf, path


def test_ssl_port_gives_tls_description_trusting_its_own_chain(chain_with_root):
    _, _, pem = chain_with_root
    with server_from_string(f"ssl:0:interface=127.0.0.1:privateKey={pem}").serve(echo_once) as port:
        description = port.client_description()
        number = port.get_host().port
        assert description == f"tls:127.0.0.1:{number}:trustRoots={pem}"
        assert round_trip(port) == b"HELLO"


def test_tls_port_without_self_signed_certificate_takes_trust_root(tmp_path):
    ca = trustme.CA()
    pem, ca_file = str(tmp_path / "server.pem"), str(tmp_path / "ca.pem")
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
    ca.cert_pem.write_to_path(ca_file)
    with server_from_string(f"ssl:0:interface=127.0.0.1:privateKey={pem}").serve(echo_once) as port:
        number = port.get_host().port
        # The leaf alone is no trust anchor: the client falls back to system roots.
        assert port.client_description() == f"tls:127.0.0.1:{number}"
        described = port.client_description(trust_root=ca_file, hostname="localhost")
        assert described == (
            f"tls:localhost:endpoint=[tcp:127.0.0.1:{number}]:trustRoots={ca_file}"
        )
        assert round_trip(port, described) == b"HELLO"


def test_haproxy_port_gives_the_inner_description():
    seen = []

    def record(stream, address):
        seen.append(address)
        echo_once(stream, address)

    with server_from_string("haproxy:tcp:0:interface=127.0.0.1").serve(record) as port:
        number = port.get_host().port
        assert port.client_description() == f"tcp:127.0.0.1:{number}"
        client = wrap_haproxy_client(
            client_from_string(port.client_description()),
            IPv4Address("192.0.2.7", 5555),
            IPv4Address("192.0.2.1", 80),
        )
        with client.open(timeout=5) as stream:
            stream.sendall(b"hi")
            assert stream.recv(100) == b"HI"
    assert seen == [IPv4Address("192.0.2.7", 5555)]


def test_listen_and_wsgi_ports_know_their_endpoint(tmp_path):
    from greenpoint import Factory, Protocol
    from greenpoint.wsgi import serve

    path = str(tmp_path / "w.sock")
    with serve(f"unix:{path}", lambda environ, start_response: []) as port:
        assert port.client_description() == f"unix:{path}"
    with server_from_string("tcp:0").listen(Factory.forProtocol(Protocol)) as port:
        assert port.client_description() == f"tcp:127.0.0.1:{port.get_host().port}"
    assert not os.path.exists(path)


def test_systemd_fallback_to_tls_gives_a_tls_description(chain_with_root, monkeypatch):
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        monkeypatch.delenv(key, raising=False)
    _, _, pem = chain_with_root
    fallback = f"ssl:0:interface=127.0.0.1:privateKey={quote_string_argument(pem)}"
    endpoint = server_from_string(
        f"systemd:domain=INET:index=0:fallback={quote_string_argument(fallback)}"
    )
    with endpoint.serve(echo_once) as port:
        assert port.client_description().startswith("tls:127.0.0.1:")
        assert round_trip(port) == b"HELLO"
