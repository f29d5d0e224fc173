"""A loop-dispatched transport: no greenlet per connection, no switch per message.

The Twisted transport of a server connection on a plain gevent socket (TCP or
UNIX), for ``listen(factory)`` in its default ``dispatch="loop"`` mode. Its I/O
runs in the gevent loop's watcher callbacks (in the hub); its protocol code runs
in the shared dispatcher greenlet (:mod:`greenpoint._dispatch`), to which the
callbacks post items. The contract for protocols is the greenlet
:class:`~greenpoint._transport.Transport`'s; what differs is where code runs.

- The socket: the raw non-blocking socket the port accepted, with a libev read
  watcher of its own (made when reading starts) and a write watcher made only
  when a write must wait. No gevent socket is made unless :meth:`getHandle` is
  asked for one (it is then built around the same raw socket, and its watchers
  replace ours); a connection that never asks pays for no gevent object.
- Reading: the read watcher is started once and stays started while
  the connection reads; its callback reads (the adaptive size of
  :mod:`greenpoint._read_size`; after a read that filled its buffer, again at
  once, a few times) and posts the data. End of file is posted as ``b""``.
  ``pauseProducing`` stops the watcher; data already read waits for
  ``resumeProducing``.
- Writing: a direct non-blocking ``send``; what the kernel does not take is
  queued and the write watcher flushes it when writable (no greenlet).
- Ending: nothing calls ``connectionLost`` (or any protocol callback) from
  inside another callback or from the hub: the end is posted (or, at the
  peer's end of file, comes in the delivery of that item), so a protocol
  closing or writing to another connection never recurses into that
  connection's code. ``connectionLost`` runs once, in the dispatcher.
- Items posted in the hub are only posted: the hub never runs protocol code and
  an exception never leaves a watcher callback.

The port-facing side (``kill``, ``join``, ``rawlink``, ``dead``) lets a
:class:`~greenpoint._serve.ListeningPort` count, drain and kill these
connections as it does handler greenlets (see :mod:`greenpoint._callback_port`).
"""

from __future__ import annotations

import collections
import contextvars
import logging
import socket as _stdsocket
from os import read as _read
from os import write as _write
from typing import Any, cast

import gevent
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint._address import from_sockaddr, host_address, peer_address
from greenpoint._checks import check_timeout
from greenpoint._connect import build_protocol  # at the top: an import per connection costs
from greenpoint._dispatch import Dispatcher
from greenpoint._half_made import detach_half_made
from greenpoint._reactor_time import adopt_twisted_timers, clock, current_owner
from greenpoint._read_size import MIN_READ_SIZE, next_read_size
from greenpoint.errors import ConnectionDone, ConnectionLost

__all__ = ["CallbackTransport"]

log = logging.getLogger("greenpoint")

WRITE_HIGH_WATER = 64 * 1024  # as the greenlet Transport (Twisted's bufferSize)
WRITE_LOW_WATER = 16 * 1024
SMALL_WRITE = 16 * 1024  # queued writes smaller than this are joined before sending...
SEND_COALESCE = 256 * 1024  # ...into sends of up to this size
# After a read that filled its buffer, the dispatcher reads on by itself, up to
# this many more reads (each delivered before the next): a bulk sender is read
# and answered as a greenlet reader would, one chunk alive at a time, and the
# other connections wait at most this many chunks.
READS_IN_DISPATCHER = 16

_EOF = b""  # posted as the item that means "the peer closed its sending side"


def _as_bytes(data: Any) -> bytes:
    try:
        return memoryview(data).tobytes()
    except TypeError:
        raise TypeError(f"write() takes bytes, not {type(data).__name__}") from None


# The raw socket class gevent's own sockets are made of (weak-referenceable, as
# the ssl module needs): what a loop-dispatched port accepts into.
RAW_SOCKET = gsocket.socket._gevent_sock_class


def _gevent_socket_around(sock: Any) -> Any:
    """A gevent socket whose raw socket is ``sock`` itself (not a copy or a dup:
    the port, the transport and the handle all close the same object).

    A closed ``sock`` gets a closed gevent socket of the same kind.
    """
    family, kind, proto = sock.family, sock.type, sock.proto
    fd = sock.fileno()
    if fd < 0:
        handle = gsocket.socket(family, kind, proto)
        handle.close()
        return handle
    # gevent makes a raw socket of its own for the fd; ours replaces it, and its
    # own is detached (it must not close the fd).
    try:
        handle = gsocket.socket(family, kind, proto, fileno=fd)
    except BaseException as exc:  # ``sock`` still owns fd: the half-made one must not close it
        detach_half_made(fd, exc)
        raise
    made, handle._sock = handle._sock, sock
    made.detach()
    return handle


def _lost(exc: BaseException) -> ConnectionLost:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    reason = ConnectionLost(f"connection lost: {text}")
    reason.__cause__ = exc
    return reason


