"""The proxy endpoints against real proxies no one here wrote, on loopback:
microsocks (SOCKS5, with and without a password), dante (SOCKS5 with and without a
password, SOCKS4) and tinyproxy (HTTP CONNECT, with and without Basic authentication).

dante authenticates SOCKS5 users against the system's accounts only: its password
tests use the account .ci/install-programs makes (and skip, saying so, without it); dante does not do SOCKS4a's "name instead of
address" (it connects to 0.0.0.1), so names over SOCKS4 are tested with
``resolve=local`` here and with a scripted proxy in test_proxy_endpoints.py.
"""

from __future__ import annotations

import socket as stdsocket

import pytest
from _proxy_helpers import DANTE_PASSWORD, DANTE_USER, dante, free_port, microsocks, tinyproxy
from _tls_helpers import echo

from greenpoint import client_from_string, server_from_string
from greenpoint.errors import ProxyError, TLSVerificationError

pytestmark = pytest.mark.timeout(60)

LOOPBACK = "127.0.0.1"


@pytest.fixture
def echo_port():
    port = server_from_string(f"tcp:0:interface={LOOPBACK}").serve(echo)
    try:
        yield port.get_host().port
    finally:
        port.stop_listening(timeout=1)


@pytest.fixture
def tls_echo(tmp_path):
    """A TLS echo server on 127.0.0.1 and the CA file that verifies it."""
    from _tls_helpers import make_certs

    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    port = server_from_string(f"ssl:0:interface={LOOPBACK}:privateKey={certs.server_pem}").serve(
        echo
    )
    try:
        yield port.get_host().port, certs.ca_file
    finally:
        port.stop_listening(timeout=1)


def round_trip(description, payload=b"through the proxy"):
    with client_from_string(description).open(timeout=10) as stream:
        stream.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = stream.recv(1024)
            assert chunk, "the tunnel closed early"
            received += chunk
    assert received == payload


def refused_port():
    """A loopback port where nothing listens (a refusing target)."""
    return free_port()


# -- microsocks --------------------------------------------------------------------


def test_microsocks_socks5(tmp_path, echo_port):
    with microsocks(tmp_path) as proxy:
        round_trip(f"socks5:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]")


def test_microsocks_resolves_the_name_it_is_sent(tmp_path, echo_port):
    first = stdsocket.getaddrinfo("localhost", echo_port, type=stdsocket.SOCK_STREAM)[0]
    if first[4][0] != LOOPBACK:
        pytest.skip(f"localhost resolves to {first[4][0]} first here, not {LOOPBACK}")
    with microsocks(tmp_path) as proxy:
        round_trip(f"socks5:localhost:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]")


def test_microsocks_user_and_password(tmp_path, echo_port):
    with microsocks(tmp_path, "bob", "right horse") as proxy:
        round_trip(
            f"socks5:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]"
            ":user=bob:password=right horse"
        )


def test_microsocks_wrong_password(tmp_path, echo_port):
    with microsocks(tmp_path, "bob", "right horse") as proxy:
        endpoint = client_from_string(
            f"socks5:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]"
            ":user=bob:password=wrong pony"
        )
        with pytest.raises(ProxyError) as caught:
            endpoint.open(timeout=10)
    message = str(caught.value)
    assert f"SOCKS5 proxy {LOOPBACK}:{proxy} refused the authentication for" in message
    assert "user or password refused" in message
    assert "wrong pony" not in message


def test_microsocks_without_credentials_when_they_are_required(tmp_path, echo_port):
    with microsocks(tmp_path, "bob", "right horse") as proxy:
        endpoint = client_from_string(
            f"socks5:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]"
        )
        with pytest.raises(ProxyError, match="requires authentication"):
            endpoint.open(timeout=10)


def test_microsocks_refused_target(tmp_path):
    target = refused_port()
    with microsocks(tmp_path) as proxy:
        endpoint = client_from_string(f"socks5:{LOOPBACK}:{target}:proxy=[tcp:{LOOPBACK}:{proxy}]")
        with pytest.raises(ProxyError) as caught:
            endpoint.open(timeout=10)
    assert str(caught.value) == (
        f"SOCKS5 proxy {LOOPBACK}:{proxy} refused CONNECT to {LOOPBACK}:{target}: "
        "connection refused (reply 5)"
    )
    assert caught.value.reply == 5


