"""haproxy: against a real HAProxy (Debian package ``haproxy``) on loopback.

HAProxy's frontends listen on sockets this test binds (port 0) and hands over as
``bind fd@N``, so there is no port race and no wait for HAProxy to start: clients
queue in the backlog until it accepts. Its backends send PROXY v1 or v2 headers to
a greenpoint ``haproxy`` listener, which echoes and records what it saw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket

import gevent
import gevent.pool
import gevent.queue
import pytest
from _haproxy_helpers import HAPROXY, haproxy_process
from gevent import socket as gsocket
from gevent import ssl as gssl

from greenpoint import IPv4Address, ServerEndpoint, UNIXAddress, wrap_haproxy

pytestmark = [
    pytest.mark.skipif(
        HAPROXY is None,
        reason="HAProxy is not installed (Debian/Ubuntu: apt-get install haproxy)",
    ),
    pytest.mark.timeout(30),
]


@dataclasses.dataclass
class LoopbackTCP(ServerEndpoint):
    def bind(self):
        sock = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        return sock

    def description_parts(self):
        return "gptesttcp", (), {}


@dataclasses.dataclass
class LoopbackUNIX(ServerEndpoint):
    path: str

    def bind(self):
        sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        sock.listen(16)
        return sock

    def description_parts(self):
        return "gptestunix", (self.path,), {}


class EchoServer:
    """A greenpoint haproxy listener run the way the serve loop runs it."""

    def __init__(self, endpoint):
        self.listener = wrap_haproxy(endpoint, timeout=5).bind()
        self.seen = gevent.queue.Queue()
        self.handlers = gevent.pool.Group()
        self.acceptor = gevent.spawn(self._accept_forever)

    def _accept_forever(self):
        while True:
            stream, address = self.listener.accept_unprepared()
            self.handlers.spawn(self._handle, stream, address)

    def _handle(self, raw, raw_address):
        stream, address = self.listener.prepare(raw, raw_address)
        with stream:
            self.seen.put((address, stream.getPeer(), stream.getHost(), stream.proxy_header))
            while data := stream.recv(4096):
                stream.sendall(data)

    def close(self):
        self.acceptor.kill()
        self.handlers.kill()
        self.listener.close()


@contextlib.contextmanager
def running_haproxy(tmp_path, frontends, backend_address):
    """Run HAProxy with one frontend per ``(socket, bind options, server options)``."""
    lines = [
        "global",
        "    nbthread 1",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 10s",
        "    timeout server 10s",
    ]
    for index, (sock, bind_options, server_options) in enumerate(frontends):
        lines += [
            f"frontend fe{index}",
            f"    bind fd@{sock.fileno()} {bind_options}",
            "    unique-id-format gp-%cp",
            f"    default_backend be{index}",
            f"backend be{index}",
            f"    server s{index} {backend_address} {server_options}",
        ]
    pass_fds = [sock.fileno() for sock, _, _ in frontends]
    with haproxy_process(tmp_path, lines, pass_fds) as process:
        yield process


def frontend_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def echo_through(port, payload=b"hello through haproxy"):
    with gsocket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client_address = IPv4Address(*client.getsockname())
        client.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = client.recv(4096)
            assert chunk, "haproxy closed the connection"
            received += chunk
        assert received == payload
        return client_address


@pytest.mark.parametrize("hop", ["tcp", "unix"])
def test_real_haproxy_send_proxy_v1_and_v2(tmp_path, hop):
    endpoint = LoopbackTCP() if hop == "tcp" else LoopbackUNIX(str(tmp_path / "app.sock"))
    server = EchoServer(endpoint)
    v2_front, v1_front = frontend_socket(), frontend_socket()
    if hop == "tcp":
        backend = f"127.0.0.1:{server.listener.getsockname()[1]}"
    else:
        backend = f"unix@{endpoint.path}"
    frontends = [
        (v2_front, "", "send-proxy-v2 proxy-v2-options crc32c,unique-id"),
        (v1_front, "", "send-proxy"),
    ]
    try:
        with running_haproxy(tmp_path, frontends, backend):
            for front, version in ((v2_front, 2), (v1_front, 1)):
                client = echo_through(front.getsockname()[1])
                address, peer, host, header = server.seen.get(timeout=5)
                assert address == client  # the real client: 127.0.0.1 and its own port
                assert peer == client
                assert host == IPv4Address(*front.getsockname())
                assert header.version == version
                if version == 2:
                    assert header.unique_id == f"gp-{client.port}".encode()
                    assert any(kind == 0x03 for kind, _ in header.tlvs)  # CRC32C, verified
            if hop == "unix":  # the proxy's hop was a UNIX socket; the client is still TCP
                assert server.listener.get_host() == UNIXAddress(endpoint.path)
    finally:
        v2_front.close()
        v1_front.close()
        server.close()


def test_real_haproxy_passes_tls_details_as_tlvs(tmp_path):
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost")
    pem = tmp_path / "server.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = EchoServer(LoopbackTCP())
    front = frontend_socket()
    frontends = [
        (
            front,
            f"ssl crt {pem} alpn h2,http/1.1",
            "send-proxy-v2 proxy-v2-options ssl,authority,ssl-cipher",
        )
    ]
    context = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
    authority.configure_trust(context)
    context.set_alpn_protocols(["h2"])
    try:
        with running_haproxy(tmp_path, frontends, f"127.0.0.1:{server.listener.getsockname()[1]}"):
            raw = gsocket.create_connection(front.getsockname(), timeout=5)
            with context.wrap_socket(raw, server_hostname="localhost") as client:
                client_address = IPv4Address(*client.getsockname())
                client.sendall(b"secret")
                assert client.recv(100) == b"secret"
            address, _, _, header = server.seen.get(timeout=5)
            assert address == client_address
            assert header.alpn == b"h2"
            assert header.authority == "localhost"
            assert header.ssl.tls
            assert header.ssl.version.startswith("TLSv1.")
            assert header.ssl.cipher
            assert not header.ssl.client_certificate
    finally:
        front.close()
        server.close()
