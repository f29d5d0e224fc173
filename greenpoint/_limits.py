"""Connection limits of a listening port: the settings, the counts, the pure decisions.

Three limits, all off unless asked for (a library must not surprise):

* ``max_connections``: at the cap the accept loop stops calling ``accept()``, so new
  clients wait in the kernel's backlog, and it resumes as soon as a connection ends.
  Nothing is accepted and then dropped (nginx's ``worker_connections`` and gevent's
  ``spawn=Pool(n)`` behave the same way).
* ``max_per_peer``: connections from one client address (the PROXY header's client
  behind ``haproxy:``). The extra connection is closed at once: it has already been
  accepted, and holding it would spend the slot the limit protects.
* ``idle_timeout``: no byte received or sent for that long and the connection is
  closed. Nothing is done per read or write: for TCP the kernel already keeps the
  time of the last data segment each way (``TCP_INFO``'s ``tcpi_last_data_recv`` and
  ``tcpi_last_data_sent``, see tcp(7)), and one sweep per port reads it, sleeping
  until the next connection could become idle. UNIX sockets, which keep no such
  time, note it themselves (:mod:`greenpoint._stamped_socket`).

Everything here is a function of values; the I/O (the sweep, the accept loop) lives in
:mod:`greenpoint._serve`.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import struct
from typing import Any

from gevent import socket as _gsocket

__all__ = [
    "ConnectionLimits",
    "PortStats",
    "next_sweep_delay",
    "peer_key",
    "tcp_idle_seconds",
]

# struct tcp_info (linux/tcp.h): eight one-byte fields, nine u32s (rto ... fackets),
# then tcpi_last_data_sent, tcpi_last_ack_sent, tcpi_last_data_recv, in milliseconds.
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_INFO_SIZE = 64  # enough for the fields read here; the kernel copies what fits
_LAST_DATA_OFFSET = 44
_LAST_DATA = struct.Struct("=III")  # last_data_sent, last_ack_sent, last_data_recv
_TCP_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})
_GEVENT_SOCKET = _gsocket.socket

# The sweep wakes at most this often, relative to the timeout, so that a port whose
# connections go idle one after another does not sweep continuously: a connection is
# closed at most idle_timeout * (1 + SWEEP_SLACK) after its last byte.
SWEEP_SLACK = 0.05
MIN_SWEEP_DELAY = 0.01


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of 1 or more, or None; got {value!r}")
    return value


def _positive_seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds or None; got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be positive and finite; got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """The limits one listening port enforces; ``None`` means no limit.

    Raises:
        ValueError: a limit that is not a positive whole number (counts) or a
            positive finite number of seconds (``idle_timeout``), naming it.
    """

    max_connections: int | None = None
    max_per_peer: int | None = None
    idle_timeout: float | None = None

    def __post_init__(self) -> None:
        _positive_int("max_connections", self.max_connections)
        _positive_int("max_per_peer", self.max_per_peer)
        seconds = _positive_seconds("idle_timeout", self.idle_timeout)
        object.__setattr__(self, "idle_timeout", seconds)

    @property
    def any(self) -> bool:
        """Whether any limit is set."""
        return (
            self.max_connections is not None
            or self.max_per_peer is not None
            or self.idle_timeout is not None
        )


@dataclasses.dataclass(frozen=True)
class PortStats:
    """What a listening port has done so far; ``ListeningPort.stats`` gives a fresh one.

    Attributes:
        accepted: connections accepted since the port started.
        active: connections open now (including those still in a TLS handshake or
            waiting for their PROXY header).
        closed_idle: closed by ``idle_timeout``.
        refused_by_limit: closed at once by ``max_per_peer``.
        paused_at_cap: times accepting paused because ``max_connections`` were open.
        handshake_timeouts: closed because the TLS handshake or the PROXY header did
            not finish in time.
        header_timeouts: HTTP only: closed because the request line and headers did
            not arrive within ``header_timeout``.
        keepalive_timeouts: HTTP only: keep-alive connections closed after
            ``keepalive_timeout`` without a new request.
        rejected_requests: HTTP only: answered 414 or 431 (request line or headers
            over the limits).
    """

    accepted: int = 0
    active: int = 0
    closed_idle: int = 0
    refused_by_limit: int = 0
    paused_at_cap: int = 0
    handshake_timeouts: int = 0
    header_timeouts: int = 0
    keepalive_timeouts: int = 0
    rejected_requests: int = 0


def peer_key(address: Any) -> str | None:
    """What ``max_per_peer`` counts by: the client's IP address, or ``None``.

    UNIX-socket and pipe peers have no address that tells clients apart, so they
    are not counted.
    """
    host = getattr(address, "host", None)
    if isinstance(host, str) and hasattr(address, "port"):
        return host
    return None


def tcp_idle_seconds(info: bytes) -> float:
    """Seconds since the last data segment either way, from a ``TCP_INFO`` answer."""
    sent, _ack_sent, received = _LAST_DATA.unpack_from(info, _LAST_DATA_OFFSET)
    return min(int(sent), int(received)) / 1000.0


def stream_idle_seconds(stream: Any) -> float | None:
    """How long ``stream`` has been idle, from the kernel; ``None`` if it cannot tell.

    Works for TCP streams: a gevent socket, or a wrapper (TLS, PROXY) that passes
    ``getsockopt`` through; and for a :class:`~greenpoint._stamped_socket.StampedSocket`
    (UNIX sockets on ports with ``idle_timeout``). Pipes keep no such time.
    """
    # A gevent socket's own family and getsockopt go through Python wrappers (an enum
    # per call); the raw socket under it answers in C.
    raw = stream._sock if type(stream) is _GEVENT_SOCKET else stream
    if _TCP_INFO is None or getattr(raw, "family", None) not in _TCP_FAMILIES:
        # A UNIX socket keeps its own time (StampedSocket), also under a wrapper
        # (a PROXY stream) that passes attributes through.
        idle_seconds = getattr(stream, "idle_seconds", None)
        return None if idle_seconds is None else float(idle_seconds())
    try:
        info = raw.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_SIZE)
    except (OSError, AttributeError, TypeError, ValueError):
        return None
    if len(info) < _LAST_DATA_OFFSET + _LAST_DATA.size:
        return None
    return tcp_idle_seconds(info)


def next_sweep_delay(idle_timeout: float, soonest_remaining: float) -> float:
    """How long the idle sweep sleeps: until the next connection could be idle too long.

    ``soonest_remaining`` is the least time any open connection still has (the whole
    timeout when none is open: a new one cannot expire sooner). Never less than
    :data:`SWEEP_SLACK` of the timeout, so the sweep stays cheap whatever happens.
    """
    floor = max(MIN_SWEEP_DELAY, idle_timeout * SWEEP_SLACK)
    return max(floor, min(soonest_remaining, idle_timeout))
