"""systemd's file-descriptor store: keep listening sockets open across a restart.

sd_notify(3) ``FDSTORE=1`` with ``FDNAME=NAME`` and the descriptors attached
(``SCM_RIGHTS``) hands copies of them to the service manager. When the service is
restarted, systemd passes them back as socket activation does (``LISTEN_FDS``,
``LISTEN_FDNAMES``). Since systemd holds a copy meanwhile, the socket never stops
listening: clients that connect between the old process closing its copy and the
new one accepting wait in the kernel's backlog instead of being refused.

Choices:

* Stored only when systemd asks for it: ``$FDSTORE`` (set by systemd >= 254 to the
  unit's ``FileDescriptorStoreMax=``) is a positive number and ``NOTIFY_SOCKET`` is
  set. ``GREENPOINT_FDSTORE=1`` asks for it with older systemd.
* Each socket's ``FDNAME`` is derived from the server description text
  (:func:`fd_name`), so the restarted command finds the socket for the same
  description, whatever it is (``tcp:0`` included: the port is kept).
* Only TCP sockets (under ``tcp:``, ``ssl:``, ``tls:``, ``haproxy:``): a ``unix:``
  listener removes its socket file when it closes, so a kept descriptor would be
  unreachable. ``systemd:`` and ``fd:`` sockets are already the manager's.
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from greenpoint._systemd import listen_fds
from greenpoint.cli._sd_notify import notify_address

__all__ = ["fd_name", "restore_endpoint", "store_listener", "wants_fd_store"]

log = logging.getLogger("greenpoint")

# FDNAME= may not hold ":" (it separates LISTEN_FDNAMES) and is at most 255
# characters, so the description itself cannot be the name.
FD_NAME_PREFIX = "greenpoint-"

_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def fd_name(description: str) -> str:
    """The ``FDNAME`` under which the socket of server ``description`` is stored."""
    digest = hashlib.sha256(description.encode("utf-8", "surrogateescape")).hexdigest()
    return FD_NAME_PREFIX + digest[:20]


def wants_fd_store(environ: Mapping[str, str]) -> bool:
    """Whether systemd keeps descriptors for this service (``$FDSTORE`` > 0)."""
    if notify_address(environ.get("NOTIFY_SOCKET")) is None:
        return False
    if environ.get("GREENPOINT_FDSTORE", "").strip() == "1":
        return True
    try:
        return int(environ.get("FDSTORE", "0")) > 0
    except ValueError:
        return False


def send_fds(fds: list[int], name: str, environ: Mapping[str, str]) -> bool:
    """``FDSTORE=1`` + ``FDNAME=name`` with ``fds`` attached; whether it was sent."""
    address = notify_address(environ.get("NOTIFY_SOCKET"))
    if address is None:
        return False
    message = f"FDSTORE=1\nFDNAME={name}".encode()
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendmsg([message], rights, 0, address)
    except OSError as exc:
        log.warning("cannot store sockets with systemd: %s", exc.strerror or exc)
        return False
    return True


def _family(fd: int) -> int:
    probe = socket.socket(fileno=fd)
    try:
        return int(probe.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN))
    finally:
        probe.detach()


def store_listener(
    listener: Any, description: str, environ: Mapping[str, str] | None = None
) -> bool:
    """Hand ``listener``'s socket to systemd's store, if systemd wants it; whether done.

    ``listener`` is a bound listener or a ``ListeningPort`` (its listener).
    """
    environ = os.environ if environ is None else environ
    if not wants_fd_store(environ):
        return False
    listener = getattr(listener, "listener", listener)
    fd = listener.fileno()
    if _family(fd) not in _TCP_FAMILIES:
        log.info("%s: only TCP sockets are kept in systemd's fd store", description)
        return False
    from greenpoint._registry import server_from_string

    if _is_systemds(server_from_string(description)):
        return False
    name = fd_name(description)
    if send_fds([fd], name, environ):
        log.info("%s: listening socket stored with systemd as %s", description, name)
        return True
    return False


def _is_systemds(endpoint: Any) -> bool:
    from greenpoint.endpoints.adopted import AdoptedStreamServerEndpoint, SystemdServerEndpoint

    return isinstance(endpoint, AdoptedStreamServerEndpoint | SystemdServerEndpoint)


def restore_endpoint(
    endpoint: Any, description: str, environ: Mapping[str, str] | None = None
) -> Any:
    """``endpoint``, or the same server over the socket systemd kept for ``description``."""
    environ = os.environ if environ is None else environ
    passed = listen_fds(environ, os.getpid())
    fd = passed.fd_named(fd_name(description))
    if fd is None:
        return endpoint
    restored = over_adopted_socket(endpoint, fd, _family(fd))
    if restored is None:
        log.warning("%s: a stored socket was passed but cannot be used for it", description)
        return endpoint
    log.info("%s: listening on the socket systemd kept (fd %d)", description, fd)
    return restored


def over_adopted_socket(endpoint: Any, fd: int, family: int) -> Any:
    """``endpoint`` with its innermost TCP listener replaced by the adopted ``fd``.

    ``None`` when ``endpoint`` is not built on a TCP server endpoint.
    """
    from greenpoint.endpoints._tcp_endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
    from greenpoint.endpoints._tls_endpoints import (
        SSL4ServerEndpoint,
        TLSWrapperServerEndpoint,
    )
    from greenpoint.endpoints.adopted import AdoptedStreamServerEndpoint
    from greenpoint.endpoints.haproxy import HAProxyServerEndpoint

    if isinstance(endpoint, TCP4ServerEndpoint | TCP6ServerEndpoint):
        return AdoptedStreamServerEndpoint(fd, family)
    if isinstance(endpoint, SSL4ServerEndpoint):
        return TLSWrapperServerEndpoint(
            endpoint.tls_options,
            AdoptedStreamServerEndpoint(fd, family),
            endpoint.handshake_timeout,
        )
    if isinstance(endpoint, HAProxyServerEndpoint | TLSWrapperServerEndpoint):
        inner = over_adopted_socket(endpoint.endpoint, fd, family)
        return None if inner is None else dataclasses.replace(endpoint, endpoint=inner)
    return None
