"""Listen on a socket someone else opened: ``fd:3:domain=INET`` and ``systemd:``.

:class:`AdoptedStreamServerEndpoint` takes over a listening stream socket by its
file descriptor. ``bind()`` checks, with ``getsockopt``, that the descriptor really
is a listening stream socket of the declared family (Twisted takes any fd on
trust), marks it close-on-exec so child processes do not inherit the listener
(Twisted leaves it inheritable), and hands back a gevent socket that owns the
descriptor: closing the listener closes it. An endpoint adopts once; a second
``bind()`` raises :class:`~greenpoint.errors.AlreadyListenedError`.

``systemd:domain=INET:index=0`` (or ``name=web``) picks one of the sockets passed
by systemd socket activation. The environment is read when the endpoint is bound,
never at import or parse time, and it is never modified (see :mod:`greenpoint._systemd`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket as _stdsocket
from collections.abc import Mapping
from typing import Any, cast

from gevent import socket as gsocket

from greenpoint._checks import FieldError, whole_number
from greenpoint._description import Bracketed
from greenpoint._half_made import detach_half_made
from greenpoint._hostnames import family_name
from greenpoint._one_connection import OneConnectionListener
from greenpoint._params import Param, choice, integer, register_inverse, text
from greenpoint._registry import EndpointParser, server_from_string
from greenpoint._socket import set_nodelay
from greenpoint._systemd import ListenFDs, listen_fds
from greenpoint.endpoints._base import ServerEndpoint
from greenpoint.errors import AlreadyListenedError, DescriptionError, ListenError

__all__ = [
    "CLIENT_PARSERS",
    "SERVER_PARSERS",
    "AdoptedStreamServerEndpoint",
    "SystemdServerEndpoint",
]

logger = logging.getLogger("greenpoint")

# Description ``domain=`` values and their address families (systemd's spelling).
DOMAINS = {
    "INET": _stdsocket.AF_INET,
    "INET6": _stdsocket.AF_INET6,
    "UNIX": _stdsocket.AF_UNIX,
}


def _type_name(sock_type: int) -> str:
    try:
        return _stdsocket.SocketKind(sock_type).name
    except ValueError:
        return f"socket type {sock_type}"


def _domain_of(family: int) -> str:
    for name, value in DOMAINS.items():
        if value == family:
            return name
    return family_name(family)


def _probe_stream(fileno: int, family: int) -> bool:
    """Check that ``fileno`` is a stream socket of ``family``; return whether it listens.

    Raises:
        ListenError: it is not an open stream socket of ``family``.
    """
    where = f"fd {fileno}"
    # socket(fileno=...) asks the kernel for the family and type; detach() afterwards
    # hands the descriptor back untouched, whatever happens.
    try:
        probe = _stdsocket.socket(fileno=fileno)
    except OSError as exc:
        raise ListenError(
            exc.errno, f"cannot adopt {where}: {exc.strerror or exc} (is it an open socket?)"
        ) from exc
    try:
        actual_family = probe.getsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_DOMAIN)
        actual_type = probe.getsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_TYPE)
        accepting = probe.getsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_ACCEPTCONN)
    finally:
        probe.detach()
    if actual_family != family:
        raise ListenError(
            f"cannot adopt {where}: expected a socket of family {family_name(family, constant=True)}, "
            f"but it is {family_name(actual_family, constant=True)}"
        )
    if actual_type != _stdsocket.SOCK_STREAM:
        raise ListenError(
            f"cannot adopt {where}: expected a stream socket (SOCK_STREAM), "
            f"but it is {_type_name(actual_type)}"
        )
    return bool(accepting)


def _check_listening_stream(fileno: int, family: int) -> None:
    """Raise :class:`ListenError` unless ``fileno`` is a listening stream socket of ``family``."""
    if not _probe_stream(fileno, family):
        raise ListenError(
            f"cannot adopt fd {fileno}: the {family_name(family, constant=True)} stream socket is not "
            "listening (call listen() on it before handing it over)"
        )


def _adopt_connected(fileno: int, family: int) -> OneConnectionListener:
    """A connected socket (systemd ``Accept=yes``) as a one-connection listener."""
    probe = _stdsocket.socket(fileno=fileno)
    try:
        probe.getpeername()
    except OSError as exc:
        raise ListenError(
            f"cannot adopt fd {fileno}: the {family_name(family, constant=True)} stream socket is "
            "neither listening nor connected"
        ) from exc
    finally:
        probe.detach()
    os.set_inheritable(fileno, False)
    sock = _wrap_adopted(family, fileno)
    set_nodelay(sock)
    return OneConnectionListener(sock)


def _wrap_adopted(family: int, fileno: int) -> Any:
    """A gevent socket owning ``fileno``; if making it fails, ``fileno`` stays open
    and the caller's (the half-made socket would close it when collected)."""
    try:
        return gsocket.socket(family, _stdsocket.SOCK_STREAM, fileno=fileno)
    except BaseException as exc:
        detach_half_made(fileno, exc)
        raise


