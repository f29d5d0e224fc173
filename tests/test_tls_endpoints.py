"""ssl: and tls: descriptions, TLS endpoints and listeners over loopback."""

from __future__ import annotations

import logging
import os
import socket as _stdsocket
import time

import pytest
from _tls_helpers import (
    LOOPBACK,
    Server,
    echo,
    expired,
    make_certs,
    port_of,
)
from gevent import socket as gsocket
from OpenSSL import SSL

import greenpoint
from greenpoint import (
    DescriptionError,
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    client_from_string,
    quote_string_argument,
    server_from_string,
    wrap_client_tls,
    wrap_server_tls,
    wrapClientTLS,
)
from greenpoint.endpoints.tls import TLSWrapperClientEndpoint, TLSWrapperServerEndpoint
from greenpoint.errors import ListenError, TLSError, TLSVerificationError
from greenpoint.tls import ClientTLSOptions, ServerTLSOptions, SNIServerOptions

pytestmark = pytest.mark.timeout(20)

q = quote_string_argument


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


def serve(description, handler=echo):
    listener = server_from_string(description).bind()
    return Server(listener, handler)


def test_public_names():
    assert greenpoint.wrapClientTLS is wrap_client_tls is wrapClientTLS
    for name in ("SSL4ClientEndpoint", "SSL4ServerEndpoint", "wrap_client_tls", "wrap_server_tls"):
        assert name in greenpoint.__all__


def test_echo_with_ssl_descriptions(certs):
    with serve(f"ssl:0:privateKey={q(certs.server_pem)}:interface=127.0.0.1") as server:
        port = port_of(server.listener)
        endpoint = client_from_string(
            f"ssl:127.0.0.1:{port}:hostname=localhost:caCertsDir={q(certs.ca_file)}"
        )
        assert isinstance(endpoint, SSL4ClientEndpoint)
        with endpoint.open() as stream:
            stream.sendall(b"over ssl:")
            assert stream.recv(100) == b"over ssl:"
            assert stream.getpeername()[1] == port
            assert stream.getsockname()[0] == LOOPBACK
            assert stream.getsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY)
        assert server.streams[0].getsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY)


def test_echo_with_tls_descriptions(certs, tmp_path_factory):
    directory = tmp_path_factory.mktemp("sites")
    certs.ca.issue_cert("localhost", "::1").private_key_and_cert_chain_pem.write_to_path(
        str(directory / "localhost.pem")
    )
    with serve(f"tls:{q(str(directory))}:port=0:interface=[::1]") as server:
        port = port_of(server.listener)
        endpoint = client_from_string(f"tls:[::1]:{port}:trustRoots={q(certs.ca_file)}")
        assert isinstance(endpoint, TLSWrapperClientEndpoint)
        with endpoint.open(timeout=5) as stream:
            stream.sendall(b"over tls:")
            assert stream.recv(100) == b"over tls:"
            assert stream.server_name is None  # an address: no SNI, IP SAN checked
        assert client_from_string(str(endpoint)) == endpoint


def test_tls_description_over_nested_endpoint(certs, tmp_path):
    path = str(tmp_path / "s.sock")
    options = ServerTLSOptions(certs.server_pem, alpn=("h2",))
    with Server(wrap_server_tls(options, UNIXServerEndpoint(path)).bind(), echo):
        description = (
            f"tls:localhost:443:endpoint={q('unix:' + q(path))}"
            f":trustRoots={q(certs.ca_file)}:alpn=h2,http/1.1"
        )
        endpoint = client_from_string(description)
        assert endpoint.endpoint == UNIXClientEndpoint(path)
        assert client_from_string(str(endpoint)) == endpoint
        with endpoint.open(timeout=5) as stream:
            assert stream.alpn_protocol == "h2"
            stream.sendall(b"nested")
            assert stream.recv(100) == b"nested"


@pytest.mark.parametrize(
    ("name", "server_cert", "reason"),
    [
        ("wrong host", lambda certs: certs.issue("w.pem", "elsewhere.test"), "hostname mismatch"),
        ("untrusted", lambda certs: make_certs_elsewhere(certs), "untrusted issuer"),
        (
            "expired",
            lambda certs: certs.issue("e.pem", "localhost", **expired()),
            "certificate expired",
        ),
    ],
)
def test_open_refuses_bad_certificates(certs, name, server_cert, reason):
    pem = server_cert(certs)
    with serve(f"ssl:0:privateKey={q(pem)}:interface=127.0.0.1") as server:
        port = port_of(server.listener)
        endpoint = client_from_string(
            f"ssl:127.0.0.1:{port}:hostname=localhost:caCertsDir={q(certs.ca_file)}"
        )
        with pytest.raises(TLSVerificationError) as info:
            endpoint.open(timeout=5)
        assert info.value.reason == reason
        assert reason in str(info.value)
        assert "localhost" in str(info.value) or "127.0.0.1" in str(info.value)
        assert isinstance(info.value, greenpoint.ConnectError)


def make_certs_elsewhere(certs):
    import os

    import trustme

    other = trustme.CA()
    path = os.path.join(certs.directory, "untrusted.pem")
    other.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(path)
    return path


