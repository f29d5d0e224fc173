"""Serve a WSGI application on any server endpoint, with gevent.pywsgi doing the HTTP.

::

    from greenpoint import wsgi

    port = wsgi.serve("tcp:8080:interface=127.0.0.1", application)
    port = wsgi.serve("unix:/run/app.sock", application)
    port = wsgi.serve("ssl:8443:privateKey=key.pem:certKey=cert.pem", application)
    port = wsgi.serve("haproxy:tcp:8080", application)     # REMOTE_ADDR: the real client
    port.serve_forever()

gevent's ``WSGIServer`` wants a plain listening socket. greenpoint's listeners are
not always one (a TLS listener, a PROXY-protocol listener, stdio), so instead each
connection that greenpoint's own accept loop hands over gets a pywsgi
``WSGIHandler``: the request parsing, keep-alive, chunking and error pages are
gevent's; listening, TLS handshakes, PROXY headers and stopping are greenpoint's.

Stopping (``port.stop_listening(timeout)``) is graceful: the listener closes, idle
keep-alive connections are closed at once, a connection that has not sent its first
request yet gets :data:`NEW_CONNECTION_GRACE` seconds to do so, and requests being
served finish (their response says ``Connection: close``) for up to ``timeout``
seconds before they are cut off.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import logging
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, cast

import gevent
import gevent.socket
from gevent import pywsgi

from greenpoint import __version__
from greenpoint._access_log import AccessRecord, check_access_log_format, format_access_line
from greenpoint._address import host_address
from greenpoint._checks import check_timeout
from greenpoint._forwarded import (
    ForwardedAllowList,
    apply_forwarded_headers,
    parse_forwarded_allow_ips,
)
from greenpoint._http_limits import (
    REQUEST_TIMEOUT_RESPONSE,
    HTTPLimits,
    RequestRejected,
    read_header_block,
)
from greenpoint._limits import ConnectionLimits, PortStats
from greenpoint._registry import server_from_string
from greenpoint._serve import ListeningPort
from greenpoint.errors import IdleTimeoutError

__all__ = [
    "NEW_CONNECTION_GRACE",
    "WSGIHandler",
    "WSGIPort",
    "WSGIServer",
    "load_application",
    "serve",
    "serve_listener",
]

logger = logging.getLogger("greenpoint.wsgi")

# How long a stop waits for a connection that has not sent its first request yet.
# Go's http.Server.Shutdown treats such connections as idle after 5 s; a second is
# enough on any network a stop is meant to be quick on, and a request that arrives
# in time is still served.
NEW_CONNECTION_GRACE = 1.0

_DEFAULT: Any = "default"

# A response whose first piece of body is at most this long leaves in the same write
# as its headers: a request/response exchange is then one segment each way (pywsgi
# writes them apart, and a second small write is what Nagle and delayed ACKs stall).
# Larger bodies go on their own, so that no big buffer is copied.
ONE_WRITE_LIMIT = 64 * 1024

# A connection's state, as far as stopping is concerned.
_NEW, _IDLE, _BUSY = "new", "idle", "busy"


class _Connection:
    __slots__ = ("greenlet", "opened", "served", "state")

    def __init__(self, greenlet: Any) -> None:
        self.greenlet = greenlet
        self.state = _NEW
        self.served = 0
        self.opened = time.monotonic()


class _LoggerFile:
    """A ``write``-able object that sends each line to a logger."""

    def __init__(self, log: logging.Logger, level: int) -> None:
        self._log = log
        self._level = level

    def write(self, text: str) -> None:
        text = text.rstrip("\n")
        if text:
            self._log.log(self._level, "%s", text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


class _NoLog:
    def write(self, text: str) -> None:
        pass

    def writelines(self, lines: Any) -> None:
        pass

    def flush(self) -> None:
        pass


_NO_LOG = _NoLog()


def _log_target(value: Any, level: int) -> Any:
    if value == _DEFAULT:
        return _LoggerFile(logger, level)
    if value is None:
        return _NO_LOG
    if isinstance(value, logging.Logger):
        return _LoggerFile(value, level)
    return value


class _ErrorReporter:
    """Stands in for the gevent loop that pywsgi reports application errors to."""

    def __init__(self, server: WSGIServer) -> None:
        self._server = server

    def handle_error(self, context: Any, kind: Any, value: Any, tb: Any) -> None:
        method = context.get("REQUEST_METHOD", "?") if hasattr(context, "get") else "?"
        path = context.get("PATH_INFO", "?") if hasattr(context, "get") else "?"
        text = "".join(traceback.format_exception(kind, value, tb))
        self._server.error_log.write(f"error in the application ({method} {path}):\n{text}")


def _is_tls(stream: Any) -> bool:
    if isinstance(stream, gevent.socket.socket):
        return False  # the usual case; asking it for TLS attributes costs exceptions
    try:
        if getattr(stream, "tls_version", None) is not None:
            return True
        # Behind haproxy: the PROXY v2 header's SSL TLV says whether the client
        # spoke TLS to the proxy (HAProxy sends it with send-proxy-v2-ssl).
        ssl_info = getattr(getattr(stream, "proxy_header", None), "ssl", None)
        return ssl_info is not None and bool(ssl_info.tls)
    except Exception:  # a TLS stream asked before its handshake, or closed
        return False


def _peer_host(peer: Any, client_address: Any) -> str | None:
    """The peer's IP address as text; ``None`` for a peer without one (UNIX socket)."""
    if peer is None:
        return str(client_address[0]) if isinstance(client_address, tuple) else None
    host = getattr(peer, "host", None)
    return None if host is None else str(host)


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else str(value)


