"""Loopback endpoints and a stand-in listening port for the protocol-layer tests.

The real TCP/UNIX endpoints and ``greenpoint._serve.ListeningPort`` are written
elsewhere; these minimal ones follow the same interfaces so that the protocol layer
can be tested on its own. ``use_listening_port`` installs the stand-in only when the
real ``greenpoint._serve`` is missing, so the same tests run against the real one
once it exists.
"""

from __future__ import annotations

import dataclasses
import importlib
import socket
import sys
import types

import gevent
from gevent import socket as gsocket

from greenpoint._address import from_sockaddr
from greenpoint._socket import connect_address
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint


@dataclasses.dataclass
class TCPClient(ClientEndpoint):
    host: str
    port: int

    def description_parts(self):
        return ("tcp", (self.host, self.port), {})

    def open(self, timeout=None):
        return connect_address(socket.AF_INET, (self.host, self.port), timeout=timeout)


@dataclasses.dataclass
class UNIXClient(ClientEndpoint):
    path: str

    def description_parts(self):
        return ("unix", (self.path,), {})

    def open(self, timeout=None):
        return connect_address(socket.AF_UNIX, self.path, timeout=timeout)


@dataclasses.dataclass
class TCPServer(ServerEndpoint):
    interface: str = "127.0.0.1"

    def description_parts(self):
        return ("tcp", (0,), {"interface": self.interface})

    def bind(self):
        sock = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.interface, 0))
        sock.listen(50)
        return sock


@dataclasses.dataclass
class UNIXServer(ServerEndpoint):
    path: str

    def description_parts(self):
        return ("unix", (self.path,), {})

    def bind(self):
        sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        sock.listen(50)
        return sock


class StandInListeningPort:
    """The subset of ``greenpoint._serve.ListeningPort`` the protocol layer uses."""

    def __init__(self, listener, handler, on_stop):
        self.listener = listener
        self.handler = handler
        self.on_stop = on_stop
        self.handlers = set()
        self.stopped = False
        self.accepter = None

    @classmethod
    def start(cls, listener, handler, pool=None, on_stop=None):
        port = cls(listener, handler, on_stop)
        port.accepter = gevent.spawn(port._accept_loop)
        return port

    def _accept_loop(self):
        while True:
            stream, sockaddr = self.listener.accept()
            address = from_sockaddr(stream.family, sockaddr)
            handler = gevent.spawn(self._run, stream, address)
            self.handlers.add(handler)
            handler.link(self.handlers.discard)

    def _run(self, stream, address):
        try:
            self.handler(stream, address)
        finally:
            stream.close()

    def get_host(self):
        return from_sockaddr(self.listener.family, self.listener.getsockname())

    getHost = get_host

    def stop_listening(self, timeout=None):
        if self.stopped:
            return
        self.stopped = True
        self.accepter.kill()
        self.listener.close()
        gevent.joinall(list(self.handlers), timeout=timeout)
        gevent.killall(list(self.handlers), block=True)
        if self.on_stop is not None:
            self.on_stop()

    stopListening = stop_listening

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop_listening(timeout=1)


def use_listening_port(monkeypatch):
    """Make ``greenpoint._serve`` importable: the real module, or the stand-in."""
    try:
        importlib.import_module("greenpoint._serve")
    except ImportError:
        module = types.ModuleType("greenpoint._serve")
        module.ListeningPort = StandInListeningPort
        monkeypatch.setitem(sys.modules, "greenpoint._serve", module)


def client_for(port, server_endpoint):
    """A client endpoint that reaches ``port`` (a listening port of ``server_endpoint``)."""
    if isinstance(server_endpoint, UNIXServer):
        return UNIXClient(server_endpoint.path)
    return TCPClient("127.0.0.1", port.get_host().port)


def raw_client(port, server_endpoint):
    """A plain connected gevent socket to ``port``."""
    return client_for(port, server_endpoint).open(5)
