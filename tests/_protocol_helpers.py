"""Loopback endpoints for the protocol-layer tests: the real TCP and UNIX ones."""

from __future__ import annotations

from greenpoint.endpoints.tcp import TCP4ClientEndpoint, TCP4ServerEndpoint
from greenpoint.endpoints.unix import UNIXClientEndpoint, UNIXServerEndpoint

LOOPBACK = "127.0.0.1"


def tcp_server():
    """A TCP server endpoint on a free loopback port."""
    return TCP4ServerEndpoint(0, interface=LOOPBACK)


def client_for(port, server_endpoint):
    """A client endpoint that reaches ``port`` (a listening port of ``server_endpoint``)."""
    if isinstance(server_endpoint, UNIXServerEndpoint):
        return UNIXClientEndpoint(server_endpoint.path)
    return TCP4ClientEndpoint(LOOPBACK, port.get_host().port)


def raw_client(port, server_endpoint):
    """A plain connected gevent socket to ``port``."""
    return client_for(port, server_endpoint).open(5)
