"""haproxy: the wrapper endpoint and listener over loopback, the description, the client."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import socket
import struct
import time

import gevent
import pytest
from gevent import socket as gsocket

from greenpoint import (
    ClientEndpoint,
    DescriptionError,
    HAProxyClientEndpoint,
    HAProxyServerEndpoint,
    IPv4Address,
    IPv6Address,
    ProxiedStream,
    ProxyHeaderError,
    ProxyTLV,
    ServerEndpoint,
    encode_proxy_header,
    register_server_parser,
    server_from_string,
    wrap_haproxy,
    wrap_haproxy_client,
)
from greenpoint._params import Param, number
from greenpoint._proxied_stream import read_proxy_header
from greenpoint._registry import _SERVERS, EndpointParser
from greenpoint.endpoints.haproxy import DEFAULT_HEADER_TIMEOUT, HAProxyListener, _allowed

CLIENT = IPv4Address("203.0.113.7", 51000)
ORIGINAL_DESTINATION = IPv4Address("198.51.100.1", 443)


@dataclasses.dataclass
class LoopbackServer(ServerEndpoint):
    """A plain gevent listening socket on loopback, port 0 (stands in for tcp:)."""

    host: str = "127.0.0.1"
    timeout: float | None = None  # only to show that inner keywords stay inner

    def bind(self):
        sock = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        sock.listen(16)
        return sock

    def description_parts(self):
        kwargs = {} if self.timeout is None else {"timeout": f"{self.timeout:g}"}
        return "gptestloop", (self.host,), kwargs


@dataclasses.dataclass
class LoopbackClient(ClientEndpoint):
    port: int

    def open(self, timeout=None):
        return gsocket.create_connection(("127.0.0.1", self.port), timeout=timeout or 5)

    def description_parts(self):
        return "gptestclient", ("127.0.0.1", self.port), {}


@pytest.fixture
def test_prefix():
    register_server_parser(
        "gptestloop",
        EndpointParser(
            "gptestloop",
            (Param("host", positional=True, default="127.0.0.1"), Param("timeout", number, None)),
            LoopbackServer,
        ),
        replace=True,
    )
    yield "gptestloop"
    _SERVERS.registered.pop("gptestloop", None)


@contextlib.contextmanager
def listening(**options):
    listener = wrap_haproxy(LoopbackServer(), **options).bind()
    try:
        yield listener, listener.getsockname()[1]
    finally:
        listener.close()


@contextlib.contextmanager
def connected(port):
    sock = gsocket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        yield sock
    finally:
        sock.close()


def prepare_in_greenlet(listener):
    """What the serve loop does: raw accept here, prepare in the connection's greenlet."""
    stream, address = listener.accept_unprepared()
    return gevent.spawn(listener.prepare, stream, address)


def recv_exactly(stream, size):
    data = b""
    while len(data) < size:
        chunk = stream.recv(size - len(data))
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


# --- the header, however it arrives ------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("version", [1, 2])
def test_header_split_across_many_reads_gives_the_original_addresses(version):
    header = encode_proxy_header(CLIENT, ORIGINAL_DESTINATION, version=version)
    with listening() as (listener, port), connected(port) as client:
        pending = prepare_in_greenlet(listener)
        for i in range(0, len(header), 5):  # separate TCP segments, a few ms apart
            client.sendall(header[i : i + 5])
            gevent.sleep(0.005)  # the sleep is the behaviour: the header trickles in
        client.sendall(b"hello")
        stream, address = pending.get(timeout=5)
        with stream:
            assert address == CLIENT
            assert stream.getPeer() == CLIENT
            assert stream.getHost() == ORIGINAL_DESTINATION
            assert stream.getpeername() == ("203.0.113.7", 51000)
            assert stream.getsockname() == ("198.51.100.1", 443)
            assert stream.proxy_header.version == version
            assert stream.proxy_address == IPv4Address("127.0.0.1", client.getsockname()[1])
            assert recv_exactly(stream, 5) == b"hello"
            stream.sendall(b"echo")
            assert recv_exactly(client, 4) == b"echo"


