"""Helpers for the TLS tests: certificates, small endpoints, stand-in transports.

The TCP and hostname endpoints are written by other modules. When they are not
importable (this branch on its own), ``transport_modules`` installs small
stand-ins with the same constructor signatures so that the TLS descriptions can
be exercised end to end; once the real modules exist, they are used instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import socket as _stdsocket
import sys
import types
from typing import Any, ClassVar

import gevent
import trustme
from gevent import os as gos
from gevent import socket as gsocket

from greenpoint._address import from_sockaddr
from greenpoint._socket import connect_address
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint

LOOPBACK = "127.0.0.1"


@dataclasses.dataclass
class Certs:
    """A CA and a server certificate for localhost, written to ``directory``."""

    ca: Any
    directory: str
    ca_file: str
    server_pem: str  # key + certificate + chain

    def issue(self, name: str, *identities: str, **kwargs: Any) -> str:
        """Issue a certificate for ``identities`` into ``directory/name`` (key inside)."""
        cert = self.ca.issue_cert(*identities, **kwargs)
        path = os.path.join(self.directory, name)
        cert.private_key_and_cert_chain_pem.write_to_path(path)
        return path


def make_certs(tmp_path: Any) -> Certs:
    ca = trustme.CA()
    directory = str(tmp_path)
    ca_file = os.path.join(directory, "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    server_pem = os.path.join(directory, "server.pem")
    ca.issue_cert("localhost", "127.0.0.1", "::1").private_key_and_cert_chain_pem.write_to_path(
        server_pem
    )
    return Certs(ca, directory, ca_file, server_pem)


def expired(**kwargs: Any) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "not_before": now - datetime.timedelta(days=30),
        "not_after": now - datetime.timedelta(days=1),
        **kwargs,
    }


# -- tiny endpoints over loopback and UNIX sockets ---------------------------


def _listen(family: int, address: Any, backlog: int = 50) -> Any:
    sock = gsocket.socket(family, _stdsocket.SOCK_STREAM)
    try:
        if family != _stdsocket.AF_UNIX:
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
        if family == _stdsocket.AF_INET6:
            sock.setsockopt(_stdsocket.IPPROTO_IPV6, _stdsocket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclasses.dataclass(eq=True)
class UNIXClient(ClientEndpoint):
    """A UNIX client endpoint; its test prefix is ``tlstest-unix``."""

    path: str
    timeout: float = 30

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        return "tlstest-unix", (self.path,), {}

    def open(self, timeout: float | None = None) -> Any:
        return connect_address(
            _stdsocket.AF_UNIX, self.path, timeout=self.timeout if timeout is None else timeout
        )


@dataclasses.dataclass(eq=True)
class UNIXServer(ServerEndpoint):
    path: str

    def bind(self) -> Any:
        return _listen(_stdsocket.AF_UNIX, self.path)


@dataclasses.dataclass(eq=True)
class StandInTCPClient(ClientEndpoint):
    host: str
    port: int
    timeout: float | None = 30
    bind_address: Any = None
    family: ClassVar[int] = _stdsocket.AF_INET

    def open(self, timeout: float | None = None) -> Any:
        family = _stdsocket.AF_INET6 if ":" in self.host else self.family
        host = LOOPBACK if self.host == "localhost" else self.host
        return connect_address(
            family,
            (host, self.port),
            timeout=self.timeout if timeout is None else timeout,
            bind_address=self.bind_address,
        )


@dataclasses.dataclass(eq=True)
class StandInTCP6Client(StandInTCPClient):
    family: ClassVar[int] = _stdsocket.AF_INET6


@dataclasses.dataclass(eq=True)
class StandInHostnameEndpoint(StandInTCPClient):
    attempt_delay: float = 0.25
    resolver: Any = None


@dataclasses.dataclass(eq=True)
class StandInTCPServer(ServerEndpoint):
    port: int
    backlog: int = 50
    interface: str = ""
    family: ClassVar[int] = _stdsocket.AF_INET

    def bind(self) -> Any:
        if not self.interface or self.interface in ("0.0.0.0", "::"):
            raise AssertionError("tests listen on loopback only: give interface=")
        return _listen(self.family, (self.interface, self.port), self.backlog)


@dataclasses.dataclass(eq=True)
class StandInTCP6Server(StandInTCPServer):
    interface: str = "::"
    family: ClassVar[int] = _stdsocket.AF_INET6


@contextlib.contextmanager
def transport_modules():
    """Make ``greenpoint.endpoints.tcp`` and ``.hostname`` importable."""
    installed = []
    try:
        import greenpoint.endpoints.tcp  # noqa: F401
    except ImportError:
        module = types.ModuleType("greenpoint.endpoints.tcp")
        module.TCP4ClientEndpoint = StandInTCPClient
        module.TCP6ClientEndpoint = StandInTCP6Client
        module.TCP4ServerEndpoint = StandInTCPServer
        module.TCP6ServerEndpoint = StandInTCP6Server
        sys.modules[module.__name__] = module
        installed.append(module.__name__)
    try:
        import greenpoint.endpoints.hostname  # noqa: F401
    except ImportError:
        module = types.ModuleType("greenpoint.endpoints.hostname")
        module.HostnameEndpoint = StandInHostnameEndpoint
        sys.modules[module.__name__] = module
        installed.append(module.__name__)
    try:
        yield
    finally:
        for name in installed:
            sys.modules.pop(name, None)


# -- listening and serving in tests ------------------------------------------


def port_of(listener: Any) -> int:
    return listener.getsockname()[1]


class Server:
    """Accept on a TLS listener the way the serve loop does, one greenlet each.

    ``handler(stream, address)`` runs after ``prepare`` (the handshake); handshake
    failures are collected in ``failures``.
    """

    def __init__(self, listener: Any, handler: Any) -> None:
        self.listener = listener
        self.handler = handler
        self.failures: list[BaseException] = []
        self.streams: list[Any] = []
        self.greenlets: list[Any] = []
        self.accepter = gevent.spawn(self._accept_loop)

    def _accept_loop(self) -> None:
        while True:
            try:
                stream, address = self.listener.accept_unprepared()
            except OSError:
                return
            self.greenlets.append(gevent.spawn(self._one, stream, address))

    def _one(self, stream: Any, address: Any) -> None:
        try:
            tls_stream, address = self.listener.prepare(stream, address)
        except Exception as exc:
            self.failures.append(exc)
            return
        self.streams.append(tls_stream)
        try:
            self.handler(tls_stream, address)
        finally:
            tls_stream.close()

    def stop(self) -> None:
        self.accepter.kill()
        self.listener.close()
        gevent.joinall(self.greenlets, timeout=5)
        gevent.killall(self.greenlets)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def echo(stream: Any, address: Any) -> None:
    while True:
        data = stream.recv(65536)
        if not data:
            return
        stream.sendall(data)


def echo_once(stream: Any, host: str = LOOPBACK) -> bytes:
    stream.sendall(b"ping")
    return stream.recv(100)


def address_of(sock: Any) -> Any:
    return from_sockaddr(sock.family, sock.getsockname())


class PipeStream:
    """A non-socket stream over two pipes (like a child process's stdin/stdout)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        gos.make_nonblocking(read_fd)
        gos.make_nonblocking(write_fd)
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.closed = False

    def recv(self, size: int) -> bytes:
        return gos.nb_read(self.read_fd, size)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[gos.nb_write(self.write_fd, view) :]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.read_fd)
            os.close(self.write_fd)


def pipe_pair() -> tuple[PipeStream, PipeStream]:
    a_read, b_write = os.pipe()
    b_read, a_write = os.pipe()
    return PipeStream(a_read, a_write), PipeStream(b_read, b_write)
