"""socks5:, socks4a: and httpconnect: endpoints: descriptions, and the faults a
small scripted proxy of our own can produce (garbage, close, stall)."""

from __future__ import annotations

import contextlib
import socket as stdsocket
import time

import gevent
import gevent.event
import pytest
from _wait_helpers import wait_until
from gevent import socket as gsocket

from greenpoint import client_from_string
from greenpoint.cli._explain import explain, format_explanation
from greenpoint.cli._main import main
from greenpoint.endpoints._tcp_endpoints import TCP4ClientEndpoint
from greenpoint.endpoints.proxy import (
    HTTPConnectClientEndpoint,
    SOCKS4aClientEndpoint,
    SOCKS5ClientEndpoint,
)
from greenpoint.errors import (
    ConnectRefusedError,
    ConnectTimeoutError,
    DescriptionError,
    ProxyError,
)

LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def scripted_proxy(script):
    """A listener on loopback; each connection runs ``script(conn, seen)``.

    ``seen`` collects every byte string the script read, for the test to check.
    """
    listener = gsocket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    seen: list[bytes] = []
    connections: list = []

    def serve():
        while True:
            conn, _ = listener.accept()
            connections.append(conn)
            gevent.spawn(script, conn, seen)

    server = gevent.spawn(serve)
    try:
        yield listener.getsockname()[1], seen
    finally:
        server.kill()
        for conn in connections:
            conn.close()
        listener.close()


def read(conn, size, seen):
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    seen.append(data)
    return data


def socks5_granting(conn, seen):
    """A SOCKS5 proxy that grants and then echoes (no real target behind it)."""
    read(conn, 3, seen)
    conn.sendall(b"\x05\x00")
    head = read(conn, 5, seen)
    length = {1: 4 + 2 - 1, 4: 16 + 2 - 1, 3: head[4] + 2}[head[3]]
    read(conn, length, seen)
    conn.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x01")
    while data := conn.recv(1024):
        conn.sendall(data)


def tcp(port):
    return f"tcp:{LOOPBACK}:{port}"


# -- descriptions ------------------------------------------------------------------