def test_ssl_verification_is_on_by_default(certs):
    # No caCertsDir and no hostname: Twisted would not verify at all; we verify
    # the host against the system roots, which do not include our test CA.
    with serve(f"ssl:0:privateKey={q(certs.server_pem)}:interface=127.0.0.1") as server:
        port = port_of(server.listener)
        with pytest.raises(TLSVerificationError, match="untrusted issuer"):
            client_from_string(f"ssl:127.0.0.1:{port}").open(timeout=5)
        with client_from_string(f"ssl:127.0.0.1:{port}:verify=no").open(timeout=5) as stream:
            stream.sendall(b"unverified")
            assert stream.recv(100) == b"unverified"


def test_client_certificate_from_description(certs, tmp_path_factory):
    clients = make_certs(tmp_path_factory.mktemp("clients"))
    alice = clients.issue("alice.pem", "alice@example.com")
    with serve(
        f"ssl:0:privateKey={q(certs.server_pem)}:interface=127.0.0.1:clientCA={q(clients.ca_file)}"
    ) as server:
        port = port_of(server.listener)
        base = f"ssl:127.0.0.1:{port}:hostname=localhost:caCertsDir={q(certs.ca_file)}"
        with client_from_string(f"{base}:certKey={q(alice)}").open(timeout=5) as stream:
            stream.sendall(b"alice")
            assert stream.recv(100) == b"alice"
        assert server.streams[0].peer_certificate is not None
        # TLS 1.3: the client's handshake ends first; the refusal is an alert.
        with client_from_string(base).open(timeout=5) as stream, pytest.raises(TLSError):
            stream.sendall(b"anonymous")
            stream.recv(100)


def test_ssl4_client_accepts_a_bare_context(certs):
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_PEER)
    context.load_verify_locations(certs.ca_file)
    with serve(f"ssl:0:privateKey={q(certs.server_pem)}:interface=127.0.0.1") as server:
        endpoint = SSL4ClientEndpoint("127.0.0.1", port_of(server.listener), context)
        assert endpoint.tls_options.hostname == "127.0.0.1"
        with endpoint.open(timeout=5) as stream:
            stream.sendall(b"ctx")
            assert stream.recv(10) == b"ctx"


def test_handshake_timeout_drops_a_silent_client(certs, caplog):
    caplog.set_level(logging.INFO)
    with serve(
        f"ssl:0:privateKey={q(certs.server_pem)}:interface=127.0.0.1:handshakeTimeout=0.3"
    ) as server:
        silent = gsocket.create_connection((LOOPBACK, port_of(server.listener)))
        started = time.monotonic()
        assert silent.recv(100) == b""  # the server gave up and closed
        assert 0.2 < time.monotonic() - started < 3
        silent.close()
        assert any("timed out" in record.getMessage() for record in caplog.records)
        assert server.streams == []


def test_ssl_server_bind_errors_name_the_file_and_leak_nothing(tmp_path):
    missing = str(tmp_path / "nope.pem")
    endpoint = server_from_string(f"ssl:0:privateKey={q(missing)}:interface=127.0.0.1")
    with pytest.raises(ListenError, match="nope.pem"):
        endpoint.bind()
    with pytest.raises(ListenError, match="does not exist"):
        server_from_string(f"tls:{q(str(tmp_path / 'none'))}:port=0:interface=[::1]").bind()


# -- descriptions ------------------------------------------------------------

ROUND_TRIPS_CLIENT = [
    "ssl:example.com:443",
    "ssl:example.com:443:timeout=2.5:bindAddress=127.0.0.1:hostname=other.example"
    ":certKey=/x/c.pem:privateKey=/x/k.pem:caCertsDir=/x/cas:alpn=h2,http/1.1"
    ":minimumVersion=TLSv1.3",
    "ssl:[::1]:8443:verify=no",
    "tls:example.com:443",
    "tls:example.com:443:timeout=5:bindAddress=127.0.0.1:certificate=/c.pem:trustRoots=/cas",
    "tls:example.com:endpoint=unix\\:/tmp/x.sock:timeout=3:alpn=h2",
]

ROUND_TRIPS_SERVER = [
    "ssl:443",
    "ssl:8443:privateKey=/k.pem:certKey=/c.pem:extraCertChain=/chain.pem:interface=127.0.0.1"
    ":backlog=10:alpn=h2:clientCA=/ca.pem:requireClientCertificate=no:handshakeTimeout=5"
    ":reloadInterval=0:minimumVersion=TLSv1.3:dhParameters=/dh.pem",
    "tls:/certs",
    "tls:/certs:port=8443:interface=[::1]:backlog=7:alpn=h2,http/1.1:handshakeTimeout=0",
]


@pytest.mark.parametrize("description", ROUND_TRIPS_CLIENT)
def test_client_descriptions_round_trip(description):
    endpoint = client_from_string(description)
    assert client_from_string(str(endpoint)) == endpoint


@pytest.mark.parametrize("description", ROUND_TRIPS_SERVER)
def test_server_descriptions_round_trip(description):
    endpoint = server_from_string(description)
    assert server_from_string(str(endpoint)) == endpoint