def test_tls_over_microsocks_is_verified(tmp_path, tls_echo):
    port, ca_file = tls_echo
    with microsocks(tmp_path, "bob", "pw") as proxy:
        socks = f"socks5:{LOOPBACK}:{port}:proxy=[tcp:{LOOPBACK}:{proxy}]:user=bob:password=pw"
        round_trip(f"tls:{LOOPBACK}:{port}:trustRoots={ca_file}:endpoint=[{socks}]")
        # The same tunnel with a name the certificate does not carry is refused.
        wrong = client_from_string(
            f"tls:example.com:{port}:trustRoots={ca_file}:endpoint=[{socks}]"
        )
        with pytest.raises(TLSVerificationError):
            wrong.open(timeout=10)


# -- dante -------------------------------------------------------------------------


def test_dante_socks5(tmp_path, echo_port):
    with dante(tmp_path) as proxy:
        round_trip(f"socks5:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]")


def test_dante_socks5_with_username_and_password(tmp_path, echo_port):
    with dante(tmp_path, username_auth=True) as proxy:
        round_trip(
            f"socks5:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]"
            f":user={DANTE_USER}:password={DANTE_PASSWORD}"
        )


def test_dante_socks5_wrong_password_and_no_credentials(tmp_path, echo_port):
    base = f"socks5:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{{proxy}}]"
    with dante(tmp_path, username_auth=True) as proxy:
        wrong = client_from_string(
            base.format(proxy=proxy) + f":user={DANTE_USER}:password=wrong pony"
        )
        with pytest.raises(ProxyError) as caught:
            wrong.open(timeout=10)
        with pytest.raises(ProxyError, match="requires authentication"):
            client_from_string(base.format(proxy=proxy)).open(timeout=10)
    message = str(caught.value)
    assert "user or password refused" in message and "wrong pony" not in message


def test_dante_socks5_refused_target(tmp_path):
    target = refused_port()
    with dante(tmp_path) as proxy:
        endpoint = client_from_string(f"socks5:{LOOPBACK}:{target}:proxy=[tcp:{LOOPBACK}:{proxy}]")
        with pytest.raises(ProxyError, match=r"connection refused \(reply 5\)"):
            endpoint.open(timeout=10)


def test_tls_over_dante_socks5(tmp_path, tls_echo):
    port, ca_file = tls_echo
    with dante(tmp_path) as proxy:
        socks = f"socks5:{LOOPBACK}:{port}:proxy=[tcp:{LOOPBACK}:{proxy}]"
        round_trip(f"tls:{LOOPBACK}:{port}:trustRoots={ca_file}:endpoint=[{socks}]")


def test_dante_socks4(tmp_path, echo_port):
    with dante(tmp_path) as proxy:
        round_trip(f"socks4a:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]:user=me")


def test_dante_socks4_with_a_name_resolved_locally(tmp_path, echo_port):
    with dante(tmp_path) as proxy:
        round_trip(f"socks4a:localhost:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]:resolve=local")


def test_dante_socks4_refused_target(tmp_path):
    target = refused_port()
    with dante(tmp_path) as proxy:
        endpoint = client_from_string(f"socks4a:{LOOPBACK}:{target}:proxy=[tcp:{LOOPBACK}:{proxy}]")
        with pytest.raises(ProxyError, match=r"request rejected or failed \(reply 91\)"):
            endpoint.open(timeout=10)


# -- tinyproxy ---------------------------------------------------------------------


def test_tinyproxy_connect(tmp_path, echo_port):
    with tinyproxy(tmp_path, [echo_port]) as proxy:
        round_trip(f"httpconnect:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]")


def test_tinyproxy_basic_auth(tmp_path, echo_port):
    # tinyproxy's BasicAuth line cannot hold a space in the password.
    with tinyproxy(tmp_path, [echo_port], "bob", "right-horse") as proxy:
        round_trip(
            f"httpconnect:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]"
            ":user=bob:password=right-horse"
        )