class WSGIHandler(pywsgi.WSGIHandler):  # type: ignore[misc]  # gevent ships no types
    """gevent's HTTP/1.1 handler, told about greenpoint's streams and graceful stops.

    Sets ``wsgi.url_scheme`` (``https`` over TLS), ``SERVER_NAME``/``SERVER_PORT``
    from the connection's local address (the original destination behind a PROXY
    header), ``REMOTE_ADDR``/``REMOTE_PORT`` from the address the endpoint gave
    (the real client behind ``haproxy:``), and ``greenpoint.peer`` /
    ``greenpoint.stream``. When the server is stopping, it answers the request in
    progress with ``Connection: close`` and reads no further request.
    """

    _connection: _Connection | None = None
    _peer: Any = None
    # The response head, held back until the first piece of body goes with it
    # (True: the next _sendall is the head to hold).
    _held_head: Any = None
    # Bytes of body sent for the current request (gunicorn's %(b)s counts no headers).
    _body_sent = 0
    # (wsgi.url_scheme, SERVER_NAME, SERVER_PORT) of this connection, once known.
    _facts: tuple[str, str, str] | None = None
    # The one timer that bounds the request line and headers (header_timeout).
    _header_deadline: Any = None

    def finalize_headers(self) -> None:
        super().finalize_headers()
        if self.command == "HEAD":
            # The headers a GET would get, but no body and so no chunk framing.
            self.response_use_chunked = False

    def _write(self, data: Any) -> None:
        # A response to HEAD has no body (RFC 9110 9.3.2), even when the app gives
        # one: pywsgi would send it and a keep-alive client would read it as the
        # start of the next response.
        if self.command != "HEAD":
            super()._write(data)
            self._body_sent += len(data)

    def _write_with_headers(self, data: Any) -> None:
        if self.command == "HEAD":
            data = b""
        if not data or len(data) > ONE_WRITE_LIMIT:
            super()._write_with_headers(data)
            return
        self._held_head = True
        try:
            super()._write_with_headers(data)
        finally:
            self._held_head = None  # a failed write must not hold the next head

    def _sendall(self, data: Any) -> None:
        head = self._held_head
        if head is not None:
            if head is True:  # pywsgi's head: keep it for the body's write
                self._held_head = bytearray(data)
                return
            self._held_head = None
            head += data
            data = head
        super()._sendall(data)

    def read_requestline(self) -> str:
        # The previous request's environment and status must not describe a request
        # that turns out malformed (its access line would name the wrong request).
        self.environ = None
        self._orig_status = None
        connection = self._connection
        if connection is None:
            line: str = super().read_requestline()
            return line
        if connection.served and self.server.closing and not self.server.drain_keep_alive:
            return ""  # stopping: this keep-alive connection ends here
        connection.state = _IDLE if connection.served else _NEW
        try:
            limits = getattr(self.server, "http_limits", None)
            if limits is None:
                line = super().read_requestline()
                return line
            return self._read_requestline_within(limits, connection)
        finally:
            connection.state = _BUSY

    def _read_requestline_within(self, limits: HTTPLimits, connection: _Connection) -> str:
        """The request line, within keepalive_timeout / header_timeout; "" to close."""
        remaining = limits.header_timeout
        if connection.served:
            # Between requests: keepalive_timeout, then the head gets the whole
            # header_timeout from its first byte.
            if not self._wait_for_first_byte(limits.keepalive_timeout, "keepalive_timeouts"):
                return ""
        elif remaining is not None:
            # A new connection's first request counts from the accept.
            deadline = connection.opened + remaining
            if not self._wait_for_first_byte(deadline - time.monotonic(), "header_timeouts"):
                return ""
            remaining = deadline - time.monotonic()
        self._header_deadline = None
        if remaining is not None:
            self._header_deadline = gevent.Timeout(max(remaining, 0.001))
            self._header_deadline.start()
        line: bytes = self.rfile.readline(limits.max_request_line + 1)
        limits.check_request_line(line)
        return line.decode("latin-1")

    def _wait_for_first_byte(self, timeout: float | None, event: str) -> bool:
        """Wait up to ``timeout`` for the next request to start; False: closed for it."""
        if timeout is None:
            # No limit on the wait, but still wait here: the header timer starts at
            # the first byte, so an idle keep-alive connection never gets a 408.
            self.rfile.peek(1)
            return True
        with gevent.Timeout(max(timeout, 0.001), False):
            self.rfile.peek(1)  # returns at once if bytes are already buffered
            return True
        why = (
            f"no request within keepalive_timeout {timeout:g} s"
            if event == "keepalive_timeouts"
            else "no request line within header_timeout"
        )
        self.server.count_event(event, self._peer, why, quiet=event == "keepalive_timeouts")
        return False

    def read_request(self, raw_requestline: str) -> Any:
        try:
            return super().read_request(raw_requestline)
        finally:
            self._cancel_header_deadline()

    def MessageClass(self, fp: Any, *args: Any) -> Any:  # noqa: N802 - pywsgi's name
        limits = getattr(self.server, "http_limits", None)
        if limits is None:
            return super().MessageClass(fp, *args)
        # Read the header lines ourselves, within the size and count limits, and let
        # pywsgi's parser have them.
        return super().MessageClass(io.BytesIO(read_header_block(fp, limits)), *args)

    def _cancel_header_deadline(self) -> None:
        # Kept (closed) until the next request: handle_one_request tells its own
        # timeout from others by identity.
        if self._header_deadline is not None:
            self._header_deadline.close()

    def handle_one_request(self) -> Any:
        try:
            return super().handle_one_request()
        except gevent.Timeout as timeout:
            if timeout is not self._header_deadline:
                raise
            if not isinstance(getattr(self, "requestline", None), str):
                self.requestline = ""
            self.server.count_event(
                "header_timeouts", self._peer, "request head not complete within header_timeout"
            )
            self.close_connection = True
            return ("408", REQUEST_TIMEOUT_RESPONSE)  # part of a request came: say why
        except RequestRejected as rejected:  # from read_requestline (414)
            return self._rejected(rejected)
        finally:
            self._cancel_header_deadline()

    def _handle_client_error(self, ex: Exception) -> Any:
        if isinstance(ex, RequestRejected):  # from read_request (431)
            return self._rejected(ex)
        return super()._handle_client_error(ex)

    def _rejected(self, rejected: RequestRejected) -> tuple[str, bytes]:
        self.server.count_event("rejected_requests", self._peer, str(rejected))
        self.close_connection = True
        if not isinstance(getattr(self, "requestline", None), str):
            self.requestline = ""
        return (rejected.status, rejected.response)

    def handle_error(self, t: Any, v: Any, tb: Any) -> None:
        if isinstance(v, IdleTimeoutError):
            # The port closed an idle connection (a stalled body upload, a client
            # that stopped reading) and already logged it: no traceback, no 500.
            self.close_connection = True
            return
        super().handle_error(t, v, tb)

    def handle_one_response(self) -> None:
        self._body_sent = 0
        try:
            super().handle_one_response()
        finally:
            if self._connection is not None:
                self._connection.served += 1

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        if self.server.closing:
            self.close_connection = True
        # An HTTP/1.1 response on a connection about to close says so (RFC 9112 9.6),
        # also when the client asked for the close: pywsgi does not, and a client
        # that reads only the response's headers (wrk) writes its next request into
        # a closing connection and gets a reset.
        if (
            self.close_connection
            and self.request_version != "HTTP/1.0"
            and not any(name.lower() == "connection" for name, _ in headers)
        ):
            headers = [*headers, ("Connection", "close")]
        return super().start_response(status, headers, exc_info)

    def _connection_facts(self) -> tuple[str, str, str]:
        # The same for every request of a connection, and not free to find out
        # (a getsockname, attribute probes that raise on gevent sockets): once.
        stream = self.socket
        try:
            local = host_address(stream)
        except (OSError, ValueError, AttributeError):
            local = None
        host = getattr(local, "host", None)
        port = getattr(local, "port", None)
        self._facts = (
            "https" if _is_tls(stream) else "http",
            "" if host is None else str(host),
            "" if port is None else str(port),
        )
        return self._facts

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        scheme, server_name, server_port = self._facts or self._connection_facts()
        environ["wsgi.url_scheme"] = scheme
        environ.setdefault("SERVER_NAME", server_name)
        environ.setdefault("SERVER_PORT", server_port)
        environ["greenpoint.peer"] = self._peer
        environ["greenpoint.stream"] = self.socket
        allow = getattr(self.server, "forwarded_allow", None)
        if allow is not None and (
            "HTTP_X_FORWARDED_FOR" in environ or "HTTP_X_FORWARDED_PROTO" in environ
        ):
            apply_forwarded_headers(environ, _peer_host(self._peer, self.client_address), allow)
        return environ

    def log_request(self) -> None:
        if self.server.log is not _NO_LOG:  # no line wanted: do not format one
            super().log_request()

    def format_request(self) -> str:
        log_format = getattr(self.server, "access_log_format", None)
        if log_format is None:
            line: str = super().format_request()
            return line
        finished = self.time_finish or time.time()
        environ = getattr(self, "environ", None)
        if not environ:  # a malformed request: no environment was made
            host = _peer_host(self._peer, self.client_address)
            environ = {} if host is None else {"REMOTE_ADDR": host}
        record = AccessRecord(
            environ=environ,
            status=self._orig_status or _text(self.status or ""),
            response_headers=[
                (_text(name), _text(value)) for name, value in self.response_headers or ()
            ],
            body_length=self._body_sent if self.headers_sent else None,
            duration=finished - self.time_start,
            finished_at=finished,
            pid=os.getpid(),
            raw_uri=self.path,
            request_line=self.requestline,
        )
        return format_access_line(log_format, record)