ROUND_TRIPS = [
    "socks5:example.com:443:proxy=[tcp:127.0.0.1:1080]",
    "socks5:[2001:db8::1]:443:proxy=[tcp:[::1]:1080]:resolve=local:timeout=2.5",
    "socks5:example.com:443:proxy=[tcp:proxy.example:1080]:user=bob",
    "socks4a:example.com:80:proxy=[tcp:127.0.0.1:1080]:user=me",
    "httpconnect:example.com:443:proxy=[tls:proxy.example:3128]",
    "tls:example.com:443:endpoint=[socks5:example.com:443:proxy=[tcp:127.0.0.1:1080]]",
    "socks5:example.com:443:proxy=[socks5:hop.example:1080:proxy=[tcp:127.0.0.1:1080]]",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_description_round_trips_through_str(text):
    if "user=bob" in text:
        text += ":password=x"
    endpoint = client_from_string(text)
    again = client_from_string(str(endpoint))
    if "password" in text:  # written as ***: everything else comes back
        assert again.password == "***"
        again.password = endpoint.password
    assert again == endpoint
    assert str(again) == str(endpoint)


def test_brackets_nest_and_the_canonical_form_uses_them():
    endpoint = client_from_string(
        "tls:example.com:443:endpoint=[socks5:example.com:443:proxy=[tcp:[::1]:1080]]"
    )
    assert str(endpoint) == (
        "tls:example.com:endpoint=[socks5:example.com:443:proxy=[tcp6:[::1]:1080]]"
    )
    socks = endpoint.endpoint
    assert isinstance(socks, SOCKS5ClientEndpoint)
    assert (socks.host, socks.port, socks.proxy.host, socks.proxy.port) == (
        "example.com", 443, "::1", 1080,
    )  # fmt: skip


def test_classes_take_the_proxy_endpoint_as_an_argument():
    proxy = TCP4ClientEndpoint(LOOPBACK, 1080, timeout=7)
    endpoint = SOCKS5ClientEndpoint("example.com", 443, proxy, "bob", "secret")
    assert endpoint.timeout == 7  # inherited from the proxy endpoint
    assert str(endpoint) == (
        "socks5:example.com:443:proxy=[tcp4:127.0.0.1:1080:timeout=7]:user=bob:password=***"
    )
    assert HTTPConnectClientEndpoint("example.com", 443, proxy).prefix == "httpconnect"
    assert SOCKS4aClientEndpoint("example.com", 80, proxy, "me").user == "me"


SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    "text",
    [
        f"socks5:example.com:443:proxy=[tcp:127.0.0.1:1080]:user=bob:password={SECRET}",
        f"httpconnect:example.com:443:proxy=[tcp:127.0.0.1:1080]:user=bob:password={SECRET}",
        f"tls:example.com:443:endpoint=[httpconnect:example.com:443:"
        f"proxy=[tcp:127.0.0.1:1080]:user=bob:password={SECRET}]",
    ],
)
def test_the_password_never_shows(text, capsys):
    endpoint = client_from_string(text)
    assert SECRET not in str(endpoint)
    assert SECRET not in repr(endpoint)
    assert SECRET not in format_explanation(explain(text, "client"))
    assert main(["check", "--client", text]) == 0
    assert main(["check", "--client", text + ":bogus=1"]) != 0
    out, err = capsys.readouterr()
    assert "password=***" in out
    assert SECRET not in out + err
    assert "bogus" in err


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("socks5:example.com:443", "missing proxy"),
        ("socks5:example.com:443:proxy=[bogus:1]", "bad proxy=[bogus:1]"),
        ("socks5:example.com:443:proxy=[tcp:127.0.0.1:1080]:password=x", "both user and password"),
        ("socks5:example.com:443:proxy=[tcp:127.0.0.1:1080]:resolve=here", "proxy, local"),
        ("socks5:example.com:0:proxy=[tcp:127.0.0.1:1080]", "at least 1"),
        ("socks4a:example.com:80:proxy=[tcp:127.0.0.1:1080]:password=x", "'password' is not"),
        ("socks4a:[::1]:80:proxy=[tcp:127.0.0.1:1080]", "cannot reach the IPv6 address"),
        ("httpconnect:example.com:80:proxy=[tcp:127.0.0.1:1080]:user=a\\:b:password=x", "':'"),
        ("socks5:example.com:443:proxy=[tcp:127.0.0.1:1080", "unclosed '['"),
    ],
)
def test_bad_descriptions_say_what_is_wrong(text, words):
    with pytest.raises(DescriptionError) as caught:
        client_from_string(text)
    assert words in str(caught.value)


def test_a_bad_nested_description_does_not_leak_its_password():
    text = f"socks5:h:1:proxy=[socks5:h:2:proxy=[tcp:x]:user=u:password={SECRET}]"
    with pytest.raises(DescriptionError) as caught:
        client_from_string(text)
    assert SECRET not in str(caught.value)
    assert "password=***" in str(caught.value)


# -- through a scripted proxy ------------------------------------------------------


def test_socks5_sends_the_name_and_the_tunnel_carries_bytes():
    with scripted_proxy(socks5_granting) as (port, seen):
        endpoint = client_from_string(f"socks5:example.com:80:proxy=[{tcp(port)}]")
        with endpoint.open(timeout=5) as stream:
            stream.sendall(b"ping")
            assert stream.recv(10) == b"ping"
    assert seen[:3] == [b"\x05\x01\x00", b"\x05\x01\x00\x03\x0b", b"example.com\x00\x50"]


