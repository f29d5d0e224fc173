"""Measure one server contender under the fixed load generator, in fresh processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _harness import (
    START_TIMEOUT,
    BenchError,
    Child,
    Context,
    Unavailable,
    cpu_between,
    cpu_sample,
    parse_json,
    rss_bytes,
)


@dataclass(frozen=True)
class ServerContender:
    """A server program in ``bench/servers/`` and the flags it is started with."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    optional: bool = False  # measured only when named in --contenders


# Plain TCP echo servers. "gevent" is the baseline and "gevent-control" the same program
# again: its ratio to "gevent" shows how noisy this machine was during the run.
PLAIN = [
    ServerContender("gevent", "gevent_echo.py"),
    ServerContender("gevent-control", "gevent_echo.py"),
    ServerContender("greenpoint-serve", "greenpoint_serve.py"),
    ServerContender("greenpoint-protocol", "greenpoint_protocol.py"),
    # The same two with every connection limit set but none reached (issue 14):
    # their ratios to the two above are what the limits cost.
    ServerContender("greenpoint-serve-limits", "greenpoint_serve.py", ("--limits",)),
    ServerContender("greenpoint-protocol-limits", "greenpoint_protocol.py", ("--limits",)),
    ServerContender("twisted", "twisted_echo.py"),
    ServerContender("asyncio", "asyncio_echo.py"),
    ServerContender("uvloop", "asyncio_echo.py", ("--uvloop",)),
    ServerContender("trio", "trio_echo.py"),
    # TCP_NODELAY apart (issue 21): raw gevent with it, greenpoint without it. Not in
    # the default runs; name them with --contenders.
    ServerContender("gevent-nodelay", "gevent_echo.py", ("--nodelay",), optional=True),
    ServerContender(
        "greenpoint-serve-nagle", "greenpoint_serve.py", ("--no-nodelay",), optional=True
    ),
    ServerContender(
        "greenpoint-protocol-nagle", "greenpoint_protocol.py", ("--no-nodelay",), optional=True
    ),
    # listen() with a greenlet per connection, the default before loop dispatch.
    ServerContender(
        "greenpoint-protocol-greenlet",
        "greenpoint_protocol.py",
        ("--dispatch", "greenlet"),
        optional=True,
    ),
    # A prototype of callback dispatch on gevent's loop (not greenpoint): the floor
    # for the design in bench/README.md.
    ServerContender("gevent-callback", "gevent_callback_echo.py", optional=True),
]

# TLS echo servers: the baseline is gevent + pyOpenSSL written by hand.
TLS = [
    ServerContender("gevent-pyopenssl", "gevent_pyopenssl.py"),
    ServerContender("gevent-pyopenssl-control", "gevent_pyopenssl.py"),
    ServerContender("greenpoint-serve", "greenpoint_serve.py"),
    ServerContender("greenpoint-protocol", "greenpoint_protocol.py"),
    ServerContender("twisted", "twisted_echo.py"),
    ServerContender("asyncio", "asyncio_echo.py"),
]


def start_server(
    ctx: Context, contender: ServerContender, tls: bool, extra: tuple[str, ...] = ()
) -> tuple[Child, int]:
    """Start a fresh server on the contender's core; return it and its port."""
    args = [*contender.args, *extra]
    if tls:
        cert, key = ctx.tls_files()
        args += ["--tls", str(cert), str(key)]
    child = ctx.start(contender.name, f"servers/{contender.script}", args, ctx.contender_cpu)
    try:
        port = int(child.expect("READY", START_TIMEOUT))
    except BaseException:
        child.stop()
        raise
    return child, port


def start_servers(ctx: Context, contender: ServerContender, count: int) -> tuple[list[Child], int]:
    """Start ``count`` fresh server processes sharing one port; return them and the port.

    One process listens as always. Several are started one after another (exec'd, not
    forked, so they share no copy-on-write memory), each with ``SO_REUSEPORT``: the
    first on a free port, the others on the first's.
    """
    if count == 1:
        server, port = start_server(ctx, contender, tls=False)
        return [server], port
    servers: list[Child] = []
    try:
        first, port = start_server(ctx, contender, tls=False, extra=("--reuse-port",))
        servers.append(first)
        for _ in range(count - 1):
            other, other_port = start_server(
                ctx, contender, tls=False, extra=("--reuse-port", "--port", str(port))
            )
            servers.append(other)
            if other_port != port:
                raise BenchError(
                    f"{contender.name}: listens on {other_port}, not the shared {port}"
                )
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers, port


def measure(
    ctx: Context,
    contender: ServerContender,
    loadgen_args: list[str],
    *,
    tls: bool,
    timeout: float,
) -> dict[str, Any]:
    """Server CPU (and the load generator's result) for one measured load phase.

    The load generator warms the server up first (a short echo or a few connections),
    then the server's CPU is read, the measured phase runs, and the CPU is read again.
    """
    try:
        server, port = start_server(ctx, contender, tls)
    except Unavailable as exc:
        return {"unavailable": str(exc)}
    except BenchError as exc:
        return {"error": str(exc)}
    try:
        args = [*loadgen_args, "--port", str(port)] + (["--tls"] if tls else [])
        with ctx.loadgen(args) as generator:
            generator.expect("WARM", timeout)
            rss_before = rss_bytes(server.pid)
            before = cpu_sample(server.pid)
            generator.send_line()
            result = parse_json(generator.expect("RESULT", timeout), "loadgen")
            after = cpu_sample(server.pid)
            result["server_rss_bytes"] = rss_bytes(server.pid)
            result["server_rss_before_bytes"] = rss_before
        if server.proc.poll() is not None:
            raise BenchError(f"{contender.name} died during the load{server.log_tail()}")
        result["server_cpu_s"] = cpu_between(before, after)
        return result
    except BenchError as exc:
        return {"error": str(exc)}
    finally:
        server.stop()
