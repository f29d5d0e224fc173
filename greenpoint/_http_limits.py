"""HTTP/1.1 request limits for ``greenpoint.wsgi``: settings, header reading, canned answers.

What a slow or oversized request meets (docs/limits.md has the defaults and what
nginx, gunicorn and uvicorn do):

* ``header_timeout``: the request line and headers must have arrived this long after
  the connection opened (first request) or after their first byte (later requests).
  Then the connection is closed, with ``408 Request Timeout`` when part of a
  request had come (RFC 9110 §15.5.9), silently when nothing had.
* ``keepalive_timeout``: how long a kept-alive connection may wait for its next
  request before it is closed, silently (RFC 9112 §9.8: either side may close an
  idle connection at any time).
* ``max_request_line`` (414, RFC 9112 §3), ``max_header_size`` per field line and
  ``max_header_count`` fields (431, RFC 6585 §5).

One ``gevent.Timeout`` per request covers the whole head, not one per read.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = [
    "HTTPLimits",
    "RequestRejected",
    "read_header_block",
    "REQUEST_TIMEOUT_RESPONSE",
]

# pywsgi's own request-line limit (gevent.pywsgi.MAX_REQUEST_LINE); nginx's default
# large_client_header_buffers is 8 KiB as well.
DEFAULT_MAX_REQUEST_LINE = 8192
# gunicorn's limit_request_field_size and limit_request_fields (and http.client's
# header count limit).
DEFAULT_MAX_HEADER_SIZE = 8190
DEFAULT_MAX_HEADER_COUNT = 100

REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)
_URI_TOO_LONG_RESPONSE = (
    b"HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)
_HEADERS_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Connection: close\r\nContent-Length: 0\r\n\r\n"
)


class RequestRejected(Exception):
    """A request over a limit; ``status`` and ``response`` are what the client gets."""

    def __init__(self, status: str, response: bytes, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.response = response


def _optional_seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds or None; got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be positive and finite; got {value!r}")
    return float(value)


def _size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of 1 or more; got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class HTTPLimits:
    """The per-request limits of a WSGI server (timeouts ``None``: no limit).

    Raises:
        ValueError: naming the setting that is not a positive number.
    """

    header_timeout: float | None = None
    keepalive_timeout: float | None = None
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT

    def __post_init__(self) -> None:
        for name in ("header_timeout", "keepalive_timeout"):
            object.__setattr__(self, name, _optional_seconds(name, getattr(self, name)))
        for name in ("max_request_line", "max_header_size", "max_header_count"):
            _size(name, getattr(self, name))

    def check_request_line(self, line: bytes) -> None:
        """Raise :class:`RequestRejected` (414) for a line read with ``max_request_line + 1``."""
        if len(line) > self.max_request_line:
            raise RequestRejected(
                "414",
                _URI_TOO_LONG_RESPONSE,
                f"request line longer than {self.max_request_line} bytes (414)",
            )


def read_header_block(rfile: Any, limits: HTTPLimits) -> bytes:
    """Read header lines up to and including the empty line; return them joined.

    Blocks the calling greenlet. A line longer than ``max_header_size`` (without its
    CRLF) or more than ``max_header_count`` lines raise :class:`RequestRejected`
    (431). End of file before the empty line returns what came (the parser then
    sees an incomplete head, as it would have).
    """
    lines = []
    # +2 for CRLF, +1 to tell a line of exactly the limit from a longer one.
    read_limit = limits.max_header_size + 3
    while True:
        line = rfile.readline(read_limit)
        if len(line) >= read_limit or (len(line) == read_limit - 1 and not line.endswith(b"\n")):
            raise RequestRejected(
                "431",
                _HEADERS_TOO_LARGE_RESPONSE,
                f"a header line longer than {limits.max_header_size} bytes (431)",
            )
        lines.append(line)
        if line in (b"\r\n", b"\n", b""):
            return b"".join(lines)
        if len(lines) > limits.max_header_count:
            raise RequestRejected(
                "431",
                _HEADERS_TOO_LARGE_RESPONSE,
                f"more than {limits.max_header_count} header lines (431)",
            )