def test_socks5_resolve_local_sends_the_address():
    def resolver(host, port, family=0, type=0, proto=0, flags=0):
        assert host == "example.com"
        return [(stdsocket.AF_INET, stdsocket.SOCK_STREAM, 6, "", ("192.0.2.7", port))]

    with scripted_proxy(socks5_granting) as (port, seen):
        proxy = TCP4ClientEndpoint(LOOPBACK, port)
        endpoint = SOCKS5ClientEndpoint(
            "example.com", 80, proxy, resolve="local", resolver=resolver
        )
        endpoint.open(timeout=5).close()
    assert seen[1] == b"\x05\x01\x00\x01\xc0"  # ATYP 1: an IPv4 address
    assert seen[2] == b"\x00\x02\x07\x00\x50"


def test_socks4a_sends_the_name():
    def socks4a(conn, seen):
        read(conn, 8 + len(b"me\0") + len(b"example.com\0"), seen)
        conn.sendall(b"\x00\x5a\x00\x00\x00\x00\x00\x00")
        conn.sendall(conn.recv(10))

    with scripted_proxy(socks4a) as (port, seen):
        endpoint = client_from_string(f"socks4a:example.com:80:proxy=[{tcp(port)}]:user=me")
        with endpoint.open(timeout=5) as stream:
            stream.sendall(b"ok")
            assert stream.recv(10) == b"ok"
    assert seen == [b"\x04\x01\x00\x50\x00\x00\x00\x01me\x00example.com\x00"]


def test_httpconnect_leaves_bytes_after_the_head_to_the_tunnel():
    # A server that speaks first (SSH, SMTP) may have its banner in the same segment.
    def proxy(conn, seen):
        request = b""
        while not request.endswith(b"\r\n\r\n"):
            request += conn.recv(1024)
        seen.append(request)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-banner\r\n")
        conn.recv(10)

    with scripted_proxy(proxy) as (port, seen):
        endpoint = client_from_string(
            f"httpconnect:example.com:22:proxy=[{tcp(port)}]:user=Aladdin:password=open sesame"
        )
        with endpoint.open(timeout=5) as stream:
            assert stream.recv(100) == b"SSH-2.0-banner\r\n"
    assert seen[0] == (
        b"CONNECT example.com:22 HTTP/1.1\r\nHost: example.com:22\r\n"
        b"Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
    )


def garbage(conn, seen):
    read(conn, 1, seen)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def closes_mid_negotiation(conn, seen):
    read(conn, 3, seen)
    conn.sendall(b"\x05")  # half the method choice, then gone
    conn.close()


def stalls(conn, seen):
    read(conn, 3, seen)
    gevent.sleep(30)


def http_garbage(conn, seen):
    read(conn, 10, seen)
    conn.sendall(b"\x05\x00garbage that is no HTTP")


