"""A socket-like stream over two file descriptors: one to read, one to write.

A child process's stdout/stdin pipes and the process's own standard input/output are
byte streams like a connected socket, but they are two descriptors, not one. This
module makes them look like one gevent socket (``recv``, ``send``, ``sendall``,
``shutdown``, ``close``, timeouts), so that everything written for sockets — the TLS
memory-BIO stream, the protocol layer, plain scripts — works over them unchanged.

Every call blocks only the calling greenlet: the descriptors are switched to
non-blocking mode and waits go through gevent io watchers, one per direction. The
original blocking mode is put back before a descriptor is closed, because a
descriptor may share its open file description with another process (a terminal,
the shell that started us) that expects blocking I/O.

Shutting a direction down closes its descriptor: ``shutdown(SHUT_WR)`` is how a
child (or the peer of ``stdio:``) sees end-of-file on its input, and
``shutdown(SHUT_RD)`` makes a child that keeps writing get ``EPIPE``/``SIGPIPE``
instead of blocking on a full pipe forever.
"""

from __future__ import annotations

import errno
import io
import os
import socket as _stdsocket
import stat
from typing import Any

from gevent import socket as gsocket
from gevent.hub import get_hub
from gevent.monkey import get_original

from greenpoint._address import PipeAddress

__all__ = ["PipeStream", "close_fd"]

# The real close(2). gevent >= 25.8 monkey-patches os.close to close pipes only when
# the event loop next turns, and the loop may sleep for good first: waiting for a
# child that needs the end-of-file this close gives it. We release our own
# watchers before closing, which is what that deferral protects against.
close_fd = get_original("os", "close")

READ_CHUNK = 64 * 1024  # one pipe buffer on Linux: a good size for a read loop

_READ = 1  # libev/libuv event masks: EV_READ, EV_WRITE
_WRITE = 2


class _Cancelled(OSError):
    """Thrown into a greenlet waiting on a descriptor that another greenlet closed."""

    def __init__(self) -> None:
        super().__init__(errno.EBADF, "the pipe was closed in another greenlet")


class _PipeEnd:
    """One direction of the stream: a descriptor, its watcher, its original mode."""

    def __init__(self, fd: int, events: int, hub: Any) -> None:
        mode = os.fstat(fd).st_mode
        self.fd = fd
        self.is_socket = stat.S_ISSOCK(mode)
        # Regular files and block devices are always "ready" and cannot be polled
        # (epoll_ctl says EPERM); plain blocking I/O on them never waits long.
        self.pollable = not (stat.S_ISREG(mode) or stat.S_ISBLK(mode))
        self.was_blocking = os.get_blocking(fd)
        self.watcher = None
        if self.pollable:
            os.set_blocking(fd, False)
            self.watcher = hub.loop.io(fd, events)

    def wait(self, timeout: float | None) -> None:
        if timeout == 0:  # non-blocking mode, as for a socket
            raise BlockingIOError(errno.EAGAIN, "the pipe is not ready")
        if self.watcher is not None:
            gsocket.wait(self.watcher, timeout, TimeoutError("timed out"))

    def release(self) -> None:
        """Give the descriptor back as it came (mode restored, not closed)."""
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        os.set_blocking(self.fd, self.was_blocking)
        self.fd = -1

    def close(self, hub: Any) -> None:
        fd, self.fd = self.fd, -1
        if fd < 0:
            return
        try:
            os.set_blocking(fd, self.was_blocking)
        except OSError:
            pass  # the descriptor is going away anyway
        watcher, self.watcher = self.watcher, None
        if watcher is None:
            close_fd(fd)
        else:
            # Wake any greenlet waiting on the watcher first and close the descriptor
            # only then, so that a reused fd number never reaches a stale watcher.
            hub.cancel_waits_close_and_then([watcher], _Cancelled, close_fd, fd)


