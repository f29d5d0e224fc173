"""Addresses: what ``getPeer()``/``getHost()`` and handlers are given.

Frozen, comparable and printable values. ``from_sockaddr`` turns what the socket
layer returns into one of them; IPv4-mapped IPv6 peers (``::ffff:a.b.c.d``), which a
dual-stack listener sees for IPv4 clients, come back as plain :class:`IPv4Address`.
"""

from __future__ import annotations

import dataclasses
import functools
import socket
import struct
from typing import Any, Union

__all__ = [
    "Address",
    "HostnameAddress",
    "IPv4Address",
    "IPv6Address",
    "PipeAddress",
    "SOCKADDR_TYPES",
    "UNIXAddress",
    "as_address",
    "from_sockaddr",
    "host_address",
    "listener_address",
    "peer_address",
]

_V4_MAPPED_PREFIX = "::ffff:"


@dataclasses.dataclass(frozen=True, order=True)
class IPv4Address:
    """An IPv4 host and port, as a TCP endpoint sees it."""

    host: str
    port: int
    type = "TCP"  # Twisted's IAddress has a transport type; kept for ported code.

    @property
    def family(self) -> int:
        return socket.AF_INET

    def sockaddr(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True, order=True)
class IPv6Address:
    """An IPv6 host and port (with flow info and scope id)."""

    host: str
    port: int
    flowinfo: int = 0
    scope_id: int = 0
    type = "TCP"

    @property
    def family(self) -> int:
        return socket.AF_INET6

    def sockaddr(self) -> tuple[str, int, int, int]:
        return (self.host, self.port, self.flowinfo, self.scope_id)

    def __str__(self) -> str:
        host = self.host
        if self.scope_id and "%" not in host:
            host = f"{host}%{self.scope_id}"  # RFC 4007 §11 zone index
        return f"[{host}]:{self.port}"


@functools.total_ordering
@dataclasses.dataclass(frozen=True)
class UNIXAddress:
    """A UNIX socket path; an abstract-namespace name starts with ``"\\0"``.

    ``name`` is ``None`` for an unnamed socket (a client's own end, usually); it
    sorts before every named one.

    On connections a UNIX server accepted, ``pid``, ``uid`` and ``gid`` are the
    peer's credentials as the kernel recorded them when it connected
    (``SO_PEERCRED``, unix(7)): trustworthy, unlike anything the peer says, so fit
    for per-user authorisation of a local control socket. They are ``None``
    elsewhere, and they take no part in equality, ordering or hashing: an address
    is still its name.
    """

    name: str | None
    pid: int | None = dataclasses.field(default=None, compare=False)
    uid: int | None = dataclasses.field(default=None, compare=False)
    gid: int | None = dataclasses.field(default=None, compare=False)

    type = "UNIX"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, UNIXAddress):
            return NotImplemented
        return (self.name is not None, self.name or "") < (
            other.name is not None,
            other.name or "",
        )

    @property
    def family(self) -> int:
        return socket.AF_UNIX

    @property
    def abstract(self) -> bool:
        return self.name is not None and self.name.startswith("\0")

    def sockaddr(self) -> str:
        return self.name or ""

    def __str__(self) -> str:
        if not self.name:
            return "unix:(unnamed)"
        if self.abstract:
            return "unix:@" + self.name[1:]
        return "unix:" + self.name


@dataclasses.dataclass(frozen=True, order=True)
class HostnameAddress:
    """A host name and port that has not been resolved yet."""

    hostname: str
    port: int
    type = "TCP"

    def __str__(self) -> str:
        if ":" in self.hostname:  # an IPv6 literal given as a host name
            return f"[{self.hostname}]:{self.port}"
        return f"{self.hostname}:{self.port}"


@dataclasses.dataclass(frozen=True, order=True)
class PipeAddress:
    """The address of a pipe (standard I/O, a child process); it has no parts."""

    description: str = "pipe"
    type = "PIPE"

    def __str__(self) -> str:
        return self.description


Address = Union[IPv4Address, IPv6Address, UNIXAddress, HostnameAddress, PipeAddress]


