"""The gevent socket a ``serve()`` handler gets for a plain TCP or UNIX connection.

It *is* a gevent socket (a subclass: every method, attribute and timeout behaves as
gevent's), with two of gevent's per-call costs taken out of the calls a handler
makes most:

* ``recv``/``recv_into`` after a read that returned less than asked (the socket was
  emptied, as in every request/response exchange) wait until the socket is readable
  *before* reading, as uvloop does, instead of reading, failing with ``EAGAIN`` (a
  system call and an exception) and then waiting. After a read that filled the
  buffer they read again at once, as gevent does; the first read tries at once too.
* ``sendall`` first offers all of the data to the kernel in one ``send``; only what
  did not fit goes through gevent's ``sendall``, which asks ``SO_SNDBUF`` (a system
  call) on every call to size its chunks.

And two of gevent's per-connection costs:

* One libev watcher per socket instead of two: gevent makes a read and a write
  watcher in ``__init__`` (each one an ``fcntl`` by libev and an object); a short
  connection's writes nearly always fit in the kernel's buffer, so the write watcher
  is made the first time something asks for it (a write that must wait, ``connect``,
  gevent's TLS), through a property over gevent's own slot.
* ``close()`` of a socket nobody waits on closes the watcher and the descriptor in
  one call; gevent's takes four Python calls and a tuple. Anything else (open
  ``makefile()`` objects, a greenlet waiting on the socket, a socket already closed)
  goes gevent's way, so waiters still get their ``EBADF``.

One slot per socket (no ``__dict__``), so an idle connection holds 8 bytes more
(and one watcher object less).
"""

from __future__ import annotations

import _socket
import socket as _stdsocket
from errno import EAGAIN
from typing import Any

from gevent import _socket3
from gevent import socket as gsocket
from gevent._hub_local import get_hub_noargs
from gevent._socketcommon import SocketMixin, cancel_wait_ex

__all__ = ["ServedSocket"]

_BUFFER_TYPES = (bytes, bytearray)

# gevent's storage for the write watcher (a slot of its SocketMixin), read and written
# under the ``_write_event`` property below.
_WRITE_SLOT: Any = SocketMixin.__dict__["_write_event"]
_RAW_SOCKET: Any = _socket3._wrefsocket  # what gevent's socket wraps
_CLOSED_SOCKET: Any = _socket3._closedsocket  # what it holds once closed
_CANCEL_WAIT_ERROR: Any = cancel_wait_ex  # what a waiter gets when the socket closes
_READ, _WRITE = 1, 2  # libev's EV_READ, EV_WRITE


def _close_after_pending(loop: Any, sock: Any) -> None:
    """Close ``sock`` once the loop has run the callbacks now pending (gevent's way)."""
    check = loop.check()

    def close_now(raw: Any) -> None:
        try:
            raw.close()
        except OSError:
            pass
        finally:
            check.stop()
            check.close()

    check.start(close_now, sock)