def test_ssl_client_description_values():
    endpoint = client_from_string(
        "SSL:example.com:443:timeout=2.5:caCertsDir=/cas:alpn=h2, http/1.1:minimumVersion=1.3"
    )
    assert endpoint.host == "example.com" and endpoint.port == 443 and endpoint.timeout == 2.5
    options = endpoint.tls_options
    assert options == ClientTLSOptions(
        "example.com", trust_root="/cas", alpn=("h2", "http/1.1"), minimum_version="TLSv1.3"
    )
    assert client_from_string("ssl:a:1:trustRoots=/x").tls_options.trust_root == "/x"


def test_ssl_server_description_values():
    endpoint = server_from_string("ssl:8443:privateKey=k.pem:sslmethod=SSLv23_METHOD")
    assert isinstance(endpoint, SSL4ServerEndpoint)
    assert endpoint.tls_options == ServerTLSOptions("k.pem", "k.pem")
    endpoint = server_from_string("ssl:8443")
    assert endpoint.tls_options.certificate == "server.pem"  # Twisted's default
    assert endpoint.handshake_timeout == 30


def test_tls_server_description_values():
    endpoint = server_from_string("tls:/certs:8443:alpn=h2:reloadInterval=0.5")
    assert isinstance(endpoint, TLSWrapperServerEndpoint)
    assert endpoint.tls_options == SNIServerOptions("/certs", alpn=("h2",), reload_interval=0.5)
    assert (endpoint.endpoint.port, endpoint.endpoint.interface) == (8443, "::")


@pytest.mark.parametrize(
    ("description", "parameter"),
    [
        ("ssl:example.com:443:minimumVersion=TLSv1.0", "minimumVersion"),
        ("ssl:example.com:443:alpn=", "alpn"),
        ("ssl:example.com:443:timeout=soon", "timeout"),
        ("ssl:example.com:443:verify=maybe", "verify"),
        ("ssl:example.com:443:caCertsDir=/a:trustRoots=/b", "trustRoots"),
        ("ssl:example.com:443:hostnme=x", "hostnme"),
        ("ssl:example.com:99999", "port"),
        ("ssl:8443:sslmethod=TLSv1_METHOD", "sslmethod"),
        ("ssl:8443:sslmethod=bogus", "sslmethod"),
        ("ssl:8443:interface=localhost", "interface"),
        ("tls:example.com", "port"),
        ("tls:example.com:443:bindAddress=127.0.0.1:endpoint=unix\\:/x", "bindAddress"),
        ("tls:example.com:endpoint=nosuchprefix\\:x", "endpoint"),
        ("tls:/certs:handshakeTimeout=abc", "handshakeTimeout"),
        ("tls:/certs:requireClientCertificate=perhaps", "requireClientCertificate"),
    ],
)
def test_bad_descriptions_name_the_parameter(description, parameter):
    table = client_from_string if not _is_server(description) else server_from_string
    with pytest.raises(DescriptionError) as info:
        table(description)
    assert info.value.parameter == parameter
    assert info.value.prefix in ("ssl", "tls")


def _is_server(description):
    return description.startswith("ssl:8443") or description.startswith("tls:/")


def test_old_sslmethod_is_explained():
    with pytest.raises(DescriptionError, match="RFC 8996"):
        server_from_string("ssl:8443:sslmethod=TLSv1_1_METHOD")


def test_describing_without_a_string_form_falls_back_to_repr(certs, tmp_path):
    endpoint = wrap_server_tls(ServerTLSOptions(certs.server_pem), UNIXServerEndpoint("/x"))
    assert str(endpoint).startswith("TLSWrapperServerEndpoint(")


def test_importing_greenpoint_does_not_import_pyopenssl():
    import subprocess
    import sys

    code = "import sys, greenpoint; assert 'OpenSSL' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd(), timeout=30)


@pytest.mark.parametrize("key", ["trustRoots", "caCertsDir"])
@pytest.mark.parametrize("prefix", ["tls", "ssl"])
def test_missing_trust_file_is_reported_before_connecting(tmp_path, prefix, key):
    missing = tmp_path / "nonexistent" / "ca.pem"
    listener = _stdsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    try:
        port_ = listener.getsockname()[1]
        endpoint = client_from_string(f"{prefix}:127.0.0.1:{port_}:{key}={missing}")
        with pytest.raises(FileNotFoundError, match=str(missing)):
            endpoint.open(timeout=5)
        with pytest.raises(BlockingIOError):  # nothing ever connected
            listener.accept()
    finally:
        listener.close()


def test_check_says_a_trust_file_is_missing(tmp_path):
    from greenpoint.cli._explain import explain, format_explanation

    missing = tmp_path / "ca.pem"
    text = format_explanation(explain(f"tls:localhost:443:trustRoots={missing}", "client"))
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:1] == ["trustRoots"])
    assert "warning: no such file or directory" in lines[at + 2]
    missing.write_bytes(b"")
    text = format_explanation(explain(f"tls:localhost:443:trustRoots={missing}", "client"))
    assert "no such file" not in text