@pytest.mark.parametrize(
    ("credentials", "status"),
    [("", "407 Proxy Authentication Required"), (":user=bob:password=wrong pony", " 401 ")],
)
def test_tinyproxy_refuses_missing_or_wrong_credentials(tmp_path, echo_port, credentials, status):
    with tinyproxy(tmp_path, [echo_port], "bob", "right-horse") as proxy:
        endpoint = client_from_string(
            f"httpconnect:{LOOPBACK}:{echo_port}:proxy=[tcp:{LOOPBACK}:{proxy}]{credentials}"
        )
        with pytest.raises(ProxyError) as caught:
            endpoint.open(timeout=10)
    assert f"HTTP proxy {LOOPBACK}:{proxy} refused CONNECT to {LOOPBACK}:{echo_port}" in str(
        caught.value
    )
    assert status in caught.value.reply  # the status line, quoted
    assert "wrong pony" not in str(caught.value)


def test_tinyproxy_refused_target(tmp_path):
    target = refused_port()
    with tinyproxy(tmp_path, [target]) as proxy:
        endpoint = client_from_string(
            f"httpconnect:{LOOPBACK}:{target}:proxy=[tcp:{LOOPBACK}:{proxy}]"
        )
        with pytest.raises(ProxyError) as caught:
            endpoint.open(timeout=10)
    assert caught.value.reply.startswith("HTTP/1.")
    assert caught.value.reply.split()[1][0] == "5"  # tinyproxy: a 5xx for an unreachable target


def test_tls_over_tinyproxy(tmp_path, tls_echo):
    port, ca_file = tls_echo
    with tinyproxy(tmp_path, [port]) as proxy:
        tunnel = f"httpconnect:{LOOPBACK}:{port}:proxy=[tcp:{LOOPBACK}:{proxy}]"
        round_trip(f"tls:{LOOPBACK}:{port}:trustRoots={ca_file}:endpoint=[{tunnel}]")


def test_tinyproxy_reached_over_tls(tmp_path, echo_port, tls_echo):
    """An HTTPS proxy: tinyproxy behind greenpoint's own TLS terminator, so the
    CONNECT and its answer travel over TLS (read without peeking)."""
    from _tls_helpers import make_certs

    from greenpoint.cli._relay import Relay

    (tmp_path / "proxy-certs").mkdir()
    certs = make_certs(tmp_path / "proxy-certs")
    with tinyproxy(tmp_path, [echo_port, tls_echo[0]]) as proxy:
        relay = Relay(client_from_string(f"tcp:{LOOPBACK}:{proxy}"))
        front = server_from_string(
            f"ssl:0:interface={LOOPBACK}:privateKey={certs.server_pem}"
        ).serve(relay)
        try:
            tls_proxy = f"tls:localhost:{front.get_host().port}:trustRoots={certs.ca_file}"
            tls_proxy += f":endpoint=[tcp:{LOOPBACK}:{front.get_host().port}]"
            round_trip(f"httpconnect:{LOOPBACK}:{echo_port}:proxy=[{tls_proxy}]")
            # TLS to the target inside the TLS to the proxy.
            tls_port, tls_ca = tls_echo
            tunnel = f"httpconnect:{LOOPBACK}:{tls_port}:proxy=[{tls_proxy}]"
            round_trip(f"tls:{LOOPBACK}:{tls_port}:trustRoots={tls_ca}:endpoint=[{tunnel}]")
            wrong_ca = make_certs(tmp_path).ca_file  # another CA: the proxy is refused
            bad = tls_proxy.replace(certs.ca_file, wrong_ca)
            endpoint = client_from_string(f"httpconnect:{LOOPBACK}:{echo_port}:proxy=[{bad}]")
            with pytest.raises(TLSVerificationError, match="cannot reach the HTTP proxy") as caught:
                endpoint.open(timeout=10)
            assert caught.value.reason  # the TLS error's own details survive the re-wording
        finally:
            front.stop_listening(timeout=1)


def test_microsocks_reaches_an_ipv6_target(tmp_path):
    try:
        port = server_from_string("tcp6:0:interface=[::1]:ipv6only=1").serve(echo)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        with microsocks(tmp_path) as proxy:
            round_trip(f"socks5:[::1]:{port.get_host().port}:proxy=[tcp:{LOOPBACK}:{proxy}]")
    finally:
        port.stop_listening(timeout=1)