@pytest.mark.timeout(10)
def test_application_bytes_sent_with_the_header_stay_on_the_socket():
    header = encode_proxy_header(CLIENT, ORIGINAL_DESTINATION)
    with listening() as (listener, port), connected(port) as client:
        client.sendall(header + b"GET / HTTP/1.0\r\n\r\n")
        gevent.sleep(0.05)  # the setup: it all arrives before the one read under test
        stream, address = listener.accept()
        with stream:
            # Read exactly the header off the kernel buffer: nothing to replay, so even
            # a TLS layer that reads the file descriptor sees the request.
            assert stream.pending() == 0
            assert stream.makefile("rb").readline() == b"GET / HTTP/1.0\r\n"


@pytest.mark.timeout(10)
def test_tlvs_reach_the_handler():
    header = encode_proxy_header(
        CLIENT,
        ORIGINAL_DESTINATION,
        tlvs=[(ProxyTLV.ALPN, b"h2"), (ProxyTLV.AUTHORITY, b"example.org")],
        checksum=True,
    )
    with listening() as (listener, port), connected(port) as client:
        client.sendall(header)
        stream, _ = listener.accept()
        with stream:
            assert stream.proxy_header.alpn == b"h2"
            assert stream.proxy_header.authority == "example.org"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("header", [encode_proxy_header(), b"PROXY UNKNOWN\r\n"])
def test_local_or_unknown_header_keeps_the_connection_addresses(header):
    with listening() as (listener, port), connected(port) as client:
        client.sendall(header)
        stream, address = listener.accept()
        with stream:
            assert address == IPv4Address("127.0.0.1", client.getsockname()[1])
            assert stream.getPeer() == address
            assert stream.getHost() == IPv4Address("127.0.0.1", port)
            assert not stream.proxy_header.proxied


# --- what gets refused -----------------------------------------------------------------


@pytest.mark.timeout(10)
def test_silent_client_is_closed_at_the_deadline_without_holding_up_others(caplog):
    caplog.set_level(logging.WARNING, logger="greenpoint.haproxy")
    # The deadline is long enough (2 s) that a loaded machine serves the prompt client
    # well before it; "not held up" is then an order, not a time: the prompt one was
    # served while the silent one still waited.
    with listening(timeout=2) as (listener, port), connected(port) as silent:
        started = time.monotonic()
        waiting_for_silent = prepare_in_greenlet(listener)
        with connected(port) as prompt:
            waiting_for_prompt = prepare_in_greenlet(listener)
            prompt.sendall(encode_proxy_header(CLIENT, ORIGINAL_DESTINATION, version=1))
            stream, address = waiting_for_prompt.get(timeout=5)
            stream.close()
        assert address == CLIENT
        assert not waiting_for_silent.ready()
        waiting_for_silent.join(timeout=5)
        assert isinstance(waiting_for_silent.exception, ProxyHeaderError)
        assert "no complete PROXY header within 2 s" in str(waiting_for_silent.exception)
        assert time.monotonic() - started >= 1.95
        assert silent.recv(10) == b""  # closed by the server
    assert "no complete PROXY header within 2 s" in caplog.text


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "not a PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 080\r\n", "not a port number"),
        (b"PROXY TCP4 " + b"9" * 120, "no CRLF in its first 107"),
        (encode_proxy_header()[:12] + b"\x21\x11\xff\xff", "longer than the 16384 allowed"),
    ],
)
def test_malformed_or_oversized_header_is_logged_and_closed(data, why, caplog):
    caplog.set_level(logging.WARNING, logger="greenpoint.haproxy")
    with listening() as (listener, port), connected(port) as client:
        client.sendall(data)
        waiting = prepare_in_greenlet(listener)
        with pytest.raises(ProxyHeaderError, match=why):
            waiting.get(timeout=5)
        with contextlib.suppress(ConnectionResetError):  # unread bytes make it a reset
            assert client.recv(10) == b""
    assert why in caplog.text
    assert "127.0.0.1" in caplog.text  # the log names the proxy


@pytest.mark.timeout(10)
def test_connection_closed_mid_header_is_reported():
    with listening() as (listener, port):
        with connected(port) as client:
            client.sendall(b"PROXY TCP4")
        waiting = prepare_in_greenlet(listener)
        with pytest.raises(ProxyHeaderError, match="closed after 10 bytes"):
            waiting.get(timeout=5)