class PipeStream:
    """A connected byte stream over a read descriptor and a write descriptor.

    Takes ownership of both descriptors (they must differ); ``close()`` closes them.
    If construction fails, both are left open for the caller to close.
    ``peer`` and ``host`` are what ``getPeer()``/``getHost()`` return.
    """

    family = None  # not a socket family: use getPeer()/getHost() for addresses
    type = _stdsocket.SOCK_STREAM
    proto = 0

    def __init__(
        self,
        read_fd: int,
        write_fd: int,
        *,
        peer: PipeAddress | None = None,
        host: PipeAddress | None = None,
    ) -> None:
        if read_fd == write_fd:
            raise ValueError("a PipeStream needs two distinct descriptors (dup one of them)")
        self._hub = get_hub()
        self._peer = peer if peer is not None else PipeAddress()
        self._host = host if host is not None else PipeAddress()
        self._timeout: float | None = None
        self._reader = _PipeEnd(read_fd, _READ, self._hub)
        try:
            self._writer = _PipeEnd(write_fd, _WRITE, self._hub)
        except BaseException:
            self._reader.release()
            raise
        self._read_shut = False
        self._write_shut = False
        self._closed = False

    # -- reading -------------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Read up to ``bufsize`` bytes; ``b""`` at end-of-file or after SHUT_RD."""
        self._check_flags(flags)
        while True:
            end = self._readable_end()
            if end is None:
                return b""
            try:
                return os.read(end.fd, bufsize)
            except BlockingIOError:
                pass
            self._wait_read(end)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Read into ``buffer`` (up to ``nbytes`` if given); 0 at end-of-file."""
        self._check_flags(flags)
        view = memoryview(buffer).cast("B")
        if nbytes:
            view = view[:nbytes]
        while True:
            end = self._readable_end()
            if end is None:
                return 0
            try:
                return os.readv(end.fd, [view])
            except BlockingIOError:
                pass
            self._wait_read(end)

    def _readable_end(self) -> _PipeEnd | None:
        self._check_open()
        return None if self._read_shut else self._reader

    def _wait_read(self, end: _PipeEnd) -> None:
        try:
            end.wait(self._timeout)
        except _Cancelled:
            if self._closed:
                raise OSError(errno.EBADF, "the stream was closed in another greenlet") from None
            # shut down for reading while we waited: that is end-of-file

    # -- writing -------------------------------------------------------------------

    def send(self, data: Any, flags: int = 0) -> int:
        """Write some of ``data``; return how many bytes were written (maybe fewer)."""
        self._check_flags(flags)
        view = memoryview(data).cast("B")
        while True:
            end = self._writable_end()
            try:
                return os.write(end.fd, view)
            except BlockingIOError:
                pass
            try:
                end.wait(self._timeout)
            except _Cancelled:
                pass  # the next round reports why (closed, or shut down for writing)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Write all of ``data``, waiting as often as the pipe is full."""
        view = memoryview(data).cast("B")
        while view:
            sent = self.send(view, flags)
            view = view[sent:]

    def _writable_end(self) -> _PipeEnd:
        self._check_open()
        if self._write_shut:
            raise BrokenPipeError(errno.EPIPE, "the stream was shut down for writing")
        return self._writer

    # -- ending --------------------------------------------------------------------

    def shutdown(self, how: int) -> None:
        """Close one direction or both; the peer sees end-of-file after SHUT_WR.

        Blocked readers of a direction shut down here get end-of-file; blocked
        writers get ``BrokenPipeError``.
        """
        self._check_open()
        if how not in (_stdsocket.SHUT_RD, _stdsocket.SHUT_WR, _stdsocket.SHUT_RDWR):
            raise ValueError(f"shutdown: unknown direction {how!r}")
        if how in (_stdsocket.SHUT_WR, _stdsocket.SHUT_RDWR) and not self._write_shut:
            self._write_shut = True
            if self._writer.is_socket:
                _shutdown_socket_writes(self._writer.fd)
            self._writer.close(self._hub)
        if how in (_stdsocket.SHUT_RD, _stdsocket.SHUT_RDWR) and not self._read_shut:
            self._read_shut = True
            self._reader.close(self._hub)

    def close(self) -> None:
        """Close both descriptors. Idempotent; blocked readers and writers get EBADF."""
        if self._closed:
            return
        self._closed = True
        self._read_shut = self._write_shut = True
        self._writer.close(self._hub)
        self._reader.close(self._hub)

    @property
    def closed(self) -> bool:
        return self._closed

    def __del__(self) -> None:
        # A stream dropped without close() must not keep a child's stdin open (it
        # would never see end-of-file) nor leak descriptors, as a socket would not.
        if getattr(self, "_closed", True):
            return
        try:
            self.close()
        except Exception:
            pass  # interpreter shutdown, or the hub is already gone

    def __enter__(self) -> PipeStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- socket-like odds and ends -------------------------------------------------

    def fileno(self) -> int:
        """The read descriptor (what to wait on for input); -1 once it is closed."""
        return self._reader.fd

    def settimeout(self, timeout: float | None) -> None:
        """Limit each wait in recv/send to ``timeout`` seconds (``socket.timeout``)."""
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None or non-negative")
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def getPeer(self) -> PipeAddress:  # noqa: N802 - Twisted's spelling
        return self._peer

    def getHost(self) -> PipeAddress:  # noqa: N802 - Twisted's spelling
        return self._host

    def getpeername(self) -> str:
        return str(self._peer)

    def getsockname(self) -> str:
        return str(self._host)

    def makefile(self, mode: str = "r", buffering: int | None = None, **text_options: Any) -> Any:
        """A file object over the stream; closing the file leaves the stream open."""
        if not set(mode) <= {"r", "w", "b"} or ("r" in mode) == ("w" in mode):
            raise ValueError(f"makefile: mode must be 'r' or 'w' with optional 'b', not {mode!r}")
        raw = _StreamIO(self, "r" if "r" in mode else "w")
        if buffering == 0:
            if "b" not in mode:
                raise ValueError("makefile: unbuffered mode needs 'b'")
            return raw
        size = buffering if buffering and buffering > 0 else io.DEFAULT_BUFFER_SIZE
        buffered = io.BufferedReader(raw, size) if "r" in mode else io.BufferedWriter(raw, size)
        return buffered if "b" in mode else io.TextIOWrapper(buffered, **text_options)

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(errno.EBADF, "the stream is closed")

    @staticmethod
    def _check_flags(flags: int) -> None:
        if flags:
            raise ValueError("a pipe stream takes no socket flags")

    def __repr__(self) -> str:
        state = (
            "closed" if self._closed else f"read_fd={self._reader.fd} write_fd={self._writer.fd}"
        )
        return f"<{type(self).__name__} {self._peer} {state}>"


def _shutdown_socket_writes(fd: int) -> None:
    # Our descriptor may be one of several for the same socket (inetd gives a
    # socket as both stdin and stdout): closing ours would not send FIN, so say
    # it with shutdown(2) first.
    sock = _stdsocket.socket(fileno=os.dup(fd))
    try:
        sock.shutdown(_stdsocket.SHUT_WR)
    except OSError:
        pass  # already disconnected; closing is all that is left to do
    finally:
        sock.close()


class _StreamIO(io.RawIOBase):
    """The raw file under ``makefile()``: reads and writes go to the stream."""

    def __init__(self, stream: PipeStream, mode: str) -> None:
        super().__init__()
        self._stream = stream
        self._mode = mode

    def readable(self) -> bool:
        return self._mode == "r"

    def writable(self) -> bool:
        return self._mode == "w"

    def readinto(self, buffer: Any) -> int:
        return self._stream.recv_into(buffer)

    def write(self, data: Any) -> int:
        return self._stream.send(data)

    def fileno(self) -> int:
        return self._stream.fileno()