class WSGIServer:
    """Runs ``application`` for each connection it is given: ``server(stream, address)``.

    It is the handler that :meth:`ServerEndpoint.serve` calls per connection, and
    what pywsgi's handler reads its settings from (``application``, ``environ``,
    ``log``, ``error_log``). ``log`` receives one access-log line per request and
    ``error_log`` application tracebacks; each is a file-like object with
    ``write``, a :class:`logging.Logger`, ``None`` for nothing, or ``"default"``
    for the ``greenpoint.wsgi`` logger (INFO and ERROR).

    ``access_log_format`` writes the access lines in gunicorn's format language
    (``'%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'``; ``None``:
    gevent's line). ``forwarded_allow_ips`` lists the peers (``"127.0.0.1,::1"``,
    networks, ``"*"``) whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` set
    ``REMOTE_ADDR`` and ``wsgi.url_scheme``; ``None`` (the default) believes no one.
    """

    secure_environ_class = pywsgi.WSGISecureEnviron

    # During a stop, whether a kept-alive connection may send one more request
    # (answered with ``Connection: close``) within the new-connection grace, instead
    # of being closed at once as Go's ``Shutdown`` does. Closing an idle connection
    # races with the client's next request, which a busy client (a proxy's pool, a
    # load generator) then sees fail; ``greenpoint wsgi``'s workers drain this way so
    # that a reload loses no request.
    drain_keep_alive = False

    def __init__(
        self,
        application: Callable[..., Any],
        *,
        environ: dict[str, Any] | None = None,
        log: Any = _DEFAULT,
        error_log: Any = _DEFAULT,
        handler_class: type[pywsgi.WSGIHandler] | None = None,
        access_log_format: str | None = None,
        forwarded_allow_ips: str | Iterable[str] | ForwardedAllowList | None = None,
        header_timeout: float | None = None,
        keepalive_timeout: float | None = None,
        max_request_line: int = HTTPLimits.max_request_line,
        max_header_size: int = HTTPLimits.max_header_size,
        max_header_count: int = HTTPLimits.max_header_count,
    ) -> None:
        self.http_limits = HTTPLimits(
            header_timeout, keepalive_timeout, max_request_line, max_header_size, max_header_count
        )
        self.events: Counter[str] = Counter()  # header timeouts, rejected requests, ...
        if not callable(application):
            raise TypeError(f"a WSGI application must be callable, not {application!r}")
        if access_log_format is not None:
            check_access_log_format(access_log_format)
        self.access_log_format = access_log_format
        self.forwarded_allow: ForwardedAllowList | None = (
            None
            if forwarded_allow_ips is None
            else forwarded_allow_ips
            if isinstance(forwarded_allow_ips, ForwardedAllowList)
            else parse_forwarded_allow_ips(forwarded_allow_ips)
        )
        self.application = application
        self.handler_class = handler_class or WSGIHandler
        self.log = _log_target(log, logging.INFO)
        self.error_log = _log_target(error_log, logging.ERROR)
        self.loop = _ErrorReporter(self)
        self.closing = False
        self.environ: dict[str, Any] = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": f"greenpoint/{__version__} gevent/{gevent.__version__} "
            f"Python/{sys.version_info[0]}.{sys.version_info[1]}",
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.errors": self.error_log,
        }
        self.environ.update(environ or {})
        self._connections: dict[Any, _Connection] = {}

    def get_environ(self) -> dict[str, Any]:
        """A fresh copy of the base environment for one request."""
        return dict(self.environ)

    def count_event(self, name: str, peer: Any, why: str, quiet: bool = False) -> None:
        """Count an HTTP limit being hit (a :class:`PortStats` field) and log it once.

        ``quiet`` (routine: a kept-alive connection left idle) logs at DEBUG, not INFO.
        """
        self.events[name] += 1
        logger.log(logging.DEBUG if quiet else logging.INFO, "connection from %s: %s", peer, why)

    def __call__(self, stream: Any, address: Any) -> None:
        """Serve HTTP requests on ``stream`` until the client or a stop ends it."""
        current = gevent.getcurrent()
        connection = _Connection(current)
        self._connections[current] = connection
        try:
            handler = self.handler_class(stream, _client_address(address), self)
            if isinstance(handler, WSGIHandler):
                handler._connection = connection
                handler._peer = address
            handler.handle()
        finally:
            self._connections.pop(current, None)

    def begin_stop(self, new_connection_grace: float = NEW_CONNECTION_GRACE) -> None:
        """Stop taking requests: close idle connections now, new ones after a grace.

        Requests being served run on; their responses close their connections.
        """
        self.closing = True
        waiting = (_NEW, _IDLE) if self.drain_keep_alive else (_NEW,)
        if not self.drain_keep_alive:
            self._close(_IDLE)
        if any(c.state in waiting for c in self._connections.values()):
            gevent.spawn_later(new_connection_grace, self._close, *waiting)

    def _close(self, *states: str) -> None:
        for connection in list(self._connections.values()):
            if connection.state in states:
                connection.greenlet.kill(block=False)


def _client_address(address: Any) -> Any:
    """What pywsgi expects: ``(host, port)`` for IP peers (it sets ``REMOTE_ADDR``)."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return (host, port)
    return ""


class WSGIPort(ListeningPort):
    """A :class:`~greenpoint.ListeningPort` whose stop is graceful for HTTP.

    ``stop_listening(timeout)`` closes the listener, closes idle keep-alive
    connections at once, and lets requests in progress finish for up to
    ``timeout`` seconds (see the module docstring).
    """

    @property
    def wsgi_server(self) -> WSGIServer:
        """The :class:`WSGIServer` serving this port's connections."""
        return cast(WSGIServer, self.handler)  # start() was given one

    @property
    def stats(self) -> PortStats:
        """The port's counts, with the HTTP ones (header timeouts, 414/431) added."""
        return dataclasses.replace(super().stats, **self.wsgi_server.events)

    def stop_listening(self, timeout: float | None = None) -> None:
        """Stop gracefully; blocks until every connection is closed."""
        check_timeout(timeout)
        grace = NEW_CONNECTION_GRACE if timeout is None else min(timeout, NEW_CONNECTION_GRACE)
        cast(WSGIServer, self.handler).begin_stop(grace)
        super().stop_listening(timeout)

    stopListening = stop_listening


