"""Shared pieces of the reliability tests: what a process holds, servers to load, figures.

* :func:`live_greenlets` and :class:`Baseline`: the file descriptors and running
  greenlets of this process, taken before a phase and checked after it.
* :func:`raise_fd_limit`: lift ``RLIMIT_NOFILE`` to its hard limit for big loads.
* :func:`echo_server` / :func:`client_for`: one echo server of each kind (TCP, UNIX,
  TLS), served through ``serve()`` or ``listen()``, and the client endpoint for it.
* :func:`record`: figures of a run, appended as JSON lines to ``$GREENPOINT_FIGURES``
  (``docs/reliability.md`` is written from them).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import resource
import socket
import time
import traceback
from collections.abc import Iterator
from typing import Any

import gevent
import greenlet
from conftest import open_fds

from greenpoint import (
    Factory,
    Protocol,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    wrap_client_tls,
    wrap_server_tls,
)

KiB = 1024
MiB = 1024 * KiB
KINDS = ("tcp", "unix", "tls")
APIS = ("serve", "listen")


# -- what the process holds ---------------------------------------------------------


def _root(glet: Any) -> Any:
    while glet.parent is not None:
        glet = glet.parent
    return glet


def live_greenlets() -> list[Any]:
    """Every greenlet of this thread that has not finished (the hub and main included).

    Greenlets of other threads (gevent's thread pool, which resolves names for
    ``create_connection``, keeps idle workers for a few seconds) are not ours to count.
    """
    main = _root(greenlet.getcurrent())
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, greenlet.greenlet) and not obj.dead and _root(obj) is main
    ]


def _describe(glet: Any) -> str:
    frame = getattr(glet, "gr_frame", None)
    where = "".join(traceback.format_stack(frame, limit=3)) if frame is not None else ""
    return f"{glet!r}\n{where}"


class Baseline:
    """Descriptors and live greenlets now; :meth:`check` waits for them to come back."""

    def __init__(self) -> None:
        settle()
        self.fds = open_fds()
        self.greenlets = {id(g) for g in live_greenlets()}

    def check(self, what: str, wait: float = 5.0) -> dict[str, int]:
        """Assert the process is back to the baseline (within ``wait`` seconds).

        Returns the figures: ``fds_before``, ``fds_after``, ``greenlets_before``,
        ``greenlets_after``.
        """
        deadline = time.monotonic() + wait
        while True:
            settle()
            gc.collect()
            fds = open_fds()
            extra_fds = {fd: target for fd, target in fds.items() if fd not in self.fds}
            extra_greenlets = [g for g in live_greenlets() if id(g) not in self.greenlets]
            if (not extra_fds and not extra_greenlets) or time.monotonic() > deadline:
                break
            gevent.sleep(0.05)
        assert not extra_fds, f"{what}: descriptors left open: {extra_fds}"
        assert not extra_greenlets, f"{what}: greenlets left running:\n" + "\n".join(
            _describe(g) for g in extra_greenlets[:5]
        )
        return {
            "fds_before": len(self.fds),
            "fds_after": len(fds),
            "greenlets_before": len(self.greenlets),
            "greenlets_after": len(self.greenlets) + len(extra_greenlets),
        }


def settle() -> None:
    """Let greenlets that are finishing (closing sockets) run."""
    for _ in range(5):
        gevent.sleep(0)


def raise_fd_limit(needed: int) -> None:
    """Lift the soft ``RLIMIT_NOFILE`` (up to the hard limit) to at least ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise RuntimeError(f"need {needed} file descriptors, the hard limit allows {soft}")


def rss_bytes() -> int:
    """This process's resident memory now."""
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- figures -----------------------------------------------------------------------


def record(test: str, **figures: Any) -> None:
    """Keep the figures of a run: a JSON line in ``$GREENPOINT_FIGURES`` if set."""
    path = os.environ.get("GREENPOINT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"test": test, **figures}, sort_keys=True) + "\n")


# -- echo servers ----------------------------------------------------------------------


def echo_handler(stream: Any, address: Any) -> None:
    """The stream API's echo: read, write back, until the peer half-closes."""
    while data := stream.recv(64 * KiB):
        stream.sendall(data)


class EchoProtocol(Protocol):
    """The protocol layer's echo (closes after flushing when the peer half-closes)."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


def server_endpoint(kind: str, tmp_path: Any, certs: Any, backlog: int = 50) -> Any:
    """A server endpoint of ``kind`` (``tcp``, ``unix``, ``tls``) on loopback."""
    if kind == "tcp":
        return TCP4ServerEndpoint(0, backlog=backlog, interface="127.0.0.1")
    if kind == "unix":
        return UNIXServerEndpoint(str(tmp_path / "echo.sock"), backlog=backlog)
    if kind == "tls":
        from greenpoint.tls import options_for_server_tls

        return wrap_server_tls(
            options_for_server_tls(certs.server_pem),
            TCP4ServerEndpoint(0, backlog=backlog, interface="127.0.0.1"),
        )
    raise ValueError(kind)


def client_for(kind: str, port: Any, certs: Any, timeout: float = 30) -> Any:
    """The client endpoint that reaches ``port`` (a ListeningPort of ``kind``)."""
    host = port.get_host()
    if kind == "tcp":
        return TCP4ClientEndpoint("127.0.0.1", host.port, timeout=timeout)
    if kind == "unix":
        return UNIXClientEndpoint(host.name, timeout=timeout)
    if kind == "tls":
        from greenpoint.tls import options_for_client_tls

        options = options_for_client_tls("localhost", trust_root=certs.ca_file)
        return wrap_client_tls(options, TCP4ClientEndpoint("127.0.0.1", host.port, timeout=timeout))
    raise ValueError(kind)


@contextlib.contextmanager
def echo_server(
    kind: str, api: str, tmp_path: Any, certs: Any, backlog: int = 50, handler: Any = None
) -> Iterator[Any]:
    """A running echo server: ``serve(echo_handler)`` or ``listen(EchoProtocol)``."""
    endpoint = server_endpoint(kind, tmp_path, certs, backlog)
    if api == "serve":
        port = endpoint.serve(handler or echo_handler)
    else:
        port = endpoint.listen(Factory.forProtocol(handler or EchoProtocol))
    try:
        yield port
    finally:
        port.stop_listening(timeout=5)


# -- one verified echo exchange -----------------------------------------------------


def random_chunks(size: int, chunk: int = 64 * KiB) -> Iterator[bytes]:
    """``size`` random bytes in chunks of at most ``chunk``."""
    left = size
    while left > 0:
        piece = os.urandom(min(chunk, left))
        left -= len(piece)
        yield piece


def echo_exchange(stream: Any, size: int, chunk: int = 64 * KiB) -> int:
    """Send ``size`` random bytes, half-close, read the echo; hashes must match.

    Sends and reads at once (a writer greenlet), as any peer of an echo server must,
    and returns the number of bytes verified.
    """
    sent_hash = hashlib.sha256()

    def send() -> None:
        for piece in random_chunks(size, chunk):
            sent_hash.update(piece)
            stream.sendall(piece)
        stream.shutdown(socket.SHUT_WR)  # the server's recv sees the end

    writer = gevent.spawn(send)
    try:
        received_hash = hashlib.sha256()
        received = 0
        while data := stream.recv(64 * KiB):
            received_hash.update(data)
            received += len(data)
        writer.get()
    finally:
        writer.kill()
    assert received == size, f"sent {size} bytes, {received} came back"
    assert received_hash.digest() == sent_hash.digest(), "the echo differs from what was sent"
    return received
