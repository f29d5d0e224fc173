"""The limit flags of ``greenpoint relay`` and ``greenpoint wsgi``, and their defaults.

The library turns no limit on by itself; the front ends do, because they face clients
nobody vetted. Why each default (docs/limits.md has the table):

* ``--max-connections``: gunicorn's ``worker_connections`` is 1000 per worker; we take
  1000 too, but never more than the descriptor limit allows (``RLIMIT_NOFILE``, less a
  reserve for logs, the listeners and the application), counting two descriptors per
  relayed connection (client and upstream). Accepting past the descriptor limit would
  only trade a polite wait in the backlog for ``EMFILE``.
* ``--max-per-peer``: off. nginx, HAProxy, gunicorn and uvicorn have no per-client
  default either, and behind a proxy that sends no PROXY header every client shares
  the proxy's address: a default would cap the whole site.
* ``--idle-timeout``: wsgi 60 s (nginx's ``client_body_timeout`` and ``send_timeout``);
  relay 600 s (nginx's stream ``proxy_timeout`` is 10 min: relayed protocols such as
  SSH or a database may sit quietly for minutes).
* ``--header-timeout`` 10 s: a whole request head arrives in one packet from any real
  client; nginx allows 60 s, but at 1000 slots a 60 s window lets a slowloris client
  hold every slot with 17 new connections a second. HAProxy's anti-DoS example uses
  ``timeout http-request 5s``, Debian's Apache ``mod_reqtimeout`` 10-20 s.
* ``--keepalive-timeout`` 5 s: uvicorn's ``timeout_keep_alive`` (gunicorn: 2 s, nginx:
  75 s); an idle kept-alive connection holds a slot of ``--max-connections``.

``0`` turns a limit off.
"""

from __future__ import annotations

import argparse
import resource
from typing import Any

__all__ = [
    "RELAY_DEFAULTS",
    "WSGI_DEFAULTS",
    "add_http_timeout_flags",
    "add_limit_flags",
    "front_end_limits",
    "max_connections_for",
    "off_if_zero",
]

DEFAULT_MAX_CONNECTIONS = 1000  # gunicorn's worker_connections
FD_RESERVE = 64  # descriptors kept for logs, listeners, the application's own files

RELAY_DEFAULTS = {"idle_timeout": 600.0}
WSGI_DEFAULTS = {"idle_timeout": 60.0}
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEPALIVE_TIMEOUT = 5.0


def max_connections_for(fds_per_connection: int, soft_limit: int | None = None) -> int:
    """The default ``--max-connections``: 1000, or fewer if descriptors would run out."""
    if soft_limit is None:
        soft_limit, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft_limit == resource.RLIM_INFINITY or soft_limit <= 0:
        return DEFAULT_MAX_CONNECTIONS
    room = (soft_limit - FD_RESERVE) // fds_per_connection
    return max(1, min(DEFAULT_MAX_CONNECTIONS, room))


def off_if_zero(value: float | None) -> float | None:
    """Flags take ``0`` for "no limit"; the library takes ``None``."""
    return value if value else None


def count(text: str, expected: str = "a number >= 0") -> int:
    """An argparse type: a whole number >= 0; ``expected`` words the error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
    return value


def _count(text: str) -> int:
    return count(text, "0 (no limit) or more")


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, not {text!r}")
    return value


_seconds = seconds


def add_limit_flags(
    parser: argparse.ArgumentParser, defaults: dict[str, float], per: str = ""
) -> None:
    """``--max-connections``, ``--max-per-peer``, ``--idle-timeout``; ``per``: " per worker"."""
    group = parser.add_argument_group("limits (0: no limit; docs/limits.md)")
    group.add_argument(
        "--max-connections",
        type=_count,
        default=None,
        metavar="N",
        help=f"connections open at once{per}; at the cap new clients wait in "
        f"the backlog (default {DEFAULT_MAX_CONNECTIONS}, fewer if the descriptor limit "
        "is low)",
    )
    group.add_argument(
        "--max-per-peer",
        type=_count,
        default=0,
        metavar="N",
        help="connections from one client address; more are closed at once (default: no limit)",
    )
    group.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=defaults["idle_timeout"],
        metavar="SECONDS",
        help="close a connection with no byte either way for this long "
        f"(default {defaults['idle_timeout']:g})",
    )


def add_http_timeout_flags(parser: argparse.ArgumentParser) -> None:
    """``--header-timeout`` and ``--keepalive-timeout`` (wsgi)."""
    group = parser.add_argument_group("HTTP timeouts (0: no limit)")
    group.add_argument(
        "--header-timeout",
        type=_seconds,
        default=DEFAULT_HEADER_TIMEOUT,
        metavar="SECONDS",
        help="the request line and headers must arrive within this; else 408 and close "
        f"(default {DEFAULT_HEADER_TIMEOUT:g})",
    )
    group.add_argument(
        "--keepalive-timeout",
        type=_seconds,
        default=DEFAULT_KEEPALIVE_TIMEOUT,
        metavar="SECONDS",
        help="how long a kept-alive connection may wait for its next request "
        f"(default {DEFAULT_KEEPALIVE_TIMEOUT:g})",
    )


def front_end_limits(args: argparse.Namespace, fds_per_connection: int) -> dict[str, Any]:
    """The ``serve()`` keywords for the parsed limit flags."""
    max_connections = args.max_connections
    if max_connections is None:
        max_connections = max_connections_for(fds_per_connection)
    return {
        "max_connections": max_connections or None,
        "max_per_peer": args.max_per_peer or None,
        "idle_timeout": off_if_zero(args.idle_timeout),
    }