@pytest.mark.timeout(10)
def test_connection_reset_mid_header_is_reported():
    with listening() as (listener, port):
        client = gsocket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(b"PROXY TCP4")
        waiting = prepare_in_greenlet(listener)
        gevent.idle()  # every greenlet has run: prepare has read "PROXY TCP4" and waits
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # with a zero linger: a reset
        with pytest.raises(ProxyHeaderError, match="connection failed|closed after"):
            waiting.get(timeout=5)


@pytest.mark.timeout(10)
def test_source_outside_the_allowlist_is_refused_before_reading(caplog):
    caplog.set_level(logging.WARNING, logger="greenpoint.haproxy")
    with listening(allow="10.0.0.0/8, fd00::/8") as (listener, port), connected(port) as client:
        client.sendall(encode_proxy_header(CLIENT, ORIGINAL_DESTINATION))
        waiting = prepare_in_greenlet(listener)
        with pytest.raises(ProxyHeaderError, match="not in the allowed proxy networks"):
            waiting.get(timeout=5)
        with contextlib.suppress(ConnectionResetError):
            assert client.recv(10) == b""
    assert "127.0.0.1" in caplog.text
    assert "refused" in caplog.text
    assert "10.0.0.0/8, fd00::/8" in caplog.text


@pytest.mark.timeout(10)
def test_source_inside_the_allowlist_is_served():
    with (
        listening(allow=["10.0.0.0/8", "127.0.0.0/8"]) as (listener, port),
        connected(port) as client,
    ):
        client.sendall(encode_proxy_header(CLIENT, ORIGINAL_DESTINATION))
        stream, address = listener.accept()
        stream.close()
        assert address == CLIENT


@pytest.mark.parametrize(
    ("proxy", "allowed"),
    [
        (IPv4Address("10.1.2.3", 1), True),
        (IPv4Address("192.0.2.1", 1), False),
        (IPv6Address("fd00::5", 1), True),
        (IPv6Address("fe80::1%eth0", 1), False),
        (IPv6Address("2001:db8::1", 1), False),
    ],
)
def test_allowlist_matches_the_proxy_address(proxy, allowed):
    networks = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert _allowed(proxy, networks) is allowed
    assert _allowed(proxy, None) is True


@pytest.mark.timeout(10)
def test_accept_skips_bad_connections():
    with listening() as (listener, port), connected(port) as bad, connected(port) as good:
        bad.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        good.sendall(encode_proxy_header(CLIENT, ORIGINAL_DESTINATION))
        stream, address = listener.accept()
        stream.close()
        assert address == CLIENT


# --- streams that are not sockets, and a wrapped listener's own preparation ---------------


class NotASocket:
    """A connected stream that is not a socket object (so the header cannot be peeked)."""

    def __init__(self, sock):
        self._sock = sock

    def __getattr__(self, name):
        return getattr(self._sock, name)


class GreetingListener:
    """A wrapped listener with its own prepare step (stands in for TLS): it reads a
    ``HELLO\\n`` line, which must come after the PROXY header."""

    def __init__(self, sock, wrap_stream):
        self.sock = sock
        self.wrap_stream = wrap_stream
        self.prepared_with = None

    def accept_unprepared(self):
        sock, address = self.sock.accept()
        return self.wrap_stream(sock), address

    def prepare(self, stream, address):
        line = b""
        while not line.endswith(b"\n"):
            chunk = stream.recv(1)
            assert chunk
            line += chunk
        assert line == b"HELLO\n"
        self.prepared_with = (stream.getPeer(), address)
        return NotASocket(stream), address

    def close(self):
        self.sock.close()

    def getsockname(self):
        return self.sock.getsockname()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("wrap_stream", [lambda s: s, NotASocket], ids=["socket", "not-a-socket"])
def test_wrapped_listener_prepares_after_the_header_and_nothing_is_lost(wrap_stream):
    inner = LoopbackServer().bind()
    listener = HAProxyListener(GreetingListener(inner, wrap_stream))
    try:
        with connected(listener.getsockname()[1]) as client:
            client.sendall(encode_proxy_header(CLIENT, ORIGINAL_DESTINATION) + b"HELLO\nrest")
            gevent.sleep(0.05)  # the setup: one read gets it all on the not-a-socket path
            stream, address = listener.accept()
            with contextlib.closing(stream):
                assert address == CLIENT
                assert listener.inner.prepared_with == (CLIENT, CLIENT)
                assert stream.proxy_header.source == CLIENT
                assert recv_exactly(stream, 4) == b"rest"
    finally:
        listener.close()