class ServedSocket(gsocket.socket):  # type: ignore[misc]  # gevent's class is untyped
    """A gevent socket whose reads wait first once a read emptied it; see the module."""

    __slots__ = ("_emptied",)

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        # gevent's socket.__init__ (gevent 26.9) without the write watcher, and
        # without SocketMixin.__init__ setting every slot to None first.
        if fileno is None:
            family = _stdsocket.AF_INET if family == -1 else family
            type = _stdsocket.SOCK_STREAM if type == -1 else type
            proto = 0 if proto == -1 else proto
        # The C module's names: under gevent's monkey-patching, socket.socket is
        # gevent's class.
        this: Any = self  # gevent's slots, which mypy cannot see
        this._closed = False
        sock = this._sock = _RAW_SOCKET(family, type, proto, fileno)
        this._io_refs = 0
        self._emptied = False  # the last read returned less than asked
        try:
            _socket.socket.setblocking(sock, False)
            hub = this.hub = get_hub_noargs()
            this._read_event = hub.loop.io(sock.fileno(), _READ)
        except BaseException:
            if fileno is not None:
                sock.detach()  # the caller's descriptor stays the caller's to close
            raise
        _WRITE_SLOT.__set__(self, None)
        this.timeout = _socket.getdefaulttimeout()

    @property
    def _write_event(self) -> Any:
        """gevent's write watcher, made when first asked for (while the socket is open)."""
        event = _WRITE_SLOT.__get__(self)
        if event is None:
            this: Any = self  # gevent's slots, which mypy cannot see
            read_event = this._read_event
            if read_event is not None:  # None once closed or detached: stays None
                event = this.hub.loop.io(read_event.fd, _WRITE)
                event.ref = read_event.ref
                _WRITE_SLOT.__set__(self, event)
        return event

    @_write_event.setter
    def _write_event(self, event: Any) -> None:
        _WRITE_SLOT.__set__(self, event)

    @property
    def ref(self) -> bool:
        """Whether the socket's watchers keep the loop running (gevent's ``ref``)."""
        this: Any = self  # gevent's slots, which mypy cannot see
        return bool(this._read_event.ref)

    @ref.setter
    def ref(self, value: bool) -> None:
        this: Any = self
        this._read_event.ref = value
        write_event = _WRITE_SLOT.__get__(self)
        if write_event is not None:
            write_event.ref = value

    def close(self) -> None:
        this: Any = self
        sock = this._sock
        read_event = this._read_event
        write_event = _WRITE_SLOT.__get__(self)
        if (
            this._io_refs > 0  # makefile() objects still open: gevent's way (defers)
            or type(sock) is not _RAW_SOCKET  # closed already, or a stand-in
            or read_event is None
            or read_event.callback is not None  # someone waits: they must get EBADF
            or (write_event is not None and write_event.callback is not None)
        ):
            super().close()
            return
        this._closed = True
        this._read_event = None
        read_event.close()
        if write_event is not None:
            _WRITE_SLOT.__set__(self, None)
            write_event.close()
        fd = sock.fileno()
        this._sock = _CLOSED_SOCKET(sock.family, sock.type, sock.proto, fd, "closed")
        # As gevent: tell libev first; if that woke watchers of others on this fd
        # (now pending), the descriptor may be reused only after they have run.
        loop = this.hub.loop
        if loop.closing_fd(fd):
            _close_after_pending(loop, sock)
        else:
            sock.close()

    def shutdown(self, how: int) -> None:
        # gevent's, but a write watcher not made yet has no waiter to wake.
        this: Any = self
        if how != _stdsocket.SHUT_RD:
            this.hub.cancel_wait(_WRITE_SLOT.__get__(self), _CANCEL_WAIT_ERROR)
        if how != _stdsocket.SHUT_WR:
            this.hub.cancel_wait(this._read_event, _CANCEL_WAIT_ERROR)
        this._sock.shutdown(how)

    def _drop_events_and_close(self, closefd: bool = True, _cancel_wait_ex: Any = None) -> None:
        # What gevent's does on close()/detach() with waiters, reading the write
        # watcher's slot: the property would make a watcher only to close it.
        this: Any = self
        read_event = this._read_event
        write_event = _WRITE_SLOT.__get__(self)
        this._read_event = None
        _WRITE_SLOT.__set__(self, None)
        this.hub.cancel_waits_close_and_then(
            (read_event, write_event),
            _cancel_wait_ex or _CANCEL_WAIT_ERROR,
            this._drop_ref_on_close if closefd else id,
            this._sock,  # kept alive until the waiters are woken
        )

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags:  # MSG_PEEK and the like: gevent's way, state untouched
            peeked: bytes = super().recv(bufsize, flags)
            return peeked
        if self._emptied:
            # Wait until readable, then read. Level-triggered: a socket that got data
            # since the last read is readable at once, so waiting first never misses
            # any. Not on a non-blocking socket (its recv must fail rather than wait)
            # nor a closed one (its recv says EBADF). Inline: once per request.
            event = self._read_event
            if event is not None and self.timeout != 0.0:
                self._wait(event)
        try:
            data: bytes = self._sock.recv(bufsize)
        except BlockingIOError:  # nothing there yet: wait, then gevent's loop
            self._wait_after_eagain()
            data = super().recv(bufsize)
        self._emptied = 0 < len(data) < bufsize
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if flags:
            peeked: int = super().recv_into(buffer, nbytes, flags)
            return peeked
        if self._emptied:  # as in recv()
            event = self._read_event
            if event is not None and self.timeout != 0.0:
                self._wait(event)
        try:
            count: int = self._sock.recv_into(buffer, nbytes)
        except BlockingIOError:
            self._wait_after_eagain()
            count = super().recv_into(buffer, nbytes)
        self._emptied = 0 < count < (nbytes or memoryview(buffer).nbytes)
        return count

    def _wait_after_eagain(self) -> None:
        if self.timeout == 0.0:  # a non-blocking socket's read fails at once
            raise BlockingIOError(EAGAIN, "Resource temporarily unavailable")
        self._wait(self._read_event)

    def sendall(self, data: Any, flags: int = 0) -> None:
        if type(data) in _BUFFER_TYPES and data:
            try:
                sent = self._sock.send(data, flags)
            except BlockingIOError:
                sent = 0  # the kernel's buffer is full: gevent's loop waits for room
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        super().sendall(data, flags)
