"""``greenpoint relay --send-proxy[-v2]``: the backend sees the original client.

Behind the relay: greenpoint's own ``haproxy:`` server, and real HAProxy
(``accept-proxy``) passing the address on to a ``haproxy:`` server in turn.
"""

from __future__ import annotations

import contextlib
import socket

import gevent.queue
import pytest
from _cli_helpers import Child, greenpoint_command
from _haproxy_helpers import HAPROXY, haproxy_process
from _tls_helpers import make_certs
from gevent import socket as gsocket
from gevent import ssl as gssl

from greenpoint import client_from_string, server_from_string
from greenpoint._address import IPv4Address, PipeAddress, UNIXAddress
from greenpoint._proxy_header import parse_header
from greenpoint._proxy_header_encode import encode_proxy_header
from greenpoint.cli._relay import Relay
from greenpoint.cli._send_proxy import TLSFacts, header_for, tls_tlvs

LOOPBACK = "127.0.0.1"


# -- the header, as values -------------------------------------------------------


def test_tls_tlvs_parse_back_as_haproxy_reads_them():
    facts = TLSFacts(
        version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        alpn="h2",
        server_name="example.com",
        client_certificate=True,
        common_name="alice",
    )
    data = encode_proxy_header(
        IPv4Address("192.0.2.1", 5000), IPv4Address("192.0.2.2", 443), tlvs=tls_tlvs(facts)
    )
    header, rest = parse_header(data)
    assert rest == b""
    assert header.source == IPv4Address("192.0.2.1", 5000)
    assert header.alpn == b"h2"
    assert header.authority == "example.com"
    assert header.ssl.tls and header.ssl.verified
    assert (header.ssl.version, header.ssl.cipher, header.ssl.cn) == (
        "TLSv1.3", "TLS_AES_256_GCM_SHA384", "alice",
    )  # fmt: skip


class _Stream:
    def __init__(self, local):
        self.local = local

    def getHost(self):  # noqa: N802
        return self.local


@pytest.mark.parametrize(
    ("client", "local", "version", "expected"),
    [
        (IPv4Address("192.0.2.1", 1), IPv4Address("192.0.2.2", 2), 1,
         b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"),
        (UNIXAddress("/run/a"), UNIXAddress("/run/b"), 1, b"PROXY UNKNOWN\r\n"),
        (PipeAddress(), PipeAddress(), 1, b"PROXY UNKNOWN\r\n"),
        (UNIXAddress(None), IPv4Address("192.0.2.2", 2), 1, b"PROXY UNKNOWN\r\n"),
    ],
)  # fmt: skip
def test_addresses_a_header_cannot_carry_say_unknown(client, local, version, expected):
    assert header_for(_Stream(local), client, version) == expected


def test_v2_carries_unix_addresses_and_local_for_the_rest():
    header, _ = parse_header(header_for(_Stream(UNIXAddress("/b")), UNIXAddress("/a"), 2))
    assert header.source == UNIXAddress("/a")
    header, _ = parse_header(header_for(_Stream(PipeAddress()), PipeAddress(), 2))
    assert header.command == "LOCAL"


# -- a relay in front of a haproxy: server ------------------------------------------


@contextlib.contextmanager
def haproxy_backend():
    """A greenpoint ``haproxy:`` server that records what each connection says."""
    seen: gevent.queue.Queue = gevent.queue.Queue()

    def handler(stream, address):
        seen.put((address, stream.proxy_header))
        stream.sendall(stream.recv(100))

    port = server_from_string(f"haproxy:tcp:0:interface={LOOPBACK}").serve(handler)
    try:
        yield port.get_host().port, seen
    finally:
        port.stop_listening(timeout=1)


@contextlib.contextmanager
def relay(server, backend_port, version):
    relay = Relay(client_from_string(f"tcp:{LOOPBACK}:{backend_port}"), send_proxy=version)
    port = server_from_string(server).serve(relay)
    try:
        yield port.get_host().port
    finally:
        port.stop_listening(timeout=1)


def exchange(sock, payload=b"hello"):
    sock.sendall(payload)
    assert sock.recv(100) == payload


@pytest.mark.parametrize("version", [1, 2])
def test_a_haproxy_server_behind_the_relay_sees_the_original_client(version):
    with (
        haproxy_backend() as (backend, seen),
        relay(f"tcp:0:interface={LOOPBACK}", backend, version) as front,
    ):
        with gsocket.create_connection((LOOPBACK, front), timeout=5) as client:
            exchange(client)
            original = IPv4Address(*client.getsockname())
        address, header = seen.get(timeout=5)
    assert address == original
    assert header.version == version
    assert header.destination == IPv4Address(LOOPBACK, front)


def test_a_tls_terminating_relay_passes_the_tls_facts(tmp_path):
    certs = make_certs(tmp_path)
    server = f"ssl:0:interface={LOOPBACK}:privateKey={certs.server_pem}:alpn=h2,http/1.1"
    context = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(certs.ca_file)
    context.set_alpn_protocols(["h2"])
    with haproxy_backend() as (backend, seen), relay(server, backend, 2) as front:
        raw = gsocket.create_connection((LOOPBACK, front), timeout=5)
        with context.wrap_socket(raw, server_hostname="localhost") as client:
            exchange(client)
            original = IPv4Address(*client.getsockname())
            version = client.version()
        address, header = seen.get(timeout=5)
    assert address == original
    assert header.alpn == b"h2"
    assert header.authority == "localhost"
    assert header.ssl.tls and not header.ssl.client_certificate
    assert header.ssl.version == version
    assert header.ssl.cipher


# -- the command line, with real HAProxy between ----------------------------------


@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed: apt-get install haproxy")
def test_cli_relay_send_proxy_v2_through_real_haproxy(tmp_path):
    """client -> greenpoint relay --send-proxy-v2 -> HAProxy (accept-proxy,
    send-proxy-v2) -> haproxy: server. HAProxy only passes the client on if it
    understood our header."""
    front = socket.socket()
    front.bind((LOOPBACK, 0))
    front.listen(16)
    try:
        with haproxy_backend() as (backend, seen):
            lines = [
                "global", "    nbthread 1",
                "defaults", "    mode tcp", "    timeout connect 5s",
                "    timeout client 10s", "    timeout server 10s",
                "frontend fe", f"    bind fd@{front.fileno()} accept-proxy",
                "    default_backend be",
                "backend be", f"    server s {LOOPBACK}:{backend} send-proxy-v2",
            ]  # fmt: skip
            with (
                haproxy_process(tmp_path, lines, [front.fileno()]),
                Child(
                    greenpoint_command(
                        "relay",
                        "--send-proxy-v2",
                        f"tcp:0:interface={LOOPBACK}",
                        f"tcp:{LOOPBACK}:{front.getsockname()[1]}",
                    )  # fmt: skip
                ) as child,
            ):
                port = child.port()
                with gsocket.create_connection((LOOPBACK, port), timeout=5) as client:
                    exchange(client)
                    original = IPv4Address(*client.getsockname())
                address, header = seen.get(timeout=5)
                child.stop()
    finally:
        front.close()
    assert address == original
    assert header.version == 2
