"""Access-log lines in gunicorn's format language (``--access-log-format``); pure.

A format is a Python %-format over a mapping of *atoms*, the letters gunicorn
defines (``%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s``, ``%({user-agent}i)s`` for a
request header, ``%({content-type}o)s`` for a response header, ``%({remote_addr}e)s``
for a WSGI environment key). As in gunicorn, an atom that does not exist gives
``-``, the names inside ``{...}`` are case-insensitive, and double quotes in string
values are escaped so that a quoted field stays one field.

The values come from an :class:`AccessRecord`, so the line for a request is a
function of plain values and is tested without a server.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GUNICORN_DEFAULT_FORMAT",
    "AccessRecord",
    "access_atoms",
    "check_access_log_format",
    "format_access_line",
]

# gunicorn's default ``access_log_format`` (Apache's combined log format).
GUNICORN_DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

# WSGI keys that carry request headers without the HTTP_ prefix (PEP 3333).
_UNPREFIXED_HEADERS = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


@dataclass(frozen=True)
class AccessRecord:
    """What one served request left behind, as the access log sees it.

    ``status`` is the status line given to ``start_response`` (``"200 OK"``) or
    just the code; ``body_length`` the bytes of body sent (``None``: no response
    was started); ``duration`` the seconds from reading the request to the end of
    the response; ``finished_at`` a ``time.time()`` value for ``%(t)s``;
    ``raw_uri`` the request target as sent (gunicorn's ``RAW_URI``; without it,
    the path and query from the environment); ``request_line`` the line as
    received, for ``%(r)s`` (without it, ``METHOD RAW_URI PROTOCOL`` as gunicorn
    builds it; for a malformed request it is all there is).
    """

    environ: Mapping[str, Any]
    status: str
    response_headers: Sequence[tuple[str, str]] = ()
    body_length: int | None = None
    duration: float = 0.0
    finished_at: float = 0.0
    pid: int = 0
    raw_uri: str | None = None
    request_line: str | None = None


class _Atoms(dict[str, Any]):
    """gunicorn's ``SafeAtoms``: missing atoms are ``-``; ``{name}`` atoms ignore case."""

    def __missing__(self, key: str) -> Any:
        if key.startswith("{"):
            lowered = key.lower()
            if lowered != key and lowered in self:
                return self[lowered]
        return "-"


def _basic_auth_user(environ: Mapping[str, Any]) -> str | None:
    authorization = environ.get("HTTP_AUTHORIZATION")
    if not authorization or not authorization.lower().startswith("basic"):
        return None
    parts = authorization.split(" ", 1)
    if len(parts) != 2:
        return None
    try:
        decoded = base64.b64decode(parts[1].strip().encode("utf-8"), validate=True)
        return decoded.split(b":", 1)[0].decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _request_headers(environ: Mapping[str, Any]) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in _UNPREFIXED_HEADERS:
            name = _UNPREFIXED_HEADERS[key]
        else:
            continue
        headers[f"{{{name}}}i"] = value
    return headers


def _clf_time(when: float) -> str:
    # Common Log Format, local time with its offset: [10/Oct/2000:13:55:36 -0700]
    return time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(when))


def access_atoms(record: AccessRecord) -> dict[str, Any]:
    """Every atom gunicorn defines, for ``record`` (values not yet escaped)."""
    environ = record.environ
    micros_total = max(0, round(record.duration * 1_000_000))
    seconds, micros = divmod(micros_total, 1_000_000)
    path = record.raw_uri or environ.get("RAW_URI")
    if path is None:
        path = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path = f"{path}?{environ['QUERY_STRING']}"
    sent = record.body_length
    atoms: dict[str, Any] = {
        "h": environ.get("REMOTE_ADDR", "-"),
        "l": "-",
        "u": _basic_auth_user(environ) or "-",
        "t": _clf_time(record.finished_at),
        "r": record.request_line
        if record.request_line is not None
        else f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}",
        "s": record.status.split(None, 1)[0] if record.status else "-",
        "m": environ.get("REQUEST_METHOD"),
        "U": environ.get("PATH_INFO"),
        "q": environ.get("QUERY_STRING"),
        "H": environ.get("SERVER_PROTOCOL"),
        "b": "-" if sent is None else str(sent),
        "B": sent,
        "f": environ.get("HTTP_REFERER", "-"),
        "a": environ.get("HTTP_USER_AGENT", "-"),
        "T": seconds,
        "D": micros_total,
        "M": micros_total // 1000,
        "L": f"{seconds}.{micros:06d}",
        "p": f"<{record.pid}>",
    }
    atoms.update(_request_headers(environ))
    atoms.update({f"{{{name.lower()}}}o": value for name, value in record.response_headers})
    atoms.update({f"{{{str(key).lower()}}}e": value for key, value in environ.items()})
    return atoms


def format_access_line(log_format: str, record: AccessRecord) -> str:
    """The access-log line for ``record`` in ``log_format`` (gunicorn's language)."""
    atoms = _Atoms()
    for key, value in access_atoms(record).items():
        atoms[key] = value.replace('"', '\\"') if isinstance(value, str) else value
    return log_format % atoms


def check_access_log_format(log_format: str) -> None:
    """Raise ``ValueError`` saying what is wrong if ``log_format`` cannot format a line."""
    sample = AccessRecord(
        environ={"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.1"},
        status="200 OK",
        body_length=0,
    )
    try:
        format_access_line(log_format, sample)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(
            f"bad access log format {log_format!r}: {exc} (write atoms as %(h)s, "
            "%({user-agent}i)s; a literal % as %%)"
        ) from None
