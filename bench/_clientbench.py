"""Measure one client contender against the fixed peer, in fresh processes."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from _harness import START_TIMEOUT, BenchError, Child, Context, Unavailable, parse_json


@dataclass(frozen=True)
class ClientContender:
    """A client program in ``bench/clients/`` and its flags."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    tls: bool = False  # against the TLS first-byte peer, trusting the run's CA


def start_peer(ctx: Context, port: int = 0, tls: bool = False) -> tuple[Child, int]:
    """Start the fixed first-byte server on 127.0.0.1 (``port`` 0: any free port).

    ``tls``: it finishes a TLS handshake (the run's certificate) before the byte.
    """
    args = ["first-byte-server", "--port", str(port)]
    if tls:
        args += ["--tls-files", *map(str, ctx.tls_files())]
    peer = ctx.loadgen(args)
    try:
        return peer, int(peer.expect("READY", START_TIMEOUT))
    except BaseException:
        peer.stop()
        raise


@contextlib.contextmanager
def broken_ipv6(kind: str, ctx: Context) -> Iterator[tuple[Child, int]]:
    """A peer on 127.0.0.1:P while [::1]:P is a black hole or refuses connections.

    ``kind="blackhole"``: a listener with ``listen(0)`` whose one-slot accept queue is
    already full, so Linux drops further SYNs and connect() hangs. ``kind="refused"``:
    a socket bound to the port but not listening, so connect() gets a RST at once.
    """
    for _ in range(20):
        held: list[socket.socket] = []
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            held.append(v6)
            v6.bind(("::1", 0))
            port = v6.getsockname()[1]
            if kind == "blackhole":
                v6.listen(0)
                filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                held.append(filler)
                filler.connect(("::1", port))
                _check_black_hole(port)
            try:
                peer, _ = start_peer(ctx, port)
            except BenchError:
                continue  # 127.0.0.1:P was taken; try another port
            try:
                yield peer, port
            finally:
                peer.stop()
            return
        finally:
            for sock in held:
                sock.close()
    raise BenchError("could not find a port free on both ::1 and 127.0.0.1")


def _check_black_hole(port: int) -> None:
    probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.1)
        probe.connect(("::1", port))
    except TimeoutError:
        return
    except OSError as exc:
        raise BenchError(f"black hole on [::1]:{port} answered: {exc}") from exc
    finally:
        probe.close()
    raise BenchError(f"black hole on [::1]:{port} accepted a connection")


def ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 at all."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def run_client(
    ctx: Context, contender: ClientContender, args: list[str], timeout: float
) -> dict[str, Any]:
    """Run the client program once (fresh process, contender's core); its RESULT."""
    child = ctx.start(
        contender.name, f"clients/{contender.script}", [*contender.args, *args], ctx.contender_cpu
    )
    try:
        with child:
            return parse_json(child.expect("RESULT", timeout), contender.name)
    except Unavailable as exc:
        return {"unavailable": str(exc)}
    except BenchError as exc:
        return {"error": str(exc)}
