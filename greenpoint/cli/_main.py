"""The command line: ``greenpoint check|connect|listen|relay|wsgi``.

Exit codes scripts can test: 0 success; 1 a bad description, a failed connect or
bind, a broken connection, an application that cannot be loaded; 2 a usage error
(argparse's); 130 interrupted by Ctrl-C. Errors are one line on stderr, prefixed
``greenpoint <command>:``; ``-v`` adds detail (every connect attempt, live byte
counts).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import gevent

from greenpoint import __version__
from greenpoint._address import as_address, listener_address
from greenpoint.cli._limit_flags import (
    RELAY_DEFAULTS,
    WSGI_DEFAULTS,
    add_http_timeout_flags,
    add_limit_flags,
    count,
    front_end_limits,
    off_if_zero,
    seconds,
)

__all__ = ["build_parser", "main"]

log = logging.getLogger("greenpoint.cli")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_GRACE = 30.0  # seconds a stop waits for running connections and requests
DEFAULT_WORKER_TIMEOUT = 30.0  # seconds without a heartbeat before a worker is replaced


class CommandError(Exception):
    """A failure to report as one line and exit 1."""


# -- check -------------------------------------------------------------------------


def _run_check(args: argparse.Namespace) -> int:
    from greenpoint._redact import redact_description
    from greenpoint.cli._explain import explain_either, format_explanation, prefix_table
    from greenpoint.errors import DescriptionError

    if args.table:
        sys.stdout.write(prefix_table())
        return EXIT_OK
    if not args.descriptions:
        raise CommandError("give at least one description, e.g. greenpoint check tcp:8080")
    sides = ["client"] if args.client else ["server"] if args.server else ["client", "server"]
    status = EXIT_OK
    for text in args.descriptions:
        try:
            explanations = explain_either(text, sides)
        except DescriptionError as exc:
            print(f"greenpoint check: {redact_description(text)}: {exc}", file=sys.stderr)
            status = EXIT_FAILURE
            continue
        if args.quiet:
            continue
        print(redact_description(text))
        for explanation in explanations:
            print(format_explanation(explanation, "  "))
    return status


# -- connect and listen: a connection to stdio ---------------------------------------


class _KeepStdoutOpen:
    """The stdio stream, except that a half-close does not close our stdout: with
    ``--keep-open`` the next connection still writes to it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def recv(self, size: int) -> bytes:
        data: bytes = self._stream.recv(size)
        return data

    def sendall(self, data: bytes) -> None:
        self._stream.sendall(data)

    def shutdown(self, how: int) -> None:
        pass


def _take_stdio() -> Any:
    from greenpoint.endpoints.stdio import StandardIOEndpoint

    listener = StandardIOEndpoint().bind()
    stream, _ = listener.accept()
    listener.close()
    return stream