class CallbackTransport:
    """A server connection as a Twisted protocol sees it, driven by loop callbacks.

    Made by the port for each accepted socket; :meth:`begin` (posted, so it runs in
    the dispatcher) builds the protocol from the factory and starts reading.
    """

    # Defaults as class attributes: a connection stores only what it changes.
    _protocol: Any = None
    _host = None
    _host_sockaddr = None
    _size = MIN_READ_SIZE  # the next read's size (greenpoint._read_size)
    _reading = False  # the read watcher is started
    _writing = False  # the write watcher is started
    _buffered = 0
    _buffer: collections.deque[Any] | None = None
    _reason: BaseException | None = None
    _end_posted = False
    _reading_paused = False
    _reading_stopped = False
    _close_when_flushed = False
    _read_done = False
    _write_shut_requested = False
    _write_shut = False
    _write_closed = False
    _pull = False
    _pulled = False
    _pull_posted = False
    _paused: collections.deque[bytes] | None = None  # read while paused
    _flush_paused_posted = False
    _closed_event: Event | None = None
    _holder: Any = None  # a greenlet blocked in this connection's code (_dispatch)
    _handle: Any = None  # the gevent socket, once getHandle() made (or was given) one
    _read_watcher: Any = None  # our own libev watchers while there is no _handle
    _write_watcher: Any = None
    # The short paths of a message (see _refresh_direct and write): the protocol
    # the dispatcher may hand data to straight away, and "write may send at once".
    _direct: Any = None
    _send_now = True
    _held: collections.deque[Any] | None = None
    _tls_pending: Any = None
    write_high_water = WRITE_HIGH_WATER
    write_low_water = WRITE_LOW_WATER
    connected = True
    disconnecting = False
    disconnected = False
    producer: Any = None
    streamingProducer = False
    producerPaused = False

    def __init__(
        self,
        sock: Any,
        peer: Any,
        dispatcher: Dispatcher,
        factory: Any,
        on_close: Any = None,
        host: Any = None,
        handle: Any = None,
    ) -> None:
        # ``sock``: the raw non-blocking socket (owned from now on); ``handle``:
        # the gevent socket around it, if the port had one; ``host``: our own
        # address when the port knows it (a listener bound to one address).
        #
        # What every message reads comes first: CPython keeps an instance's
        # attributes in one array, in the order first assigned, so these share
        # one or two cache lines (with 10,000 connections the kernel's work per
        # request evicts them between two requests of a connection). Instance
        # attributes rather than class defaults: CPython specializes their
        # loads, for 8 bytes each per connection.
        self._fd = sock.fileno()  # for os.read/os.write while reading (see _readable)
        self._size = MIN_READ_SIZE
        self._direct = None  # the dispatcher's short path (_refresh_direct)
        self._send_now = True  # write's short path (_refresh_send_now)
        self._reading = False
        # Each connection's protocol code runs in a contextvars context of its own
        # (as an asyncio task's would): entering it is cheaper than setting
        # current_owner (the timers' owner) before every delivery, and context
        # variables that protocol code sets stay with its connection.
        self._context: contextvars.Context | None = contextvars.Context()
        self._sock = sock
        self._dispatcher = dispatcher
        self._protocol: Any = None
        if handle is not None:
            self._handle = handle
        if host is not None:
            self._host = host
        self._peer = peer
        self._post = dispatcher.post
        dispatcher.add_connection()
        self._factory = factory
        self._on_close = on_close
        self._holder = None
        self._close_reason: BaseException | None = None
        self._reading_stopped = False
        self._reading_paused = False
        self._paused = None
        self._write_closed = False
        self._buffered = 0
        self._pull = False

    def __repr__(self) -> str:
        if self._protocol is None:
            state = "closed" if self.disconnected else "starting"
            return f"<CallbackTransport {self._peer} {state}>"
        state = "closed" if self.disconnected else "open"
        return f"<CallbackTransport {self._peer} {state} protocol={self._protocol_name()}>"

    def _protocol_name(self) -> str:
        return "protocol" if self._protocol is None else type(self._protocol).__name__

    # -- starting (in the dispatcher) --------------------------------------------

    def begin(self) -> None:
        """Post :meth:`_start`: the protocol is built in the dispatcher, not here."""
        self._post(self, self._start)

    def _start(self) -> None:
        if self._reason is not None:  # killed before it started
            self._finish(self._reason)
            return
        protocol = build_protocol(self._factory, self._peer)
        if protocol is None:
            self._close_unstarted()
            return
        self._protocol = protocol
        adopt_twisted_timers(protocol, self)
        current_owner.set(self)  # in our own context (see _begin)
        try:
            protocol.makeConnection(self)
        except Exception as exc:
            log.exception("Unhandled error in %s.connectionMade", type(protocol).__name__)
            self._finish(exc)
            return
        if self._reason is not None or self.disconnected:
            self._post_end()
            return
        self._update_reading()

    def _close_unstarted(self) -> None:
        self.disconnected = True
        self.connected = False
        self._close_socket()
        self._ended()

    # -- delivering (in the dispatcher; Dispatcher.Receiver) ------------------------

    def _deliver(self, item: Any) -> None:
        if item.__class__ is bytes:
            if self._reading_stopped:
                return  # loseConnection stops reading, as Twisted's stopReading does
            if self._reading_paused or self._paused:
                # Read before a pause took effect (or behind such data): held.
                if self._paused is None:
                    self._paused = collections.deque()
                self._paused.append(item)
                return
            # None only once closed, and by then reading has stopped (above).
            context: contextvars.Context = self._context  # type: ignore[assignment]
            if not item:
                context.run(self._read_eof)
                return
            try:
                context.run(self._protocol.dataReceived, item)
            except Exception as exc:
                self._fail(exc, "dataReceived")
            self._refresh_direct()
        elif item is self:  # a readable event posted for the short path
            self._read_late()
        elif self._context is not None:
            self._context.run(item)
        else:  # a timer that fell due as the connection closed
            item()

    def _refresh_direct(self) -> None:
        """Let the dispatcher deliver our next data itself (``_direct``) if nothing
        else needs looking at: reading on, not paused, nothing read while paused
        waiting, not held by a blocked call, not closing.

        Every way out of that state stops reading (``_stop_reading`` clears
        ``_direct``); the way back in is a delivery through :meth:`_deliver`,
        which calls this.
        """
        if (
            self._reading
            and not self._reading_paused
            and not self._paused
            and not self._reading_stopped
            and self._holder is None
            and self._tls_pending is None
            and self._context is not None
        ):
            self._direct = self._protocol
        else:
            self._direct = None

    def _killed(self, exc: BaseException) -> None:
        # A kill (or SystemExit...) interrupted protocol code of ours: end now.
        if self._reason is None:
            self._reason = _lost(exc)
        self._held = None
        self._holder = None
        self._finish(self._reason)

    def _hold(self) -> None:
        self._stop_reading()

    def _release(self) -> None:
        if not self.disconnected:
            self._update_reading()

    def _read_eof(self) -> None:
        # Run as one of our own posted items (never inside another callback), so
        # the end may come here and now rather than as one more post.
        self._reading_stopped = True
        if self._reading:
            self._stop_reading()
        callback = getattr(self._protocol, "readConnectionLost", None)
        if callback is None:
            # As the greenlet Transport: flush first, then close.
            self._close_when_flushed = True
            if self._reason is None and self._flushed():
                self._finish(ConnectionDone("connection was closed cleanly"))
            else:
                self._check_end()
            return
        self._read_done = True
        try:
            callback()
        except Exception as exc:
            self._fail(exc, "readConnectionLost")
            return
        self._check_end()

    def _flush_paused(self) -> None:
        self._flush_paused_posted = False
        paused = self._paused
        while paused and not self._reading_paused and not self.disconnected:
            self._deliver_now(paused.popleft())
        if paused is not None and not paused:
            self._paused = None

    def _deliver_now(self, data: bytes) -> None:
        if self._reading_stopped:
            return
        if not data:
            self._read_eof()
            return
        try:  # already in our context: _flush_paused is a posted item
            self._protocol.dataReceived(data)
        except Exception as exc:
            self._fail(exc, "dataReceived")

    # -- the watchers (in the hub: post, never call protocol code) ------------------

    def _update_reading(self) -> None:
        """Start or stop the read watcher as the state says."""
        want = not (
            self._reading_paused
            or self._reading_stopped
            or self.disconnected
            or self._holder is not None
            or self._tls_pending is not None
        )
        if want and not self._reading:
            event = self._reader()
            if event is not None:
                self._reading = True
                if self._handle is None:
                    # Our own watcher: its callback is the dispatcher queue's append
                    # (a C call, no Python frame in the hub per readable event); the
                    # dispatcher reads us when our turn comes (see _readable).
                    event.start(self._dispatcher._queue.append, self)
                else:
                    # The gevent socket's watcher: gevent finds whom to tell of a
                    # close by its callback's __self__ (see throw).
                    event.start(self._readable)
        elif not want and self._reading:
            self._stop_reading()

    def _stop_reading(self) -> None:
        self._direct = None  # reading stopped: data takes _deliver (_refresh_direct)
        if self._reading:
            self._reading = False
            handle = self._handle
            event = self._read_watcher if handle is None else handle._read_event
            if event is not None:
                event.stop()

    def _readable(self) -> None:
        # Readable. On the short path (see _refresh_direct) only the connection
        # is posted: the dispatcher reads it when its turn comes and hands the
        # data to dataReceived straight away (Dispatcher._serve), so the read,
        # the protocol code and its write run one after the other for each
        # connection, with the data and the connection's objects still in the
        # cache, and one chunk alive at a time, not one per ready connection.
        # Our own read watcher posts the connection itself, with no Python call
        # (_update_reading); the dispatcher then calls this, through _deliver and
        # _read_late, when the connection is not on the short path. A gevent
        # socket's watcher (getHandle) calls this for every readable event.
        dispatcher = self._dispatcher
        if self._direct is not None:
            dispatcher._queue.append(self)
            if not dispatcher._scheduled:
                dispatcher._schedule()
            return
        # Otherwise one read here and one post. Reads that fill the buffer go on
        # in _read_on.
        #
        # os.read on the descriptor, not socket.recv: the same read(2), without
        # recv's argument tuple and parsing (a few hundred instructions a
        # message). The descriptor number is only used while our read watcher is
        # started, and nothing closes the socket while it is: we stop reading
        # before we close; the port closes a connection's socket itself only
        # after ending it (_abort_with stops reading); a gevent socket from
        # getHandle() closed under us tells the watcher's owner first (throw,
        # which stops reading). So the number cannot name another file here.
        # Writes, which can happen in any state, go through the socket object
        # instead (see write).
        size = self._size
        try:
            data = _read(self._fd, size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._abort_with(_lost(exc))
            return
        got = len(data)
        if got < size:
            if not got:
                # Before posting b"": end of file must not take the short path.
                self._stop_reading()
            elif size > MIN_READ_SIZE and got < size >> 1:
                self._size = next_read_size(size, got)
            # Dispatcher.post, inlined (a call less per message).
            dispatcher._queue.append((self, data))
            if not dispatcher._scheduled:
                dispatcher._schedule()
            return
        self._post(self, data)
        self._size = next_read_size(size, got)
        self._post(self, self._read_on)

    def _read_failed(self, exc: OSError) -> None:
        """The dispatcher's read (short path) failed: nothing to read yet, or the end."""
        if not isinstance(exc, (BlockingIOError, InterruptedError)):
            self._abort_with(_lost(exc))

    def _read_more(self, data: bytes) -> None:
        """The dispatcher's read (short path, in our context) filled its buffer or
        found end of file: what ``_readable`` and ``_deliver`` do with such reads."""
        got = len(data)
        if not got:
            self._stop_reading()
            self._read_eof()
            return
        self._size = next_read_size(self._size, got)
        try:
            self._protocol.dataReceived(data)
        except Exception as exc:
            self._fail(exc, "dataReceived")
            return
        self._post(self, self._read_on)

    def _read_late(self) -> None:
        """In the dispatcher: a readable event of our own watcher (or one posted for
        the short path) found us off the short path: read and deliver as the full
        path does (a connection's first message, say), if still reading."""
        if not self._reading:
            return  # paused, held or closing since: the watcher, restarted, tells again
        size = self._size
        try:
            data = _read(self._fd, size)  # only while reading: see _readable
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._abort_with(_lost(exc))
            return
        got = len(data)
        if not got:
            self._stop_reading()  # before b"" is delivered (see _readable)
        elif got >= size or (size > MIN_READ_SIZE and got < size >> 1):
            self._size = next_read_size(size, got)
        self._deliver(data)
        del data  # one chunk alive at a time (see _read_on)
        if got >= size:
            self._post(self, self._read_on)

    def _read_on(self) -> None:
        """In the dispatcher, after a read that filled its buffer: read and deliver
        more at once while reads stay full (a posted item: runs in our context)."""
        fd = self._fd
        # The read and its error handling are written out here and in _read_late, not
        # shared through a helper: a call more per 64 KiB read measured 5-8% more
        # instructions per MB of echo (bench/README.md, section 15).
        for _ in range(READS_IN_DISPATCHER):
            if not self._reading or self._paused or self._holder is not None:
                return  # paused, stopped, closed or held meanwhile: the watcher decides
            size = self._size
            try:
                data = _read(fd, size)  # only while reading: see _readable
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._abort_with(_lost(exc))
                return
            got = len(data)
            if not got:
                self._stop_reading()
                self._read_eof()
                return
            if got >= size or (size > MIN_READ_SIZE and got < size >> 1):
                self._size = next_read_size(size, got)
            try:
                self._protocol.dataReceived(data)
            except Exception as exc:
                self._fail(exc, "dataReceived")
                return
            if got < size:
                return
            # Let this chunk go before the next read allocates one: with two
            # 256 KiB chunks alive and then none, glibc finds more than its trim
            # threshold (twice the mmap threshold it adapted to) free at the top of
            # its heap, gives it back to the kernel, and the next reads fault the
            # pages in again (bench/README.md, section 11).
            del data

    def _want_writable(self) -> None:
        if not self._writing and not self.disconnected:
            event = self._writer()
            if event is not None:
                self._writing = True
                event.start(self._writable)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            handle = self._handle
            event = self._write_watcher if handle is None else handle._write_event
            if event is not None:
                event.stop()

    def _writable(self) -> None:
        try:
            self._flush_now()
        except OSError as exc:
            self._abort_with(_lost(exc))
            return
        if self.producerPaused and self._buffered <= self.write_low_water:
            self._post(self, self._resume_producer)
        if self._buffered:
            return
        self._stop_writing()
        self._refresh_send_now()
        if self._pull and self._pulled:
            self._post_pull()
        if self._write_shut_requested or self._close_when_flushed:
            self._post(self, self._check_flushed)

    def _stop_watchers(self) -> None:
        self._stop_reading()
        self._stop_writing()

    def _reader(self) -> Any:
        """The read watcher: ours (made on first use), or the gevent socket's; ``None``
        once the socket is closed."""
        handle = self._handle
        if handle is not None:
            return handle._read_event  # gevent sets it to None when it closes
        fd = self._sock.fileno()
        if fd < 0:
            # Closed (by the port, after a kill): a watcher started on a closed
            # descriptor aborts libev, or reads whatever file reuses the number.
            return None
        watcher = self._read_watcher
        if watcher is None:
            watcher = self._read_watcher = self._dispatcher.hub.loop.io(fd, 1)
        return watcher

    def _writer(self) -> Any:
        """The write watcher, as :meth:`_reader`: made only when a write must wait."""
        handle = self._handle
        if handle is not None:
            return handle._write_event
        fd = self._sock.fileno()
        if fd < 0:
            return None  # closed: as _reader
        watcher = self._write_watcher
        if watcher is None:
            watcher = self._write_watcher = self._dispatcher.hub.loop.io(fd, 2)
        return watcher

    def _close_socket(self) -> None:
        """Close the socket, its watchers first (libev must forget an fd before it is
        closed and reused). Once is enough; again does nothing."""
        try:
            handle = self._handle
            if handle is not None:
                # Stopped first: gevent's close would throw into a started one's owner.
                self._stop_watchers()
                handle.close()  # gevent closes its watchers, then the raw socket
                return
            self._reading = self._writing = False  # closing a watcher stops it
            watcher = self._read_watcher
            if watcher is not None:
                self._read_watcher = None
                watcher.close()
            watcher = self._write_watcher
            if watcher is not None:
                self._write_watcher = None
                watcher.close()
            self._sock.close()
        except Exception:
            log.debug("closing the socket of %r failed", self, exc_info=True)

    def throw(self, error: Any = None, *args: Any) -> None:
        """The socket was closed under us: gevent cancels the waits on a closed
        socket by throwing into the watcher's callback owner, here us (in the hub:
        so this only posts the end, and never raises)."""
        try:
            exc = error() if isinstance(error, type) else error
            if not isinstance(exc, BaseException):
                exc = OSError("the socket was closed")
            self._abort_with(_lost(exc))
        except Exception:  # pragma: no cover - nothing above should raise
            log.exception("ending %r after its socket was closed", self)

    # -- writing ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` to be sent; never blocks. Ignored once writing has closed."""
        if self._send_now and data.__class__ is bytes:
            # The usual case (nothing queued, no pull producer, open): send at once.
            # os.write is send(2) without flags, minus recv's argument parsing.
            # While our read watcher is started the kept descriptor number is
            # safe (see _readable: nothing closes the socket without stopping
            # it first); otherwise (paused, say) the socket object is asked each
            # time: after a close under us it is -1 (EBADF), never a number
            # reused by another file.
            try:
                sent = _write(self._fd if self._reading else self._sock.fileno(), data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._abort_with(_lost(exc))
                return
            if sent == len(data):
                return
            if sent:
                data = cast(bytes, memoryview(data)[sent:])
            self._enqueue(data)
            self._want_writable()
            return
        self._write(data)

    def _write(self, data: Any) -> None:
        if data.__class__ is not bytes:
            data = _as_bytes(data)
        if self._write_closed or not data:
            return
        if self._buffered:
            self._enqueue(data)
            return
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._abort_with(_lost(exc))
            return
        if sent == len(data):
            if self._pull:
                self._pulled = True
                self._post_pull()
            else:
                self._refresh_send_now()
            return
        if sent:
            data = cast(bytes, memoryview(data)[sent:])
        self._enqueue(data)
        self._want_writable()

    def _refresh_send_now(self) -> None:
        """``write`` may send at once: nothing queued, no pull producer, not closed.
        Cleared wherever one of those changes; set again here, from the slow path."""
        self._send_now = not (self._write_closed or self._buffered or self._pull)

    def writeSequence(self, iovec: Any) -> None:
        """Queue each bytes object of ``iovec``, in order."""
        data = b"".join(iovec)
        if data:
            self.write(data)

    def _enqueue(self, data: Any) -> None:
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = collections.deque()
        buffer.append(data)
        self._buffered += len(data)
        self._send_now = False
        if self._pull:
            self._pulled = True
        if (
            self._buffered > self.write_high_water
            and self.streamingProducer
            and not self.producerPaused
            and self.producer is not None
        ):
            self.producerPaused = True
            self.producer.pauseProducing()

    def _flush_now(self) -> None:
        """Send from the head of the queue until the socket would block."""
        buffer = self._buffer
        send = self._sock.send
        while buffer:
            chunk = self._next_chunk(buffer)
            try:
                sent = send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            self._buffered -= sent
            if sent == len(chunk):
                buffer.popleft()
            else:
                if sent:
                    buffer[0] = memoryview(chunk)[sent:]
                return

    @staticmethod
    def _next_chunk(buffer: collections.deque[Any]) -> Any:
        first = buffer[0]
        if len(buffer) == 1 or len(first) >= SMALL_WRITE:
            return first
        parts = [buffer.popleft()]
        size = len(first)
        while buffer and size + len(buffer[0]) <= SEND_COALESCE:
            part = buffer.popleft()
            parts.append(part)
            size += len(part)
        joined = b"".join(parts)
        buffer.appendleft(joined)
        return joined

    def _flushed(self) -> bool:
        if self._buffered:
            return False
        return self.producer is None or (self.streamingProducer and not self.producerPaused)

    def _check_flushed(self) -> None:
        """Do what waited for the queue to drain: a half-close, a close."""
        if self.disconnected or self._reason is not None or not self._flushed():
            return
        if self._write_shut_requested and not self._write_shut:
            self._shutdown_write()
        self._check_end()

    def _shutdown_write(self) -> None:
        self._write_shut = True
        self._write_closed = True
        self._send_now = False
        try:
            self._sock.shutdown(_stdsocket.SHUT_WR)
        except OSError as exc:
            self._abort_with(_lost(exc))
            return
        callback = getattr(self._protocol, "writeConnectionLost", None)
        if callback is not None:
            try:
                callback()
            except Exception as exc:
                self._fail(exc, "writeConnectionLost")
                return
        self._check_end()

    def _resume_producer(self) -> None:
        if self.producerPaused and self._buffered <= self.write_low_water:
            self.producerPaused = False
            if self.producer is not None:
                try:
                    self.producer.resumeProducing()
                except Exception as exc:
                    self._fail(exc, "producer")

    def _post_pull(self) -> None:
        if not self._pull_posted:
            self._pull_posted = True
            # After the loop's other callbacks: other connections get a turn
            # between two chunks of a pull producer (as gevent.sleep(0) would).
            self._dispatcher.post_soon(self, self._pull_more)

    def _pull_more(self) -> None:
        self._pull_posted = False
        if self._pull and self._pulled and not self._write_closed and not self._buffered:
            self._pulled = False
            try:
                self.producer.resumeProducing()
            except Exception as exc:
                self._fail(exc, "producer")
                return
        if not self._buffered:
            self._check_flushed()

    # -- ending ---------------------------------------------------------------------

    def _check_end(self) -> None:
        if (
            self._reason is not None
            or (self._close_when_flushed and self._flushed())
            or (self._read_done and self._write_shut)
        ):
            self._post_end()

    def _post_end(self) -> None:
        if not self._end_posted and not self.disconnected:
            self._end_posted = True
            self._post(self, self._end)

    def _end(self) -> None:
        if self.disconnected:
            return
        reason = self._reason
        if reason is None:
            if self._close_when_flushed and self._flushed():
                reason = ConnectionDone("connection was closed cleanly")
            elif self._read_done and self._write_shut:
                reason = ConnectionDone("both directions were closed cleanly")
            else:  # a state change undid what the end waited for (a new producer)
                self._end_posted = False
                return
        self._finish(reason)

    def _abort_with(self, reason: BaseException) -> None:
        """End the connection now with ``reason``; queued data is dropped."""
        if self.disconnected:
            return
        if self._reason is None:
            self._reason = reason
        self._reading_stopped = True
        self._write_closed = True
        self._send_now = False
        self._stop_watchers()
        if self._buffer is not None:
            self._buffer.clear()
        self._buffered = 0
        self._post_end()

    def _fail(self, exc: Exception, callback: str) -> None:
        log.error(
            "Unhandled error in %s.%s; closing the connection",
            self._protocol_name(),
            callback,
            exc_info=exc,
        )
        self._abort_with(exc)

    def _finish(self, reason: BaseException) -> None:
        """Close the socket and tell the protocol, once (in the dispatcher)."""
        if self.disconnected:
            return
        self.disconnected = True
        self.connected = False
        self._reading_stopped = True
        self._write_closed = True
        self._send_now = False  # write's short path: writes are ignored now
        if self._buffer is not None:
            self._buffer.clear()
        self._buffered = 0
        self._paused = None
        if self._host is None:
            self._remember_addresses()
        self._close_socket()
        try:
            producer, self.producer, self._pull = self.producer, None, False
            if producer is not None:
                try:
                    producer.stopProducing()
                except Exception:
                    log.exception("Unhandled error in %r.stopProducing", producer)
            protocol = self._protocol
            self._close_reason = reason
            if protocol is not None:
                try:
                    protocol.connected = 0
                except AttributeError:
                    pass
                try:
                    protocol.connectionLost(reason)
                except Exception:
                    log.exception("Unhandled error in %r.connectionLost", protocol)
        finally:
            # Let go of the protocol (it points back at us), and of our context
            # (current_owner in it is us): no cycle per connection.
            self._protocol = None
            self._factory = None
            self._context = None
            self._ended()

    def _ended(self) -> None:
        self._dispatcher.remove_connection()
        if self._closed_event is not None:
            self._closed_event.set()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            try:
                on_close(self)
            except Exception:
                log.exception("Unhandled error after %r closed", self)

    # -- what protocols call --------------------------------------------------------

    def loseConnection(self) -> None:
        """Stop reading, send everything written so far, then close."""
        if self.disconnected or self.disconnecting:
            return
        self.disconnecting = True
        self._close_when_flushed = True
        self._reading_stopped = True
        self._stop_reading()
        if self._tls_pending is None:
            self._check_end()

    def abortConnection(self) -> None:
        """Close at once; data not yet sent is dropped."""
        self._abort_with(ConnectionLost("connection aborted"))

    def loseWriteConnection(self) -> None:
        """Half-close: send what was written, then shut down our sending direction."""
        if self.disconnected or self._write_shut_requested:
            return
        self._write_shut_requested = True
        self._check_flushed()

    def pauseProducing(self) -> None:
        """Stop reading (no ``dataReceived``) until :meth:`resumeProducing`."""
        self._reading_paused = True
        self._stop_reading()

    def resumeProducing(self) -> None:
        """Start reading again after :meth:`pauseProducing`."""
        if not self._reading_paused:
            return
        self._reading_paused = False
        if self._paused and not self._flush_paused_posted:
            self._flush_paused_posted = True
            self._post(self, self._flush_paused)
        if not self.disconnected:
            self._update_reading()

    def stopProducing(self) -> None:
        """Twisted's meaning: close the connection (cleanly)."""
        self.loseConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Have ``producer`` write to this connection, with flow control (as Transport)."""
        if self.producer is not None:
            raise RuntimeError(
                f"cannot register producer {producer!r}: {self.producer!r} is still registered"
            )
        if self.disconnected:
            producer.stopProducing()
            return
        self.producer = producer
        self.streamingProducer = bool(streaming)
        self.producerPaused = False
        if streaming:
            if self._buffered > self.write_high_water:
                self.producerPaused = True
                producer.pauseProducing()
        else:
            self._pull = True
            self._send_now = False
            self._pulled = False
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        """Forget the producer; a pending ``loseConnection`` can now complete."""
        self.producer = None
        self._pull = False
        self.producerPaused = False
        self._refresh_send_now()
        self._check_flushed()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the marks at which a streaming producer is paused and resumed (bytes)."""
        high = self.write_high_water if high is None else high
        low = min(self.write_low_water, high) if low is None else low
        if not 0 <= low <= high:
            raise ValueError(f"need 0 <= low <= high, got low={low}, high={high}")
        self.write_high_water, self.write_low_water = high, low

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the socket."""
        return self._buffered

    def callLater(self, delay: float, func: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        """``greenpoint.clock.callLater`` for this connection (never during its callbacks)."""
        return clock.call_later_for(self, delay, func, *args, **kwargs)

    def run_timer(self, call: Any) -> bool:
        """Post a due timer; ``False`` once the connection is closed."""
        if self.disconnected:
            return False
        self._post(self, call)
        return True

    @property
    def close_reason(self) -> BaseException | None:
        """Why the connection ended: the reason ``connectionLost`` got; ``None`` before."""
        return self._close_reason

    def owns(self, greenlet: Any) -> bool:
        """Is ``greenlet`` running this connection's protocol code right now?

        That is the dispatcher while it delivers to this connection, or the
        greenlet left to it while one of its calls blocks; code that would block
        until the connection ends must not run there (it would wait for itself).
        """
        if greenlet is None:
            return False
        if greenlet is self._holder:
            return True
        dispatcher = self._dispatcher
        return dispatcher._busy is self and greenlet is dispatcher._greenlet

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until ``connectionLost`` has run; ``False`` if ``timeout`` passed first."""
        check_timeout(timeout)
        if self.disconnected:
            return True
        if self._closed_event is None:
            self._closed_event = Event()
        closed: bool = self._closed_event.wait(timeout)
        return closed

    # -- STARTTLS: hand the connection over to a greenlet Transport --------------------

    def startTLS(self, options: Any, normal: bool = True) -> None:  # noqa: N802
        """Switch this connection to TLS (see ``Transport.startTLS``).

        The connection leaves loop dispatch: once what was written before is sent,
        a greenlet handshakes and then runs the connection as the greenlet
        :class:`~greenpoint._transport.Transport` does (see ``_handover``).
        """
        from greenpoint._callback_handover import start_tls

        start_tls(self, options)

    # -- addresses and options ------------------------------------------------------

    def getPeer(self) -> Any:
        """The peer's address; also after the connection has closed."""
        if self._peer is None:
            self._peer = peer_address(self._sock)
        return self._peer

    def getHost(self) -> Any:
        """Our own address; also after the connection has closed."""
        if self._host is None:
            if self._host_sockaddr is not None:
                self._host = from_sockaddr(self._sock.family, self._host_sockaddr)
            else:
                self._host = host_address(self._sock)
        return self._host

    def _remember_addresses(self) -> None:
        try:
            if self._host is None:
                self._host_sockaddr = self._sock.getsockname()
        except Exception:
            log.debug("cannot learn the addresses of %r", self, exc_info=True)

    def getHandle(self) -> Any:
        """The underlying gevent socket (made on the first call: see the module doc)."""
        handle = self._handle
        if handle is None:
            handle = self._handle = _gevent_socket_around(self._sock)
            self._hand_watchers_to(handle)
        return handle

    def _hand_watchers_to(self, handle: Any) -> None:
        """From now on use ``handle``'s watchers (closing the handle under us then
        cancels them: :meth:`throw`); a started watcher of ours is started there."""
        mine = self._read_watcher
        if mine is not None:
            self._read_watcher = None
            mine.close()
            if self._reading and handle._read_event is not None:
                handle._read_event.start(self._readable)
        mine = self._write_watcher
        if mine is not None:
            self._write_watcher = None
            mine.close()
            if self._writing and handle._write_event is not None:
                handle._write_event.start(self._writable)

    def getPeerCertificate(self) -> Any:
        """``None``: a plain socket has no certificate."""
        return None

    @property
    def negotiatedProtocol(self) -> Any:  # noqa: N802
        """``None``: no TLS, no ALPN."""
        return None

    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802
        """Turn Nagle's algorithm off (``True``) or on; a no-op on UNIX sockets."""
        self._set_tcp_option(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, enabled)

    def getTcpNoDelay(self) -> bool:  # noqa: N802
        return self._get_tcp_option(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY)

    def setTcpKeepAlive(self, enabled: bool) -> None:  # noqa: N802
        """Turn TCP keep-alive probes on or off; a no-op on UNIX sockets."""
        self._set_tcp_option(_stdsocket.SOL_SOCKET, _stdsocket.SO_KEEPALIVE, enabled)

    def getTcpKeepAlive(self) -> bool:  # noqa: N802
        return self._get_tcp_option(_stdsocket.SOL_SOCKET, _stdsocket.SO_KEEPALIVE)

    def _is_tcp(self) -> bool:
        return self._sock.family in (_stdsocket.AF_INET, _stdsocket.AF_INET6)

    def _set_tcp_option(self, level: int, option: int, enabled: bool) -> None:
        if self._is_tcp() and not self.disconnected:
            self._sock.setsockopt(level, option, int(bool(enabled)))

    def _get_tcp_option(self, level: int, option: int) -> bool:
        if not self._is_tcp() or self.disconnected:
            return False
        return bool(self._sock.getsockopt(level, option))

    # -- what the listening port calls (it treats us as it treats a handler greenlet) ---

    @property
    def dead(self) -> bool:
        """The connection has ended (``connectionLost`` has run)."""
        return self.disconnected

    def ready(self) -> bool:
        return self.disconnected

    def kill(self, exception: Any = gevent.GreenletExit, block: bool = False) -> None:
        """End the connection as killing its greenlet would (``connectionLost`` gets
        ``ConnectionLost``); a greenlet blocked in its protocol code is killed too."""
        if self.disconnected:
            return
        exc = exception() if isinstance(exception, type) else exception
        # Ended here even when a greenlet blocked in our protocol code swallows the
        # kill below: reading stops for good (the port may close the socket next,
        # and a watcher restarted on a closed descriptor aborts libev), and the end
        # is posted (it waits, held, until that greenlet returns).
        self._abort_with(_lost(exc))
        holder = self._holder
        if holder is not None:
            holder.kill(exception, block=False)
        if block:
            self.join()

    def join(self, timeout: float | None = None) -> None:
        self.wait_closed(timeout)

    def rawlink(self, callback: Any) -> None:
        """Call ``callback(event)`` from the hub once the connection has ended."""
        if self._closed_event is None:
            self._closed_event = Event()
            if self.disconnected:
                self._closed_event.set()
        self._closed_event.rawlink(callback)

    def unlink(self, callback: Any) -> None:
        if self._closed_event is not None:
            self._closed_event.unlink(callback)
