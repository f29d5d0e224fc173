"""Helpers for the TLS tests: certificates, serving with the real ListeningPort, pipes."""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any

import trustme

from greenpoint._pipe_stream import PipeStream
from greenpoint._serve import ListeningPort

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


def write_localhost_pems(directory: Any) -> tuple[Any, Any]:
    """``ca.pem`` and ``server.pem`` (key + chain, for localhost and 127.0.0.1) in ``directory``."""
    authority = trustme.CA()
    server = authority.issue_cert("localhost", "127.0.0.1")
    ca_pem, server_pem = directory / "ca.pem", directory / "server.pem"
    authority.cert_pem.write_to_path(str(ca_pem))
    server.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    return ca_pem, server_pem


def expired(**kwargs: Any) -> dict[str, Any]:
    """``issue_cert`` arguments for a certificate that ended yesterday."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "not_before": now - datetime.timedelta(days=30),
        "not_after": now - datetime.timedelta(days=1),
        **kwargs,
    }


def not_yet_valid(**kwargs: Any) -> dict[str, Any]:
    """``issue_cert`` arguments for a certificate that starts tomorrow."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "not_before": now + datetime.timedelta(days=1),
        "not_after": now + datetime.timedelta(days=30),
        **kwargs,
    }


# -- serving in tests ----------------------------------------------------------


def port_of(listener: Any) -> int:
    return listener.getsockname()[1]


class Server:
    """Serve ``listener`` with the real :class:`ListeningPort`, recording the streams.

    ``handler(stream, address)`` runs after the listener's ``prepare`` (the
    handshake), in the connection's greenlet; ``streams`` lists what it was given.
    """

    def __init__(self, listener: Any, handler: Any) -> None:
        self.listener = listener
        self.handler = handler
        self.streams: list[Any] = []
        self.port = ListeningPort.start(listener, self._handle)

    def _handle(self, stream: Any, address: Any) -> None:
        self.streams.append(stream)
        self.handler(stream, address)

    def stop(self) -> None:
        self.port.stop_listening(timeout=2)

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


def pipe_pair() -> tuple[PipeStream, PipeStream]:
    """Two connected streams over pipes: like a child process's stdin/stdout."""
    a_read, b_write = os.pipe()
    b_read, a_write = os.pipe()
    return PipeStream(a_read, a_write), PipeStream(b_read, b_write)