def from_sockaddr(family: int, sockaddr: Any) -> Address:
    """Turn a ``(family, sockaddr)`` pair from the socket layer into an address."""
    if family == socket.AF_INET:
        return IPv4Address(sockaddr[0], sockaddr[1])
    if family == socket.AF_INET6:
        host, port = sockaddr[0], sockaddr[1]
        if host.startswith(_V4_MAPPED_PREFIX) and "." in host:
            # A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
            return IPv4Address(host[len(_V4_MAPPED_PREFIX) :], port)
        flowinfo = sockaddr[2] if len(sockaddr) > 2 else 0
        scope_id = sockaddr[3] if len(sockaddr) > 3 else 0
        return IPv6Address(host, port, flowinfo, scope_id)
    if family == socket.AF_UNIX:
        if isinstance(sockaddr, bytes):
            sockaddr = sockaddr.decode("utf-8", "surrogateescape")
        elif sockaddr is not None and not isinstance(sockaddr, str):  # an IP pair, say
            raise ValueError(f"not a UNIX socket address: {sockaddr!r}")
        return UNIXAddress(sockaddr or None)
    raise ValueError(f"unsupported address family {family!r}")


# struct ucred (unix(7)): pid_t, uid_t, gid_t, three 32-bit integers on Linux.
_UCRED = struct.Struct("3i")


def with_peer_credentials(address: UNIXAddress, sock: Any) -> UNIXAddress:
    """``address`` with the ``SO_PEERCRED`` of connected UNIX socket ``sock`` added.

    Unchanged where the platform has no ``SO_PEERCRED`` or the socket cannot say.
    """
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return address
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size)
    except (OSError, AttributeError, TypeError):
        return address
    pid, uid, gid = _UCRED.unpack(raw)
    return dataclasses.replace(address, pid=pid, uid=uid, gid=gid)


def peer_address(stream: Any) -> Address:
    """The peer address of a connected stream (socket-like or with ``getPeer``)."""
    if hasattr(stream, "getPeer"):
        peer: Address = stream.getPeer()
        return peer
    return from_sockaddr(stream.family, stream.getpeername())


def host_address(stream: Any) -> Address:
    """The local address of a connected stream."""
    if hasattr(stream, "getHost"):
        host: Address = stream.getHost()
        return host
    return from_sockaddr(stream.family, stream.getsockname())


# What the socket layer gives as an address (an IP tuple, a UNIX path). A tuple of
# types, not ``tuple | str | bytes``, which would build a union object on every call.
SOCKADDR_TYPES = (tuple, str, bytes)


def as_address(family: int | None, raw: Any, stream: Any = None) -> Any:
    """A greenpoint address for what an ``accept()`` or ``connect()`` dealt with.

    ``raw`` is a sockaddr of ``family`` (``None``: ``stream``'s own family, which a
    wrapping listener without a ``family`` needs). Anything that is not a sockaddr
    (already a greenpoint address: ``PipeAddress("stdio")``, a PROXY header's client)
    passes through, and so does a sockaddr that cannot be read (a family with no
    address type here): in a log line or an error message it is still the best
    description there is. A UNIX peer accepted on ``stream`` gets its ``SO_PEERCRED``
    credentials (:func:`with_peer_credentials`).

    On the accept path of every connection: keep it short.
    """
    if not isinstance(raw, SOCKADDR_TYPES):
        return raw
    if family is None:
        family = getattr(stream, "family", None)
        if family is None:
            return raw
    try:
        address = from_sockaddr(family, raw)
    except (ValueError, IndexError, TypeError):
        return raw
    if stream is not None and isinstance(address, UNIXAddress):
        # Who connected, as the kernel says (SO_PEERCRED): one getsockopt.
        return with_peer_credentials(address, stream)
    return address


def listener_address(listener: Any) -> Address:
    """The address a listener is bound to (the real port when port 0 was asked).

    A wrapping listener (TLS, PROXY protocol) or a stdio "listener" says itself
    (``get_host()``); a listening socket is asked for its ``getsockname()``.
    """
    get_host = getattr(listener, "get_host", None)
    if get_host is not None:
        bound: Address = get_host()
        return bound
    return from_sockaddr(listener.family, listener.getsockname())
