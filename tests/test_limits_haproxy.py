"""max_per_peer behind a real HAProxy counts the client that the PROXY header names."""

from __future__ import annotations

import logging
import socket

import pytest
from _haproxy_helpers import HAPROXY, haproxy_process
from gevent import socket as gsocket

from greenpoint import server_from_string

pytestmark = [
    pytest.mark.skipif(
        HAPROXY is None,
        reason="HAProxy is not installed (Debian/Ubuntu: apt-get install haproxy)",
    ),
    pytest.mark.timeout(30),
]


def test_max_per_peer_counts_the_proxy_headers_client_not_the_proxy(tmp_path, caplog):
    def handler(stream, address):
        stream.sendall(address.host.encode())
        stream.recv(1)  # until the client goes

    caplog.set_level(logging.INFO, logger="greenpoint")
    front = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    front.bind(("127.0.0.1", 0))
    front.listen(16)
    endpoint = server_from_string("haproxy:tcp:0:interface=127.0.0.1")
    clients = []
    try:
        with endpoint.serve(handler, max_per_peer=2) as port:
            config = [
                "global",
                "    nbthread 1",
                "defaults",
                "    mode tcp",
                "    timeout connect 5s",
                "    timeout client 10s",
                "    timeout server 10s",
                "frontend fe",
                f"    bind fd@{front.fileno()}",
                "    default_backend be",
                "backend be",
                f"    server app 127.0.0.1:{port.get_host().port} send-proxy-v2",
            ]
            with haproxy_process(tmp_path, config, [front.fileno()]):

                def connect(source):
                    client = gsocket.create_connection(
                        front.getsockname(), timeout=10, source_address=(source, 0)
                    )
                    clients.append(client)
                    return client

                # Every connection reaches us from HAProxy's 127.0.0.1; only the
                # PROXY header tells the two clients apart. One at a time, each
                # answered before the next: HAProxy may open its backend connections
                # in another order than its clients connected.
                for source in ("127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"):
                    assert connect(source).recv(20) == source.encode()
                third = connect("127.0.0.2")
                assert third.recv(20) == b""  # the third from 127.0.0.2: closed at once
                assert port.stats.refused_by_limit == 1
                for client in clients:
                    client.close()
    finally:
        for client in clients:
            client.close()
        front.close()
    refusals = [r.getMessage() for r in caplog.records if "max_per_peer" in r.getMessage()]
    assert len(refusals) == 1 and "127.0.0.2" in refusals[0]