@pytest.mark.timeout(10)
def test_bytes_read_past_the_header_are_replayed_by_every_read_method():
    left, right = gsocket.socketpair()
    with left, right:
        left.sendall(encode_proxy_header(CLIENT, ORIGINAL_DESTINATION, version=1))
        left.sendall(b"line one\nline two\nabcdef")  # a socket pair: already readable
        raw = NotASocket(right)
        header, rest = read_proxy_header(raw, timeout=2)
        assert rest == b"line one\nline two\nabcdef"
        stream = ProxiedStream(raw, header, IPv4Address("127.0.0.1", 1), rest)
        assert stream.recv(4, socket.MSG_PEEK) == b"line"
        assert stream.pending() == len(rest)
        text = stream.makefile("r", encoding="ascii")
        assert text.readline() == "line one\n"
        # The buffered file took the rest of the replay; what it did not return is in it.
        assert text.readline() == "line two\n"
        buffer = bytearray(3)
        left.sendall(b"xyz")
        assert text.read(6) == "abcdef"
        assert stream.recv_into(buffer) == 3
        assert bytes(buffer) == b"xyz"
        text.close()
        assert stream.fileno() == right.fileno()  # the stream stays open


def test_replay_then_recv_into_with_a_size():
    left, right = gsocket.socketpair()
    with left, right:
        header = encode_proxy_header(CLIENT, ORIGINAL_DESTINATION)
        stream = ProxiedStream(right, *parse_with_rest(header, b"0123456789"))
        buffer = bytearray(8)
        assert stream.recv_into(buffer, 4) == 4
        assert bytes(buffer[:4]) == b"0123"
        assert stream.recv(100) == b"456789"
        left.sendall(b"live")
        assert stream.recv(100) == b"live"


def parse_with_rest(header_bytes, rest):
    from greenpoint._proxy_header import parse_header

    header, _ = parse_header(header_bytes)
    return header, IPv4Address("127.0.0.1", 1), rest


# --- descriptions ----------------------------------------------------------------------


def test_description_wraps_any_server_description(test_prefix):
    endpoint = server_from_string("haproxy:gptestloop:127.0.0.1")
    assert endpoint == HAProxyServerEndpoint(LoopbackServer("127.0.0.1"))
    assert endpoint.timeout == DEFAULT_HEADER_TIMEOUT
    assert endpoint.allow is None


def test_own_keywords_come_before_the_wrapped_description(test_prefix):
    endpoint = server_from_string(
        "HAProxy:timeout=2.5:allow=[10.0.0.0/8,fd00::/8]:maxSize=4096:gptestloop:timeout=7"
    )
    assert endpoint.timeout == 2.5
    assert endpoint.allow == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert endpoint.max_size == 4096
    assert endpoint.endpoint == LoopbackServer("127.0.0.1", timeout=7.0)


@pytest.mark.parametrize(
    "description",
    [
        "haproxy:gptestloop:127.0.0.1",
        "haproxy:timeout=0.25:gptestloop:127.0.0.1",
        "haproxy:timeout=none:gptestloop:127.0.0.1",
        "haproxy:allow=[10.0.0.0/8,::1]:gptestloop:127.0.0.1:timeout=3",
        r"haproxy:allow=192.168.0.0/16\,fd00\:\:/8:gptestloop:127.0.0.1",
        "haproxy:maxSize=100:haproxy:gptestloop:127.0.0.1",
    ],
)
def test_str_gives_back_an_equal_endpoint(test_prefix, description):
    endpoint = server_from_string(description)
    assert server_from_string(str(endpoint)) == endpoint


def test_str_only_names_non_default_keys(test_prefix):
    assert str(wrap_haproxy(LoopbackServer())) == "haproxy:gptestloop:127.0.0.1"
    assert (
        str(wrap_haproxy(LoopbackServer(), timeout=1, allow="::1,10.0.0.0/8"))
        == "haproxy:timeout=1:allow=[::1/128,10.0.0.0/8]:gptestloop:127.0.0.1"
    )


