"""What every contender program shares: its arguments and the READY / UNAVAILABLE lines.

A contender binds 127.0.0.1 on a free port (or ``--port``), prints ``READY <port>``
and serves until it is sent SIGTERM. With ``--reuse-port`` its listening socket has
``SO_REUSEPORT``, so that several contender processes started apart can listen on the
same port and share its connections (the ``idle-100k`` regime). One whose greenpoint API is not there yet prints
``UNAVAILABLE <why>`` and exits with status 3, so the harness reports it instead of
failing.
"""

from __future__ import annotations

import argparse
import socket
import sys

READ_SIZE = 65536
HOST = "127.0.0.1"
# Every server gets the same accept queue, long enough for the bursts of the bench.
BACKLOG = 1024
UNAVAILABLE_EXIT = 3


def arguments(description: str, extra: list[tuple[str, dict]] | None = None) -> argparse.Namespace:
    """Parse ``[--tls CERT KEY]`` plus any contender-specific flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), default=None)
    # The large-read regime (scenario "bulk") asks every recv loop for 256 KiB, as
    # asyncio and uvloop always do; servers whose library picks the size ignore it.
    parser.add_argument("--read-size", type=int, default=READ_SIZE)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="SO_REUSEPORT: share the port with other processes",
    )
    for flag, options in extra or []:
        parser.add_argument(flag, **options)
    return parser.parse_args()


def ready(port: int) -> None:
    """Tell the harness we listen on ``port``."""
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()


def unavailable(why: str) -> None:
    """Tell the harness this contender cannot run yet, and exit."""
    sys.stdout.write(f"UNAVAILABLE {why}\n")
    sys.stdout.flush()
    sys.exit(UNAVAILABLE_EXIT)


def reuse_port_socket(port: int) -> socket.socket:
    """A stdlib socket listening on ``HOST:port`` with ``SO_REUSEADDR`` and ``SO_REUSEPORT``.

    Every process that listens so on one port gets a share of its connections: the
    kernel picks the listener by a hash of each connection's 4-tuple.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((HOST, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock
