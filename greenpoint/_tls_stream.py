"""A TLS connection over any connected stream, with a socket's methods. The I/O edge.

Two ways to move the ciphertext:

* over a socket (a gevent or stdlib socket object), OpenSSL reads and writes the
  file descriptor itself; ``WantReadError`` / ``WantWriteError`` mean "not ready",
  and the calling greenlet waits on the descriptor with gevent's event loop;
* over anything else (a process's pipes, a stream that already buffered bytes),
  OpenSSL works on memory BIOs, and we pump ciphertext through the inner stream's
  ``recv`` and ``sendall``.

pyOpenSSL calls never switch greenlets, so a reader greenlet and a writer greenlet
may share one stream (full duplex), as with a socket.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import socket as _stdsocket
from collections.abc import Callable
from typing import Any, TypeVar, cast

import gevent
from gevent import socket as gsocket
from gevent.hub import get_hub, getcurrent
from gevent.lock import Semaphore
from OpenSSL import SSL

from greenpoint._address import Address, host_address, peer_address
from greenpoint._clock import deadline_after, monotonic
from greenpoint._socket import set_nodelay
from greenpoint._socket_file import layer_file, raw_file_mode
from greenpoint._tls_verify import VerifyState, check_identity
from greenpoint.errors import ConnectTimeoutError, TLSError, TLSVerificationError

log = logging.getLogger("greenpoint.tls")

__all__ = ["TLSStream", "client_handshake", "server_handshake"]

_READ = 1  # libev/libuv event bits
_WRITE = 2
_BIO_CHUNK = 65536  # ciphertext moved per inner recv / bio_read
_MAX_WRITE = 2**31 - 1  # SSL_write takes an int length
_CLOSE_NOTIFY_TIMEOUT = 1.0  # seconds a close() spends on close_notify over a pipe
_Result = TypeVar("_Result")  # what a read returns: bytes (recv) or a count (recv_into)
_DISCARD_ROUNDS = 16  # at most this many _BIO_CHUNK reads of unread input at close()


def _timed_out() -> TimeoutError:
    return TimeoutError("timed out")


class _HandshakeExpired(BaseException):
    """Thrown into a greenlet by its handshake timer; never leaves _do_handshake."""


def _ssl_error_text(exc: SSL.Error) -> str:
    """OpenSSL's error queue as one line ("sslv3 alert certificate required")."""
    parts = []
    for item in exc.args[0] if exc.args and isinstance(exc.args[0], list) else ():
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return "; ".join(parts) or str(exc) or type(exc).__name__


def _eof_error(exc: SSL.SysCallError) -> OSError:
    code = exc.args[0] if exc.args else -1
    if isinstance(code, int) and code > 0:
        return OSError(code, os.strerror(code))  # ConnectionResetError, BrokenPipeError...
    return ConnectionResetError(errno.ECONNRESET, "the peer closed the TLS connection")


class TLSStream:
    """A TLS connection with the methods of a connected socket.

    Get one from a client endpoint's ``open()``, from a TLS listener's ``accept()``,
    or from :func:`greenpoint.tls.wrap_client_stream` /
    :func:`greenpoint.tls.wrap_server_stream`. Blocking methods block only the
    calling greenlet, for at most the stream's timeout (``settimeout``).

    Besides ``send``, ``sendall``, ``recv``, ``recv_into``, ``makefile``,
    ``shutdown``, ``close``, ``fileno``, ``getpeername``, ``getsockname`` and
    ``settimeout`` it tells what was negotiated: :attr:`peer_certificate`,
    :attr:`alpn_protocol`, :attr:`tls_version`, :attr:`server_name`, :attr:`cipher`.

    Reading returns ``b""`` when the peer sends close_notify, and also when it just
    closes the connection (a "ragged EOF", as the stdlib's ``ssl`` does by default);
    other TLS failures raise :class:`~greenpoint.errors.TLSError`.
    """

    # Initial state as class attributes: one is made per accepted connection, and
    # it sets only what differs.
    _timeout: float | None = None
    _closed = False  # close() was called
    _released = False  # the inner stream is closed
    _io_refs = 0  # makefile() objects still open
    _handshake_done = False
    _notify_sent = False
    _read_eof = False  # a read met the end of the stream
    _failure: OSError | None = None  # the first reset or broken pipe met (see _remember)
    _hub: Any = None
    _own_watchers = True
    _temporary: set[Any] | None = None  # extra watchers of concurrent waiters
    # Called with the connection just before close_notify (a client keeps its
    # TLS 1.3 session, whose ticket arrives after the handshake).
    on_release: Callable[[SSL.Connection], None] | None = None

    def __init__(
        self, connection: SSL.Connection, raw: Any, *, memory: bool, sock: Any = None
    ) -> None:
        self._conn = connection
        self._raw = raw  # addresses, shutdown and close go through it
        self._memory = memory
        # The socket OpenSSL reads and writes. Not named ``_sock``: gevent.pywsgi
        # treats an object's ``_sock`` as a non-blocking stdlib socket to drain.
        # None in memory mode (typed Any: the methods below only use it when it is not).
        wire: Any = raw if sock is None else sock
        self._wire: Any = None if memory else wire
        self._fd = -1 if memory else wire.fileno()
        # A gevent socket already has a read and a write watcher on the
        # descriptor, and its close() wakes whoever waits on them: use those rather
        # than make (and later close) two more per connection. Other sockets get
        # watchers of ours, made on first wait and closed by _release.
        if type(self._wire) is gsocket.socket:
            self._own_watchers = False
            self._hub = wire.hub
        else:
            self._watchers: dict[int, Any] = {}
        if memory:
            self._write_lock = Semaphore()
            self._read_lock = Semaphore()
            # Pass the raw stream's end-of-connection hook on (a child process's:
            # its exit status), so a transport over us ends as it would without
            # TLS. Only if it has one: the transport looks for the attribute.
            final_reason = getattr(raw, "final_reason", None)
            if final_reason is not None:
                self.final_reason = final_reason

    # -- what was negotiated -------------------------------------------------

    @property
    def connection(self) -> SSL.Connection:
        """The underlying ``OpenSSL.SSL.Connection`` (for what this class does not expose)."""
        return self._conn

    @property
    def peer_certificate(self) -> Any:
        """The peer's certificate (a ``cryptography.x509.Certificate``) or ``None``."""
        return self._conn.get_peer_certificate(as_cryptography=True)

    @property
    def peer_certificate_chain(self) -> list[Any]:
        """The chain the peer sent (``cryptography`` certificates), leaf first."""
        return self._conn.get_peer_cert_chain(as_cryptography=True) or []

    @property
    def alpn_protocol(self) -> str | None:
        """The protocol chosen by ALPN (RFC 7301), or ``None`` if none was agreed."""
        chosen = self._conn.get_alpn_proto_negotiated()
        return chosen.decode("ascii", "replace") if chosen else None

    @property
    def tls_version(self) -> str:
        """The negotiated protocol version, such as ``"TLSv1.3"``."""
        return self._conn.get_protocol_version_name()

    @property
    def cipher(self) -> str | None:
        """The negotiated cipher suite's OpenSSL name."""
        return self._conn.get_cipher_name()

    @property
    def session_reused(self) -> bool:
        """Whether the handshake resumed an earlier session (``SSL_session_reused``)."""
        return bool(SSL._lib.SSL_session_reused(self._conn._ssl))  # type: ignore[attr-defined]

    @property
    def server_name(self) -> str | None:
        """The SNI host name: the one the client asked for (on either side)."""
        name = self._conn.get_servername()
        return name.decode("ascii", "replace") if name else None

    # Twisted's ISSLTransport / INegotiated spellings, with Twisted's types, so that
    # the protocol layer's transport can pass them through to ported code.

    def getPeerCertificate(self) -> Any:  # noqa: N802 - Twisted's name
        """The peer's certificate as Twisted gives it: an ``OpenSSL.crypto.X509``."""
        return self._conn.get_peer_certificate()

    @property
    def negotiatedProtocol(self) -> bytes | None:  # noqa: N802 - Twisted's name
        """The ALPN protocol as Twisted gives it: ``bytes``, or ``None``."""
        return self._conn.get_alpn_proto_negotiated() or None

    # -- socket-like attributes ----------------------------------------------

    @property
    def family(self) -> int:
        return getattr(self._raw, "family", _stdsocket.AF_UNSPEC)

    @property
    def type(self) -> int:
        return getattr(self._raw, "type", _stdsocket.SOCK_STREAM)

    @property
    def proto(self) -> int:
        return getattr(self._raw, "proto", 0)

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The inner socket's descriptor (``-1`` once closed)."""
        if self._released:
            return -1
        if self._memory:
            fileno = getattr(self._raw, "fileno", None)
            if fileno is None:
                raise io.UnsupportedOperation("this TLS stream has no file descriptor")
            fd: int = fileno()
            return fd
        return self._fd

    def getPeer(self) -> Address:  # noqa: N802 - what greenpoint._address.peer_address asks
        """The peer's address, as the stream under TLS reports it."""
        self._check_open()
        return peer_address(self._raw)

    def getHost(self) -> Address:  # noqa: N802
        """Our own address, as the stream under TLS reports it."""
        self._check_open()
        return host_address(self._raw)

    def getpeername(self) -> Any:
        return self._inner("getpeername")()

    def getsockname(self) -> Any:
        return self._inner("getsockname")()

    def setsockopt(self, *args: Any) -> None:
        self._inner("setsockopt")(*args)

    def getsockopt(self, *args: Any) -> Any:
        return self._inner("getsockopt")(*args)

    def _inner(self, name: str) -> Any:
        self._check_open()
        method = getattr(self._raw, name, None)
        if method is None:
            raise OSError(errno.ENOTSOCK, f"the stream under this TLS stream has no {name}()")
        return method

    def settimeout(self, timeout: float | None) -> None:
        """Limit each blocking call to ``timeout`` seconds (``None``: no limit)."""
        if timeout is not None:
            timeout = float(timeout)
            if timeout < 0:
                raise ValueError("timeout must be zero or more")
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def __enter__(self) -> TLSStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("memory" if self._memory else f"fd={self._fd}")
        return f"<TLSStream {state} over {self._raw!r}>"

    # -- reading and writing -------------------------------------------------

    # recv, recv_into and sendall try OpenSSL once themselves: in a bulk transfer
    # it usually has plaintext ready or takes the bytes at once, and the loops
    # of _read and _send (a Python call each) are then not needed.

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Read up to ``bufsize`` bytes of plaintext; ``b""`` at the end of the stream."""
        if self._released:  # the descriptor number may already belong to another file
            self._check_open()
        if bufsize == 0:
            return b""
        read = self._conn.recv
        try:
            data = read(bufsize, flags or None)
        except SSL.Error as exc:
            return self._read(exc, b"", read, bufsize, flags or None)
        if self._memory:
            self._flush(None, wait=False)  # see _read
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Read plaintext into ``buffer``; returns the count, ``0`` at the end."""
        if self._released:
            self._check_open()
        size = nbytes or len(buffer)
        if size == 0:
            return 0
        read = self._conn.recv_into
        try:
            count = read(buffer, size, flags or None)
        except SSL.Error as exc:
            return self._read(exc, 0, read, buffer, size, flags or None)
        if self._memory:
            self._flush(None, wait=False)  # see _read
        return count

    def _read(
        self, error: SSL.Error, at_end: _Result, read: Callable[..., _Result], *args: Any
    ) -> _Result:
        """Finish a read whose first ``read(*args)`` raised ``error``.

        Waits and calls again until there is plaintext; ``at_end`` at the end of
        the stream.
        """
        deadline = None
        try:
            while True:
                if isinstance(error, SSL.WantReadError):
                    deadline = self._wait(_READ, deadline)
                elif isinstance(error, SSL.WantWriteError):
                    deadline = self._wait(_WRITE, deadline)
                elif isinstance(error, SSL.ZeroReturnError):
                    result = at_end
                    break
                elif isinstance(error, SSL.SysCallError):
                    self._check_ragged_eof(error)
                    result = at_end
                    break
                else:
                    raise self._tls_failure(error) from error
                try:
                    result = read(*args)
                except SSL.Error as exc:
                    error = exc
                    continue
                if self._memory:
                    # Reading may queue a reply (a TLS 1.3 KeyUpdate); a writer
                    # already flushing sends it, and must not be waited for.
                    self._flush(None, wait=False)
                return result
        finally:
            # The exception's traceback holds this frame: drop the reference back,
            # or each wait would leave a cycle for the garbage collector.
            error = None  # type: ignore[assignment]  # only drops the reference
        self._read_eof = True
        if self._memory:
            self._flush(None, wait=False)
        return result

    def send(self, data: Any, flags: int = 0) -> int:
        """Encrypt and send some of ``data``; returns how many bytes were taken."""
        if self._released:
            self._check_open()
        view = memoryview(data).cast("B")[:_MAX_WRITE]
        if not view:
            return 0
        return self._send(view, None)[0]

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data``; blocks the calling greenlet until it is written."""
        if self._released:
            self._check_open()
        deadline = None
        view = memoryview(data).cast("B")
        total = len(view)
        sent = 0
        send = self._conn.send
        while sent < total:
            chunk = view[sent : sent + _MAX_WRITE] if sent or total > _MAX_WRITE else view
            if self._memory:
                count, deadline = self._send(chunk, deadline)
            else:
                try:
                    count = send(chunk)
                except SSL.Error as exc:
                    count, deadline = self._send(chunk, deadline, exc)
            sent += count

    def _send(
        self, view: memoryview, deadline: float | None, error: SSL.Error | None = None
    ) -> tuple[int, float | None]:
        """Encrypt some of ``view``; returns the count and the deadline it used.

        ``error`` is what the caller's own first ``send`` raised, if it tried.
        """
        conn = self._conn
        try:
            while True:
                if error is not None:
                    if isinstance(error, SSL.WantWriteError):
                        deadline = self._wait(_WRITE, deadline)
                    elif isinstance(error, SSL.WantReadError):
                        deadline = self._wait(_READ, deadline)
                    elif isinstance(error, SSL.SysCallError):
                        raise self._remember(_eof_error(error)) from error
                    else:
                        raise self._tls_failure(error) from error
                # After WantWrite, OpenSSL wants the same bytes again: ``view`` is.
                try:
                    count = conn.send(view)
                except SSL.Error as exc:
                    error = exc
                    continue
                if self._memory:
                    self._flush(deadline)
                return count, deadline
        finally:
            error = None  # no cycle through the traceback (see _read)

    def _check_ragged_eof(self, exc: SSL.SysCallError) -> None:
        """Raise unless ``exc`` is a ragged EOF (the peer closed without close_notify)."""
        code = exc.args[0] if exc.args else -1
        if isinstance(code, int) and code > 0:
            raise self._remember(OSError(code, os.strerror(code))) from exc
        self._remember(BrokenPipeError(errno.EPIPE, "the peer closed the TLS connection"))

    def _remember(self, failure: OSError) -> OSError:
        """Keep the first OS-level failure, to explain what OpenSSL reports after it.

        OpenSSL's error queue is per thread, and every greenlet shares the thread:
        once the reader's call has taken the reset off the queue, the writer's next
        call on the now-failed connection raises an ``SSL.Error`` with an empty list.
        """
        if self._failure is None:
            self._failure = failure
        return failure

    def _tls_failure(self, exc: SSL.Error) -> Exception:
        self._check_open()
        if self._failure is not None:  # the connection already failed (see _remember)
            return OSError(self._failure.errno, self._failure.strerror)
        return TLSError(f"TLS error: {_ssl_error_text(exc)}")

    def _check_open(self) -> None:
        if self._released:
            raise OSError(errno.EBADF, "the TLS stream is closed")

    # -- waiting -------------------------------------------------------------

    def _wait(self, event: int, deadline: float | None) -> float | None:
        """Wait until the inner stream can move data; returns the deadline it used."""
        if self._released:
            self._check_open()
        timeout = self._timeout
        if timeout is None and deadline is None and not self._memory:
            self._wait_fd(event, None)  # the common case: no time limit
            return None
        if deadline is None and timeout is not None:
            deadline = monotonic() + timeout
        if deadline is not None:
            remaining = deadline - monotonic()
            if remaining <= 0:
                if timeout == 0.0:
                    raise BlockingIOError(errno.EAGAIN, "the TLS stream is not ready")
                raise _timed_out()
        else:
            remaining = None
        if self._memory:
            if event == _READ:
                self._pump_in(remaining)
            else:
                self._flush(deadline)
        else:
            self._wait_fd(event, remaining)
        return deadline

    def _wait_fd(self, event: int, timeout: float | None) -> None:
        if self._own_watchers:
            watcher = self._watchers.get(event)
            if watcher is None:
                if self._hub is None:
                    self._hub = get_hub()
                watcher = self._watchers[event] = self._hub.loop.io(self._fd, event)
        else:
            # Looked up each time: the gevent socket drops its watchers when it is
            # closed, and starting one on a closed descriptor aborts libev.
            wire = self._wire
            watcher = wire._read_event if event == _READ else wire._write_event
            if watcher is None:
                raise OSError(errno.EBADF, "the socket under the TLS stream is closed")
        if watcher.callback is None:
            if timeout is None:
                self._hub.wait(watcher)  # what gsocket.wait does, minus its checks
            else:
                gsocket.wait(watcher, timeout)
            return
        # Another greenlet waits on the same direction (a reader needing to write
        # during a key update, say): wait on a watcher of our own.
        watcher = self._hub.loop.io(self._fd, event)
        if self._temporary is None:
            self._temporary = set()
        temporary = self._temporary  # _release may drop the attribute meanwhile
        temporary.add(watcher)
        try:
            gsocket.wait(watcher, timeout)
        finally:
            temporary.discard(watcher)
            watcher.close()

    def _pump_in(self, timeout: float | None) -> None:
        """Memory BIO: flush what OpenSSL wrote, then feed it what the peer sent."""
        # A greenlet already flushing will send our bytes too; waiting for it
        # here could deadlock (it may wait for the peer, who waits for us to read).
        self._flush(None, wait=False)
        if not self._read_lock.acquire(blocking=False):
            # Another greenlet is reading the inner stream; what it gets will do.
            self._read_lock.wait(timeout)
            return
        try:
            with gevent.Timeout(timeout, _timed_out()):
                data = self._raw.recv(_BIO_CHUNK)
        finally:
            self._read_lock.release()
        if data:
            self._conn.bio_write(data)
        else:
            self._conn.bio_shutdown()

    def _flush(self, deadline: float | None, *, wait: bool = True) -> None:
        """Memory BIO: send everything OpenSSL has written to the inner stream.

        Ciphertext taken from OpenSSL must reach the inner stream whole, so the
        send itself is bounded only by the inner stream's own timeout.
        """
        if not self._write_lock.acquire(blocking=False):
            if not wait:
                return
            remaining = None if deadline is None else max(0.0, deadline - monotonic())
            if not self._write_lock.acquire(timeout=remaining):
                raise _timed_out()
        try:
            while True:
                try:
                    chunk = self._conn.bio_read(_BIO_CHUNK)
                except SSL.WantReadError:
                    return
                if not chunk:
                    return
                self._raw.sendall(chunk)
        finally:
            self._write_lock.release()

    # -- handshake -----------------------------------------------------------

    def _do_handshake(self, timeout: float | None) -> None:
        """Handshake within ``timeout`` seconds (``None``: no limit)."""
        if self._memory or (timeout is not None and timeout <= 0):
            self._do_handshake_by_deadline(deadline_after(timeout))
            return
        # Over a socket, one timer for the whole handshake rather than a
        # gevent.Timeout per wait. A bare loop timer does what gevent.Timeout does
        # (throw into this greenlet when it fires) without its five Python calls.
        timer = None
        if timeout is not None:
            if self._hub is None:
                self._hub = get_hub()
            timer = self._hub.loop.timer(timeout)
            timer.start(getcurrent().throw, _HandshakeExpired, update=True)
        conn = self._conn
        try:
            while True:
                try:
                    conn.do_handshake()
                    break
                except SSL.WantReadError:
                    self._wait_fd(_READ, None)
                except SSL.WantWriteError:
                    self._wait_fd(_WRITE, None)
        except _HandshakeExpired:
            raise _timed_out() from None
        finally:
            if timer is not None:
                timer.close()
        self._handshake_done = True

    def _do_handshake_by_deadline(self, deadline: float | None) -> None:
        conn = self._conn
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                self._wait(_READ, deadline)
            except SSL.WantWriteError:
                self._wait(_WRITE, deadline)
        if self._memory:
            self._flush(deadline)
        self._handshake_done = True

    # -- shutting down -------------------------------------------------------

    def shutdown(self, how: int) -> None:
        """Shut down one or both directions.

        Shutting down writing sends TLS's close_notify first (RFC 8446 §6.1), then
        shuts the inner stream's writing side where it has one.
        """
        self._check_open()
        if how in (_stdsocket.SHUT_WR, _stdsocket.SHUT_RDWR):
            self._send_close_notify(best_effort=False)
        inner = getattr(self._raw, "shutdown", None)
        if inner is not None:
            inner(how)

    def _send_close_notify(self, *, best_effort: bool) -> None:
        if self._notify_sent or not self._handshake_done:
            return
        self._notify_sent = True
        try:
            while True:
                try:
                    self._conn.shutdown()
                    break
                except SSL.WantWriteError:
                    if best_effort:
                        return  # never block close() on a full socket buffer
                    self._wait(_WRITE, None)
                except SSL.WantReadError:
                    break  # close_notify is queued; the peer's reply is not needed
            if self._memory:
                self._flush(None)
        except (SSL.Error, OSError):
            if not best_effort:
                raise

    def close(self) -> None:
        """Send close_notify if possible and close the inner stream.

        Like a socket, the inner stream stays open while ``makefile()`` objects are.
        Does not block on a full socket buffer.
        """
        self._closed = True
        if self._io_refs <= 0:
            self._release()

    def _release(self) -> None:
        if self._released:
            return
        if self.on_release is not None:
            try:
                self.on_release(self._conn)
            except Exception:  # a cache's hook must not keep the stream open
                log.debug("TLS stream release hook failed", exc_info=True)
        try:
            if not self._memory:
                self._send_close_notify(best_effort=True)
                self._discard_unread()
            else:
                # A pipe has no non-blocking mode here: bound the wait instead.
                with gevent.Timeout(_CLOSE_NOTIFY_TIMEOUT, False):
                    self._send_close_notify(best_effort=True)
        finally:
            self._released = True
            # A gevent socket's own watchers are woken by its close().
            watchers = list(self._temporary or ())
            if self._own_watchers:
                watchers += self._watchers.values()
                self._watchers.clear()
            self._temporary = None
            if watchers and self._hub is not None:
                # Close the descriptor only after every waiter was woken (EBADF),
                # as gevent's own sockets do.
                self._hub.cancel_waits_close_and_then(
                    watchers, gsocket.cancel_wait_ex, self._raw.close
                )
            else:
                self._raw.close()

    def _discard_unread(self) -> None:
        """Drop, without waiting, what the peer sent and nobody read.

        Closing a TCP socket whose receive queue holds unread bytes makes the
        kernel reset the connection and throw away what it had not sent yet
        (RFC 2525 §2.17; Linux does so). Over TLS 1.3 such bytes are common and
        invisible to the application: the server's session tickets, which arrive
        after the client's handshake ended. A client that writes a lot and closes
        without ever reading would lose the end of its data to that reset.

        Not needed once a read met the end: nothing follows a FIN, and nothing
        may follow close_notify (RFC 8446 §6.1).
        """
        if not self._handshake_done or self._read_eof:
            return
        sock = self._wire
        try:
            if type(sock) is gsocket.socket:
                recv = sock._sock.recv  # the non-blocking socket under gevent's
            else:
                sock.settimeout(0.0)  # the descriptor is closed next: no one else cares
                recv = sock.recv
            for _ in range(_DISCARD_ROUNDS):
                if not recv(_BIO_CHUNK):
                    return
        except OSError:  # nothing more to read (EAGAIN), or the connection failed
            return

    # -- makefile ------------------------------------------------------------

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
        """A file object over the stream, as ``socket.makefile`` gives.

        The stream stays open until it and every file made from it are closed.
        """
        # SocketIO needs only recv_into, send and _decref_socketios (see _socket_file).
        raw = _stdsocket.SocketIO(cast(_stdsocket.socket, self), raw_file_mode(mode))
        self._io_refs += 1
        return layer_file(raw, mode, buffering, encoding, errors, newline)

    def _decref_socketios(self) -> None:
        # Called by socket.SocketIO.close() for each file made by makefile().
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self._release()


def _is_socket(raw: Any) -> bool:
    return isinstance(raw, gsocket.socket | _stdsocket.socket)


def _direct_socket(raw: Any) -> Any:
    """The socket OpenSSL may read and write itself, or ``None`` (memory BIOs).

    A stream over a socket (a PROXY-protocol stream) offers it through
    ``direct_socket()`` when reading the descriptor loses nothing, i.e. when it
    holds no bytes of its own to replay first.
    """
    if _is_socket(raw):
        return raw
    offer = getattr(raw, "direct_socket", None)
    sock = offer() if callable(offer) else None
    return sock if _is_socket(sock) else None


def _wrap(context: SSL.Context, raw: Any, nodelay: bool = True) -> TLSStream:
    # A gevent socket, what a TCP listener accepts, is the common case.
    sock = raw if type(raw) is gsocket.socket else _direct_socket(raw)
    if sock is not None:
        if isinstance(sock, _stdsocket.socket) and sock.gettimeout() != 0.0:
            # OpenSSL must never block the hub on this descriptor.
            sock.setblocking(False)
        if nodelay:  # nodelay=0 on the description asked for Nagle: leave it on
            try:
                set_nodelay(sock)
            except OSError:
                pass
        # Addresses, shutdown and close still go through ``raw``.
        connection = SSL.Connection(context, sock)
        return TLSStream(connection, raw, memory=False, sock=sock)
    connection = SSL.Connection(context, None)
    return TLSStream(connection, raw, memory=True)


def _run_handshake(stream: TLSStream, timeout: float | None, address: Any) -> None:
    """Handshake within ``timeout``; on any failure close the stream and raise."""
    try:
        saved = stream._timeout
        stream._timeout = None
        try:
            stream._do_handshake(timeout)
        finally:
            stream._timeout = saved
    except TimeoutError as exc:
        stream.close()
        raise ConnectTimeoutError(
            f"TLS handshake with {address} timed out after {timeout:g} s", address=address
        ) from exc
    except SSL.Error as exc:
        stream.close()
        state = stream._conn.get_app_data()
        if isinstance(state, VerifyState) and state.reason is not None:
            error = TLSVerificationError(
                f"TLS verification of {address} failed: {state.detail}", address=address
            )
            cast(Any, error).reason = state.reason  # TLSVerificationError declares no reason
            raise error from exc
        if isinstance(exc, SSL.SysCallError):
            raise TLSError(
                f"TLS handshake with {address} failed: the connection was closed "
                f"({_eof_error(exc).strerror})",
                address=address,
            ) from exc
        raise TLSError(
            f"TLS handshake with {address} failed: {_ssl_error_text(exc)}", address=address
        ) from exc
    except OSError as exc:
        stream.close()
        raise TLSError(
            f"TLS handshake with {address} failed: {exc.strerror or exc}", address=address
        ) from exc
    except BaseException:
        stream.close()
        raise


def client_handshake(
    raw: Any,
    context: SSL.Context,
    *,
    hostname: str | None,
    server_name: bytes | None = None,
    check_hostname_after: bool = False,
    timeout: float | None = None,
    address: Any = None,
    nodelay: bool = True,
    session: SSL.Session | None = None,
) -> TLSStream:
    """Run a client handshake over ``raw``; return the stream once verified.

    ``raw`` is closed on every failure. ``hostname`` is the name the certificate
    must be valid for; ``server_name`` the SNI to send, if any (see
    ``greenpoint._tls_verify.server_name_to_send``). ``session`` (from an earlier
    connection with the same context) is offered for resumption.
    """
    address = address if address is not None else hostname
    try:
        stream = _wrap(context, raw, nodelay)
    except BaseException:
        raw.close()
        raise
    conn = stream._conn
    conn.set_app_data(VerifyState(None if check_hostname_after else hostname))
    if server_name is not None:
        conn.set_tlsext_host_name(server_name)
    if session is not None:
        try:
            conn.set_session(session)
        except SSL.Error:  # not resumable with this context: a full handshake then
            pass
    conn.set_connect_state()
    _run_handshake(stream, timeout, address)
    if check_hostname_after and hostname is not None:
        # A caller's own context: its verify callback ran; the name is ours to check.
        cert = stream.peer_certificate
        problem = (
            "the server sent no certificate" if cert is None else check_identity(cert, hostname)
        )
        if problem is not None:
            stream.close()
            error = TLSVerificationError(
                f"TLS verification of {address} failed: {problem}", address=address
            )
            cast(Any, error).reason = "hostname mismatch"  # as above
            raise error
    return stream


def server_handshake(
    raw: Any,
    context: SSL.Context,
    *,
    timeout: float | None = None,
    address: Any = None,
    nodelay: bool = True,
) -> TLSStream:
    """Run a server handshake over ``raw``; ``raw`` is closed on every failure."""
    try:
        stream = _wrap(context, raw, nodelay)
    except BaseException:
        raw.close()
        raise
    stream._conn.set_accept_state()
    _run_handshake(stream, timeout, address)
    return stream