@pytest.mark.parametrize(
    ("description", "parameter", "why"),
    [
        ("haproxy:", None, "missing the wrapped server description"),
        ("haproxy:timeout=3", None, "missing the wrapped server description"),
        ("haproxy:timeout=soon:gptestloop", "timeout", "number of seconds"),
        ("haproxy:timeout=0:gptestloop", "timeout", "more than 0"),
        ("haproxy:allow=10.0.0.0/33:gptestloop", "allow", "not an IP network"),
        ("haproxy:allow=:gptestloop", "allow", "not an IP network"),
        ("haproxy:alow=10.0.0.0/8:gptestloop", "alow", "did you mean 'allow'"),
        ("haproxy:maxSize=8:gptestloop", "maxSize", "at least 16"),
    ],
)
def test_bad_descriptions_name_the_parameter(test_prefix, description, parameter, why):
    with pytest.raises(DescriptionError, match=why) as caught:
        server_from_string(description)
    assert caught.value.prefix == "haproxy"
    assert caught.value.parameter == parameter


def test_errors_in_the_wrapped_description_are_reported_as_such(test_prefix):
    with pytest.raises(DescriptionError, match="unknown server endpoint type 'gptestlop'"):
        server_from_string("haproxy:timeout=1:gptestlop:127.0.0.1")


def test_bad_python_arguments_are_refused():
    with pytest.raises(ValueError, match="timeout must be more than zero seconds, not 0"):
        wrap_haproxy(LoopbackServer(), timeout=0)
    with pytest.raises(ValueError, match="max_size must be an int of 16 or more, not 8"):
        wrap_haproxy(LoopbackServer(), max_size=8)
    with pytest.raises(ValueError, match="not an IP network"):
        wrap_haproxy(LoopbackServer(), allow=["example.com"])


# --- the client side -------------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("version", [1, 2])
def test_client_wrapper_sends_the_header_first(version):
    with listening() as (listener, port):
        endpoint = wrap_haproxy_client(
            LoopbackClient(port), CLIENT, ORIGINAL_DESTINATION, version=version
        )
        assert isinstance(endpoint, HAProxyClientEndpoint)
        client = endpoint.open(timeout=5)
        with client:
            client.sendall(b"ping")
            stream, address = listener.accept()
            with stream:
                assert address == CLIENT
                assert stream.getHost() == ORIGINAL_DESTINATION
                assert recv_exactly(stream, 4) == b"ping"


@pytest.mark.timeout(10)
def test_client_wrapper_chains_a_received_header_onwards():
    # A relay passes on the address and TLVs it was given.
    with listening() as (first, first_port), listening() as (second, second_port):
        sent = wrap_haproxy_client(
            LoopbackClient(first_port), CLIENT, ORIGINAL_DESTINATION, tlvs=[(0xEA, b"id")]
        ).open()
        with sent:
            incoming, address = first.accept()
            with incoming:
                header = incoming.proxy_header
                onward = wrap_haproxy_client(
                    LoopbackClient(second_port), header.source, header.destination, tlvs=header.tlvs
                ).open()
                with onward:
                    relayed, relayed_address = second.accept()
                    with relayed:
                        assert relayed_address == CLIENT
                        assert relayed.proxy_header.tlv(0xEA) == b"id"


def test_client_wrapper_refuses_bad_addresses_when_made():
    with pytest.raises(ValueError, match="UNIX"):
        from greenpoint import UNIXAddress

        wrap_haproxy_client(LoopbackClient(1), UNIXAddress("/a"), UNIXAddress("/b"), version=1)


def test_the_wrappers_are_named_as_the_tls_ones_and_keep_their_first_names():
    import greenpoint

    # Issue 19: wrap_server_*/wrap_client_* as for TLS; the first names stay.
    assert greenpoint.wrap_server_haproxy is greenpoint.wrap_haproxy is greenpoint.proxyEndpoint
    assert greenpoint.wrap_client_haproxy is greenpoint.wrap_haproxy_client
    server = greenpoint.wrap_server_haproxy(
        greenpoint.TCP4ServerEndpoint(0, interface="127.0.0.1"), timeout=2
    )
    assert isinstance(server, greenpoint.HAProxyServerEndpoint)
    assert greenpoint.server_from_string(str(server)) == server
    client = greenpoint.wrap_client_haproxy(greenpoint.TCP4ClientEndpoint("127.0.0.1", 80))
    assert isinstance(client, greenpoint.HAProxyClientEndpoint)