def _describe_error(exc: BaseException, verbose: int = 0) -> str:
    """The error's message; only its first line unless ``verbose``."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror and text.startswith("[Errno"):
        text = exc.strerror  # ours already say what failed; "[Errno 98]" adds nothing
    return text if verbose else text.splitlines()[0]


def _run_connect(args: argparse.Namespace) -> int:
    from greenpoint._registry import client_from_string
    from greenpoint.cli._pump import Pump

    endpoint = client_from_string(args.client)
    # stdio first: with fd 0 or 1 closed, a socket opened before would take its number.
    with _take_stdio() as stdio:
        connection = _open(endpoint, args)
        with connection:
            pump = Pump(stdio, connection)
            pump.run()
    if args.verbose:
        log.info("%d bytes sent, %d received, %.3f s", pump.up, pump.down, pump.elapsed)
    if pump.error is not None:
        raise CommandError(f"connection lost: {_describe_error(pump.error, args.verbose)}")
    return EXIT_OK


def _open(endpoint: Any, args: argparse.Namespace) -> Any:
    opener = getattr(endpoint, "open_with_info", None)
    try:
        if opener is None:
            connection = endpoint.open(timeout=args.timeout)
        else:
            connection, info = opener(timeout=args.timeout)
            if args.verbose:
                log.info("%s", info.describe())
    except OSError as exc:
        raise CommandError(_describe_error(exc, args.verbose)) from exc
    if args.verbose:
        log.info("connected to %s", endpoint)
    return connection


def _run_listen(args: argparse.Namespace) -> int:
    from greenpoint._registry import server_from_string
    from greenpoint.cli._pump import Pump

    endpoint = server_from_string(args.server)
    failed = False
    # stdio first: with fd 0 or 1 closed, a socket bound before would take its number.
    with _take_stdio() as stdio:
        listener = _bind(endpoint)
        with contextlib.closing(listener):
            log.info("listening on %s", listener_address(listener))
            local = _KeepStdoutOpen(stdio) if args.keep_open else stdio
            while True:
                try:
                    connection, address = listener.accept()
                except OSError as exc:
                    raise CommandError(f"accept failed: {exc}") from exc
                address = as_address(getattr(listener, "family", None), address, connection)
                if args.verbose:
                    log.info("connection from %s", address)
                with connection:
                    pump = Pump(local, connection)
                    pump.run()
                if args.verbose:
                    log.info(
                        "%s: %d bytes sent, %d received, %.3f s",
                        address,
                        pump.up,
                        pump.down,
                        pump.elapsed,
                    )
                if pump.error is not None:
                    reason = _describe_error(pump.error, args.verbose)
                    log.error("greenpoint listen: %s: connection lost: %s", address, reason)
                    failed = True
                if not args.keep_open:
                    break
    return EXIT_FAILURE if failed else EXIT_OK


# -- relay -------------------------------------------------------------------------


def _run_relay(args: argparse.Namespace) -> int:
    from greenpoint._registry import client_from_string, server_from_string
    from greenpoint.cli._fd_store import restore_endpoint
    from greenpoint.cli._relay import Relay
    from greenpoint.cli._service import serve_until_stopped

    server = restore_endpoint(server_from_string(args.server), args.server)
    client = client_from_string(args.client)
    relay = Relay(client, timeout=args.timeout, verbose=args.verbose, send_proxy=args.send_proxy)
    limits = front_end_limits(args, fds_per_connection=2)
    port = _bind_port(lambda: server.serve(relay, **limits))
    log.info("relaying %s -> %s", port.get_host(), client)
    progress = gevent.spawn(relay.report_progress, args.progress) if args.verbose else None
    try:  # sd_notify, systemd's fd store, and Accept=yes ports that end by themselves
        serve_until_stopped(port, args.grace, args.server)
    finally:
        if progress is not None:
            progress.kill()
    log.info("relay stopped: %d connections", relay.total)
    return EXIT_OK


# -- wsgi --------------------------------------------------------------------------


def _run_wsgi(args: argparse.Namespace) -> int:
    from greenpoint._registry import server_from_string
    from greenpoint.cli._pidfile import PidFile, PidFileError
    from greenpoint.cli._workers import ApplicationLoadError, serve_wsgi
    from greenpoint.cli._wsgi_flags import Deployment

    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    try:
        deployment = Deployment.from_args(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    deployment.apply_log_level()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does, for the console script too
    from greenpoint.cli._fd_store import restore_endpoint, store_listener

    texts = [args.server, *args.listen]
    endpoints = [restore_endpoint(server_from_string(text), text) for text in texts]
    pid_file = None if deployment.pid_file is None else PidFile(deployment.pid_file)
    listeners = []
    try:
        if pid_file is not None:
            try:
                pid_file.write()
            except PidFileError as exc:
                raise CommandError(str(exc)) from exc
        for endpoint, text in zip(endpoints, texts, strict=True):
            listeners.append(_bind(endpoint))
            if getattr(listeners[-1], "one_connection", False):
                raise CommandError(
                    f"{text}: a connected socket (systemd Accept=yes) is one connection, "
                    "not a listener for workers; use Accept=no for greenpoint wsgi"
                )
            store_listener(listeners[-1], text)  # when systemd keeps fds (FDSTORE)
        if deployment.identity is not None:
            from greenpoint.cli._worker_app import import_before_switching_user

            import_before_switching_user(deployment.monkey_patch)
            _drop_privileges(deployment.identity, listeners)
        # The application is imported in each worker, not here: a SIGHUP's new
        # workers import it afresh (and --monkey-patch patches there, first).
        return serve_wsgi(
            listeners,
            args.app,
            workers=args.workers,
            graceful_timeout=args.grace,
            timeout=args.worker_timeout,
            max_requests=args.max_requests,
            max_requests_jitter=args.max_requests_jitter,
            access_log=not args.no_access_log,
            monkey_patch=deployment.monkey_patch,
            server_options={
                **front_end_limits(args, fds_per_connection=1),
                "header_timeout": off_if_zero(args.header_timeout),
                "keepalive_timeout": off_if_zero(args.keepalive_timeout),
                **deployment.server_options(not args.no_access_log),
            },
        )
    except ApplicationLoadError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        for listener in listeners:
            try:
                listener.close()
            except OSError:
                pass
        if pid_file is not None:
            pid_file.remove()


def _drop_privileges(identity: Any, listeners: list[Any]) -> None:
    from greenpoint._address import UNIXAddress
    from greenpoint.cli._privileges import PrivilegeError, chown_unix_sockets, drop_privileges

    paths = []
    for listener in listeners:
        host = listener_address(listener)
        if isinstance(host, UNIXAddress) and host.name and not host.abstract:
            paths.append(host.name)
    try:
        chown_unix_sockets(paths, identity)
        drop_privileges(identity)
    except PrivilegeError as exc:
        raise CommandError(str(exc)) from exc
    log.info("running as %s", identity.describe())


# -- shared ------------------------------------------------------------------------


def _bind(endpoint: Any) -> Any:
    from greenpoint.errors import ListenError

    try:
        return endpoint.bind()
    except ListenError as exc:
        raise CommandError(_describe_error(exc)) from exc


def _bind_port(start: Any) -> Any:
    from greenpoint.errors import ListenError

    try:
        return start()
    except ListenError as exc:
        raise CommandError(_describe_error(exc)) from exc


# -- the parser --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per front end."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="more detail on stderr (-vv: debug)",
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="errors only"
    )

    parser = argparse.ArgumentParser(
        prog="greenpoint",
        description="Connect, listen, relay and serve WSGI on any endpoint description "
        "(tcp:, unix:, ssl:/tls:, systemd:, haproxy:, ...).",
        epilog="Exit status: 0 success, 1 failure (one line on stderr), 2 usage error.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"greenpoint {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="validate descriptions and print what they mean",
        description="Parse each description and print its endpoint and every key with its "
        "value and default. Exit 1 (with the error) if any is invalid: for checking "
        "configuration in CI.",
    )
    check.add_argument("descriptions", nargs="*", metavar="DESCRIPTION")
    side = check.add_mutually_exclusive_group()
    side.add_argument("--client", action="store_true", help="check as client descriptions only")
    side.add_argument("--server", action="store_true", help="check as server descriptions only")
    check.add_argument("--table", action="store_true", help=argparse.SUPPRESS)
    check.set_defaults(run=_run_check)

    connect = commands.add_parser(
        "connect",
        parents=[common],
        help="connect and copy stdin to the connection, the connection to stdout",
        description="Like netcat: connect to CLIENT, copy stdin to the connection and the "
        "connection to stdout until both directions have ended. End-of-file on stdin "
        "half-closes the connection; the peer's end-of-file closes stdout.",
    )
    connect.add_argument("client", metavar="CLIENT", help="client description, e.g. tcp:host:80")
    connect.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        help="seconds to connect (default: the endpoint's)",
    )
    connect.set_defaults(run=_run_connect)

    listen = commands.add_parser(
        "listen",
        parents=[common],
        help="accept a connection and copy it to stdin/stdout",
        description="Listen on SERVER, accept one connection and copy it to stdio as "
        "`connect` does; with --keep-open, accept the next when it ends.",
    )
    listen.add_argument("server", metavar="SERVER", help="server description, e.g. tcp:8080")
    listen.add_argument(
        "-k", "--keep-open", action="store_true", help="accept connections one after another"
    )
    listen.set_defaults(run=_run_listen)

    relay = commands.add_parser(
        "relay",
        parents=[common],
        help="forward every connection on SERVER to CLIENT",
        description="For every connection accepted on SERVER, connect to CLIENT and copy "
        "bytes both ways (a port forward, a TLS terminator, a UNIX-to-TCP bridge). One log "
        "line per connection with the bytes each way and the duration; -v shows live "
        "counts. SIGTERM or Ctrl-C stops: no new connections, running ones get --grace "
        "seconds.",
    )
    relay.add_argument("server", metavar="SERVER", help="where to listen, e.g. tcp:8080")
    relay.add_argument("client", metavar="CLIENT", help="where to connect, e.g. unix:/run/app.sock")
    relay.add_argument(
        "--timeout",
        "--connect-timeout",
        dest="timeout",
        type=seconds,
        default=None,
        help="seconds to connect to CLIENT (default: the endpoint's, 30 for tcp:)",
    )
    add_limit_flags(relay, RELAY_DEFAULTS)
    relay.add_argument(
        "--progress",
        type=seconds,
        default=1.0,
        metavar="SECONDS",
        help="with -v, how often to print live byte counts (default 1)",
    )
    relay.add_argument(
        "--grace",
        type=seconds,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=f"on stop, how long running connections may go on (default {DEFAULT_GRACE:g})",
    )
    proxy_header = relay.add_mutually_exclusive_group()
    proxy_header.add_argument(
        "--send-proxy-v2",
        dest="send_proxy",
        action="store_const",
        const=2,
        help="send a PROXY v2 header with the client's address (and TLS facts) first, "
        "as HAProxy's send-proxy-v2; for a haproxy: server behind",
    )
    proxy_header.add_argument(
        "--send-proxy",
        dest="send_proxy",
        action="store_const",
        const=1,
        help="the same with a PROXY v1 (text) header",
    )
    relay.set_defaults(run=_run_relay)

    wsgi = commands.add_parser(
        "wsgi",
        parents=[common],
        help="serve a WSGI application",
        description="Serve the WSGI application APP (module:name; the current directory "
        "is on the import path) on SERVER and every --listen description, with "
        "gevent.pywsgi, in worker processes under a supervisor. SIGTERM stops "
        "gracefully (running requests finish, up to --graceful-timeout seconds; exit 0), "
        "SIGINT/SIGQUIT at once, SIGHUP reloads (new workers, old ones drain).",
    )
    wsgi.add_argument("server", metavar="SERVER", help="server description, e.g. tcp:8080")
    wsgi.add_argument("app", metavar="APP", help="module:application")
    wsgi.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="SERVER",
        help="another description to serve on (repeatable)",
    )
    wsgi.add_argument(
        "-w",
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the listening sockets (default 1)",
    )
    wsgi.add_argument(
        "--graceful-timeout",
        "--grace",
        dest="grace",
        type=seconds,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help="on SIGTERM or SIGHUP, how long running requests may go on "
        f"(default {DEFAULT_GRACE:g})",
    )
    wsgi.add_argument(
        "--timeout",
        dest="worker_timeout",
        type=seconds,
        default=DEFAULT_WORKER_TIMEOUT,
        metavar="SECONDS",
        help="replace a worker silent (its hub blocked) this long; 0: never "
        f"(default {DEFAULT_WORKER_TIMEOUT:g})",
    )
    wsgi.add_argument(
        "--max-requests",
        type=count,
        default=0,
        metavar="N",
        help="replace a worker after N requests, gracefully (default 0: never)",
    )
    wsgi.add_argument(
        "--max-requests-jitter",
        type=count,
        default=0,
        metavar="J",
        help="add a random 0..J to each worker's --max-requests",
    )
    wsgi.add_argument("--no-access-log", action="store_true", help="no line per request")
    add_limit_flags(wsgi, WSGI_DEFAULTS, per=" per worker")
    add_http_timeout_flags(wsgi)
    from greenpoint.cli._wsgi_flags import add_deployment_flags

    add_deployment_flags(wsgi)
    wsgi.set_defaults(run=_run_wsgi)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from greenpoint.errors import DescriptionError, GreenpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    # -v and -q may come before or after the command; given nowhere, they are absent.
    args.verbose = getattr(args, "verbose", 0)
    args.quiet = getattr(args, "quiet", False)
    _configure_logging(args.verbose, args.quiet)
    try:
        status: int = args.run(args)
        return status
    except (CommandError, DescriptionError) as exc:
        print(f"greenpoint {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (GreenpointError, OSError) as exc:  # stdio taken, a socket failing...
        if args.verbose > 1:
            log.exception("greenpoint %s failed", args.command)
        print(f"greenpoint {args.command}: {_describe_error(exc, args.verbose)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