def http_closes(conn, seen):
    read(conn, len(b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n"), seen)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    conn.close()


@pytest.mark.parametrize(
    ("prefix", "script", "words"),
    [
        ("socks5", garbage, "not a SOCKS5 reply"),
        ("socks5", closes_mid_negotiation, "closed the connection during the greeting"),
        ("socks4a", garbage, "not a SOCKS4 reply"),
        ("httpconnect", http_garbage, "not an HTTP response"),
        ("httpconnect", http_closes, "closed the connection during CONNECT"),
    ],
)
def test_faults_are_proxy_errors_naming_the_proxy_and_the_step(prefix, script, words):
    with scripted_proxy(script) as (port, _seen):
        endpoint = client_from_string(f"{prefix}:example.com:80:proxy=[{tcp(port)}]")
        with pytest.raises(ProxyError) as caught:
            endpoint.open(timeout=5)
    error = caught.value
    assert words in str(error)
    assert f"proxy 127.0.0.1:{port}" in str(error)
    assert "example.com:80" in str(error)
    (attempt,) = error.attempts
    assert attempt.phase == "proxy"
    assert attempt.address == f"127.0.0.1:{port}"
    assert error.proxy == f"127.0.0.1:{port}"


@pytest.mark.parametrize("prefix", ["socks5", "httpconnect"])
def test_a_stalled_proxy_is_a_timeout_within_the_deadline(prefix):
    with scripted_proxy(stalls) as (port, _seen):
        endpoint = client_from_string(f"{prefix}:example.com:80:proxy=[{tcp(port)}]")
        started = time.monotonic()
        with pytest.raises(ConnectTimeoutError) as caught:
            endpoint.open(timeout=0.3)
        elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 3  # the one deadline, not the proxy endpoint's 30 s
    assert "timed out" in str(caught.value)
    assert caught.value.attempts[0].phase == "proxy"


def test_the_description_timeout_is_the_deadline():
    with scripted_proxy(stalls) as (port, _seen):
        endpoint = client_from_string(f"socks5:example.com:80:proxy=[{tcp(port)}]:timeout=0.3")
        started = time.monotonic()
        with pytest.raises(ConnectTimeoutError):
            endpoint.open()
    assert time.monotonic() - started < 3


def test_a_caller_timeout_closes_the_proxy_connection_and_propagates():
    # The conftest fd check proves the proxy connection was closed.
    with scripted_proxy(stalls) as (port, _seen):
        endpoint = client_from_string(f"socks5:example.com:80:proxy=[{tcp(port)}]")
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.2):
            endpoint.open(timeout=10)


def test_a_killed_open_closes_the_proxy_connection():
    with scripted_proxy(stalls) as (port, seen):
        endpoint = client_from_string(f"httpconnect:example.com:80:proxy=[{tcp(port)}]")
        opener = gevent.spawn(endpoint.open, 10)
        wait_until(lambda: seen, what="the proxy to read the request")
        opener.kill()
        assert isinstance(opener.value, gevent.GreenletExit)


def test_a_proxy_that_is_not_listening_is_named():
    with socket_that_refuses() as port:
        endpoint = client_from_string(f"socks5:example.com:80:proxy=[{tcp(port)}]")
        with pytest.raises(ConnectRefusedError) as caught:
            endpoint.open(timeout=5)
    assert f"cannot reach the SOCKS5 proxy 127.0.0.1:{port} (for example.com:80)" in str(
        caught.value
    )


@contextlib.contextmanager
def socket_that_refuses():
    """A loopback port with nothing listening on it."""
    probe = gsocket.socket()
    probe.bind((LOOPBACK, 0))
    port = probe.getsockname()[1]
    try:
        yield port  # bound, not listening: connecting is refused
    finally:
        probe.close()


def test_relay_logs_name_the_proxy_without_its_password(caplog):
    from greenpoint.cli._relay import Relay

    with socket_that_refuses() as port:
        upstream = client_from_string(
            f"socks5:example.com:80:proxy=[{tcp(port)}]:user=bob:password={SECRET}"
        )
        relay = Relay(upstream)
        client, server = stdsocket.socketpair()
        with client, server, caplog.at_level("INFO", logger="greenpoint.relay"):
            relay(server, "client")
    assert "cannot reach the SOCKS5 proxy" in caplog.text
    assert "password=***" in caplog.text
    assert SECRET not in caplog.text


def test_protocols_run_through_a_proxy_too():
    from greenpoint import Protocol, connect_protocol

    received = gevent.event.AsyncResult()

    class Echoed(Protocol):
        def connectionMade(self):  # noqa: N802
            self.transport.write(b"hello protocol")

        def dataReceived(self, data):  # noqa: N802
            received.set(data)
            self.transport.loseConnection()

    with scripted_proxy(socks5_granting) as (port, _seen):
        endpoint = client_from_string(f"socks5:example.com:80:proxy=[{tcp(port)}]")
        connect_protocol(endpoint, Echoed(), timeout=5)
        assert received.get(timeout=5) == b"hello protocol"