@dataclasses.dataclass(eq=True)
class AdoptedStreamServerEndpoint(ServerEndpoint):
    """Listen on an already listening stream socket, given by its file descriptor.

    ``address_family`` is what the socket must be (``socket.AF_INET``,
    ``AF_INET6`` or ``AF_UNIX``); ``bind()`` checks it.
    """

    fileno: int
    address_family: int
    prefix = "fd"
    _adopted: bool = dataclasses.field(default=False, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        whole_number("fileno", self.fileno, 0)

    def bind(self) -> Any:
        """Adopt the descriptor; return the listening gevent socket (which now owns it).

        Raises:
            AlreadyListenedError: this endpoint already adopted its descriptor.
            ListenError: the descriptor is not an open, listening stream socket of
                ``address_family`` (the message says what it is instead).
        """
        if self._adopted:
            raise AlreadyListenedError(
                f"fd {self.fileno} was already adopted by this endpoint; an adopted "
                "socket can be listened on only once"
            )
        _check_listening_stream(self.fileno, self.address_family)
        # Not inherited by children (sd_listen_fds(3) leaves that to the program).
        os.set_inheritable(self.fileno, False)
        sock = _wrap_adopted(self.address_family, self.fileno)
        # As for tcp: listeners: accepted connections inherit TCP_NODELAY (no-op on UNIX).
        set_nodelay(sock)
        self._adopted = True
        return sock

    def description_values(self) -> Mapping[str, Any]:
        return {"fileno": self.fileno, "domain": _domain_of(self.address_family)}


# systemd descriptors are handed to a process once: remember those adopted, so that
# a second endpoint for the same socket cannot take over a descriptor number that a
# listener already owns (or that was closed and reused for something else).
_ADOPTED_SYSTEMD_FDS: set[int] = set()


@dataclasses.dataclass(eq=True)
class SystemdServerEndpoint(ServerEndpoint):
    """Listen on a socket passed by systemd socket activation, by ``index`` or ``name``.

    ``domain`` is ``"INET"``, ``"INET6"`` or ``"UNIX"``. Exactly one of ``index``
    (0 is fd 3) and ``name`` (``FileDescriptorName=``, ``--fdname=``) is given. The
    environment is read by ``bind()``.

    ``fallback`` (a server endpoint) is bound instead when this process was not
    socket-activated at all (``LISTEN_PID`` unset or another process's), so that
    one unit file and one command line also work in development. A socket that
    was passed connected (``Accept=yes``) is served as one connection.
    """

    domain: str
    index: int | None = None
    name: str | None = None
    fallback: ServerEndpoint | None = None
    prefix = "systemd"
    # Whether the last bind() used the fallback (so that a port's client
    # description knows it is, say, TLS).
    used_fallback: bool = dataclasses.field(default=False, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        folded = str(self.domain).strip().upper()
        if folded not in DOMAINS:
            raise FieldError(
                "domain", f"domain must be one of {', '.join(DOMAINS)}, not {self.domain!r}"
            )
        self.domain = folded
        if (self.index is None) == (self.name is None):
            given = "both were given" if self.index is not None else "neither was given"
            raise FieldError(
                "index" if self.index is not None else "name",
                "give exactly one of index= (position among the passed sockets, 0 is fd 3) "
                f"or name= (FileDescriptorName=); {given}",
            )
        if self.index is not None:
            whole_number("index", self.index, 0)

    @property
    def address_family(self) -> int:
        return DOMAINS[self.domain]

    def _select_fd(self, passed: ListenFDs) -> int:
        if self.index is not None:
            fd = passed.fd_at(self.index)
            wanted = f"index {self.index}"
        else:
            # __post_init__ requires exactly one of index and name: name is set here.
            fd = passed.fd_named(cast(str, self.name))
            wanted = f"name {self.name!r}"
        if fd is None:
            raise ListenError(f"{self}: no socket with {wanted}: {passed.describe()}")
        return fd

    def bind(self) -> Any:
        """Adopt the selected socket; return the listening gevent socket.

        Raises:
            ListenError: no such socket was passed (the message lists what was), or
                it is not a listening stream socket of ``domain``.
            AlreadyListenedError: that socket was already adopted in this process.
        """
        passed = listen_fds(os.environ, os.getpid())
        if not passed.activated and self.fallback is not None:
            logger.info("%s: %s; listening on the fallback %s", self, passed.note, self.fallback)
            listener = self.fallback.bind()
            self.used_fallback = True
            return listener
        fd = self._select_fd(passed)
        if fd in _ADOPTED_SYSTEMD_FDS:
            raise AlreadyListenedError(
                f"{self}: the systemd socket fd {fd} was already adopted in this process"
            )
        try:
            if _probe_stream(fd, self.address_family):
                sock = AdoptedStreamServerEndpoint(fd, self.address_family).bind()
            else:
                sock = _adopt_connected(fd, self.address_family)
        except ListenError as exc:
            message = f"{self}: {exc.strerror if exc.errno is not None else exc}"
            if exc.errno is None:
                raise ListenError(message) from exc
            raise ListenError(exc.errno, message) from exc
        _ADOPTED_SYSTEMD_FDS.add(fd)
        return sock


# Descriptions.
#
# fd:FILENO:domain=DOMAIN — FILENO by position or as fileno= (the constructor's
# name); domain= is required, as for systemd:, so the check in bind() has something
# to check against.

_DOMAIN = choice(*DOMAINS)
_DOMAIN.__name__ = "domain"

_FD_PARAMS = (
    Param("fileno", integer(0), positional=True, help="the listening socket's descriptor"),
    Param("domain", _DOMAIN, help="INET, INET6 or UNIX"),
)


def _build_fd(fileno: int, domain: str) -> AdoptedStreamServerEndpoint:
    return AdoptedStreamServerEndpoint(fileno, DOMAINS[domain])


def _server_description(value: str) -> ServerEndpoint:
    """A nested server description (``fallback=[tcp:8080]``), parsed now."""
    if not value:
        raise ValueError("expected a server description, such as [tcp:8080]")
    try:
        endpoint: ServerEndpoint = server_from_string(value)
    except DescriptionError as exc:  # say that it was the nested one
        raise ValueError(str(exc)) from None
    return endpoint


register_inverse(_server_description, lambda endpoint: Bracketed(str(endpoint)))

_SYSTEMD_PARAMS = (
    # Positional as in Twisted's _SystemdParser: domain, index, name.
    Param("domain", _DOMAIN, positional=True, in_form=False, help="INET, INET6 or UNIX"),
    Param(
        "index",
        integer(0),
        default=None,
        positional=True,
        in_form=False,
        help="position among the passed sockets; 0 is fd 3",
    ),
    Param(
        "name",
        text,
        default=None,
        positional=True,
        in_form=False,
        help="FileDescriptorName= / --fdname=",
    ),
    Param(
        "fallback",
        _server_description,
        default=None,
        help="server description to listen on when not socket-activated, e.g. [tcp:8080]",
    ),
)

CLIENT_PARSERS: dict[str, EndpointParser] = {}
SERVER_PARSERS = {
    "fd": EndpointParser("fd", _FD_PARAMS, _build_fd, "listen on an inherited listening socket"),
    "systemd": EndpointParser(
        "systemd",
        _SYSTEMD_PARAMS,
        SystemdServerEndpoint,
        "listen on a socket passed by systemd socket activation",
    ),
}