def serve_listener(
    listener: Any,
    application: Callable[..., Any],
    *,
    pool: Any = None,
    max_connections: int | None = None,
    max_per_peer: int | None = None,
    idle_timeout: float | None = None,
    **options: Any,
) -> WSGIPort:
    """Serve ``application`` on an already bound listener (what ``bind()`` returned).

    For pre-forking servers that bind once and serve in several processes. The
    limits are :func:`serve`'s; the other ``options`` are :class:`WSGIServer`'s.
    """
    limits = ConnectionLimits(max_connections, max_per_peer, idle_timeout)
    server = WSGIServer(application, **options)
    # ListeningPort.start is typed for the base class; it builds a cls().
    return cast(WSGIPort, WSGIPort.start(listener, server, pool=pool, limits=limits))


def serve(
    description_or_endpoint: Any,
    application: Callable[..., Any],
    *,
    pool: Any = None,
    max_connections: int | None = None,
    max_per_peer: int | None = None,
    idle_timeout: float | None = None,
    **options: Any,
) -> WSGIPort:
    """Bind a server endpoint and serve ``application`` on it; returns at once.

    ``description_or_endpoint`` is a server description (``"tcp:8080"``,
    ``"unix:/run/app.sock"``, ``"ssl:..."``, ``"systemd:domain=INET"``,
    ``"haproxy:tcp:8080"``) or a server endpoint object. ``pool`` (a
    ``gevent.pool.Pool``) caps concurrent connections. Other options go to
    :class:`WSGIServer`: ``environ`` (added to every request's environment),
    ``log``, ``error_log``, ``handler_class``, ``access_log_format`` (gunicorn's
    format codes), ``forwarded_allow_ips`` (whose ``X-Forwarded-*`` to believe),
    and the HTTP limits
    ``header_timeout``, ``keepalive_timeout`` (seconds, default none),
    ``max_request_line`` (8192 bytes, else 414), ``max_header_size`` (8190 bytes a
    line) and ``max_header_count`` (100; else 431).

    Connection limits (default none; see docs/limits.md): ``max_connections``,
    ``max_per_peer`` and ``idle_timeout``, as for ``ServerEndpoint.serve()``. An
    idle timeout during a body upload ends the request without a traceback.

    Returns the bound :class:`WSGIPort` (a ``ListeningPort``): ``get_host()``,
    ``serve_forever()``, ``stop_listening(timeout)``.

    Raises:
        DescriptionError: a bad description.
        ListenError: the endpoint could not bind.
        ValueError: a bad ``access_log_format`` or ``forwarded_allow_ips``.
    """
    endpoint = description_or_endpoint
    if isinstance(endpoint, str | bytes):
        endpoint = server_from_string(endpoint)
    limits = ConnectionLimits(max_connections, max_per_peer, idle_timeout)
    server = WSGIServer(application, **options)
    port = cast(WSGIPort, WSGIPort.start(endpoint.bind(), server, pool=pool, limits=limits))
    port.endpoint = endpoint
    return port


def load_application(spec: str) -> Callable[..., Any]:
    """Import ``"package.module:name"`` (``name`` may be dotted) and return the object.

    ``"module"`` alone means ``module:application``, as mod_wsgi and gunicorn do.

    Raises:
        ValueError: the module or the name does not exist, or is not callable.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise ValueError(f"expected module:application, not {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    for part in (attribute or "application").split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attribute or part!r}") from None
    if not callable(target):
        raise ValueError(f"{spec!r} is not callable")
    application: Callable[..., Any] = target
    return application
