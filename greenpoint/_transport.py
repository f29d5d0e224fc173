"""The transport: Twisted's ``ITCPTransport`` over any socket-like stream.

One greenlet per connection reads and calls ``dataReceived`` (the *reader*: the
server handler's own greenlet, or one that ``connect()`` spawns). ``write()`` never
blocks: when nothing is queued it first tries a non-blocking send, so the common
case (the kernel takes everything) costs no buffer and no greenlet switch. Whatever
the kernel did not take is queued, and a *writer* greenlet, spawned only then,
flushes it with the stream's blocking ``send`` and exits when the queue is empty.

Ordering rule: data goes straight to the stream only while the queue is empty, and
the writer only ever sends from the queue, so bytes leave in the order written.

Closing is done by the reader alone (it closes the stream and calls
``connectionLost`` exactly once). Other greenlets ask for it by setting state and
waking the reader: an event for its idle waits, and an ``_Interrupt`` thrown from the
hub when, and only when, it is parked inside ``recv`` (never into protocol code).

The state is three small machines (the enums ``_Conn``, ``_Read``, ``_Write``), each
only moving forward along its line, though it may skip states::

    connection  OPEN ──▶ CLOSING ──▶ ABORTING ──▶ CLOSED
    read side   READING ──▶ PEER_DONE ──▶ STOPPED
    write side  WRITING ──▶ SHUTTING ──▶ SHUT ──▶ DROPPED

    state      event                                                  next
    OPEN       loseConnection; EOF and no readConnectionLost           CLOSING
    OPEN,      an error (dataReceived raised, a send failed, ...),     ABORTING
     CLOSING    abortConnection, an idle timeout
    CLOSING    the queue is flushed (and a producer is done)           CLOSED
    OPEN,      read side PEER_DONE and write side SHUT                 CLOSED
     CLOSING
    ABORTING   the reader sees it                                      CLOSED
    any        makeConnection raised; the reader was killed            CLOSED

    READING    EOF, the protocol has readConnectionLost (it is called) PEER_DONE
    READING    other EOF; loseConnection                               STOPPED
    any        ABORTING, CLOSED                                        STOPPED

    WRITING    loseWriteConnection                                     SHUTTING
    SHUTTING   flushed: shutdown(SHUT_WR), writeConnectionLost         SHUT
    any        ABORTING, CLOSED (the queue is dropped)                 DROPPED

``CLOSED`` is entered only by the reader (``_finish``); ``ABORTING`` carries the
reason (``_reason``; the first one wins). ``write()`` is ignored from ``SHUT`` on;
``dataReceived`` is called only while ``READING``, and ``pauseProducing`` holds it
(``_reading_paused``, flow control, not a state). Twisted's attributes follow the
connection: ``connected``/``disconnected`` change at ``CLOSED``; ``disconnecting``
means ``loseConnection`` was called (not a peer's EOF), as in Twisted. The rest is
bookkeeping of the send path, not of the lifecycle: ``_blocked`` (the last send
hit a full stream), ``_pull`` (the producer is a pull producer, cached because
every write looks) and ``_pulled`` (it wrote since it was last asked).

Stream requirements: ``recv``, ``send`` (may send part, blocks only the greenlet),
``shutdown``, ``close``; optional ``setsockopt``/``getsockopt`` (TCP options degrade
to no-ops without them), ``getpeername``/``getsockname``/``family`` (or
``getPeer``/``getHost``), and ``try_send(data) -> int`` (a send that never blocks;
may raise ``BlockingIOError``) to get the fast path on streams that are not plain
gevent sockets.

The reader also runs the connection's timers (``greenpoint.clock``: a due timer is
queued and the reader woken, so it runs between two ``dataReceived`` calls, never
during one) and performs ``startTLS``: it waits for the clear text to be flushed,
handshakes over the stream, swaps the stream for the TLS one, then releases the
writes made after the call, which were held meanwhile.

A stream may have ``final_reason(reason) -> reason``, which the reader calls once the
stream is closed and whose answer ``connectionLost`` gets; it may block (a child
process's stream waits there for the child to exit: greenpoint._process_stream owns
that policy). If the hook raises, the reason stands; if the reader is killed while
it blocks, ``connectionLost`` gets ``ConnectionLost`` and the kill goes on.
"""

from __future__ import annotations

import collections
import enum
import logging
import socket as _stdsocket
from typing import Any, cast

import gevent
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint._address import from_sockaddr, host_address, peer_address
from greenpoint._checks import check_timeout
from greenpoint._reactor_time import adopt_twisted_timers, clock, current_owner
from greenpoint._read_size import MIN_READ_SIZE, next_read_size
from greenpoint.errors import ConnectionDone, ConnectionLost

__all__ = ["Transport"]

log = logging.getLogger("greenpoint")

RECV_SIZE = MIN_READ_SIZE  # the first read; later ones adapt (greenpoint._read_size)
WRITE_HIGH_WATER = 64 * 1024  # Twisted's FileDescriptor.bufferSize: pause producers above
WRITE_LOW_WATER = 16 * 1024  # resume them once the queue is this small again
SMALL_WRITE = 16 * 1024  # queued writes smaller than this are joined before sending...
SEND_COALESCE = 256 * 1024  # ...into sends of up to this size


class _Conn(enum.IntEnum):
    """The connection's lifecycle (drawn in the module docstring)."""

    OPEN = 0  # reading and writing
    CLOSING = 1  # send what is queued, then close cleanly
    ABORTING = 2  # close now with _reason; the queue is dropped
    CLOSED = 3  # the stream is closed and connectionLost called (or being called)


class _Read(enum.IntEnum):
    """The receiving direction."""

    READING = 0  # dataReceived for each read (unless paused)
    PEER_DONE = 1  # the peer ended its direction; readConnectionLost has run
    STOPPED = 2  # no more reads


class _Write(enum.IntEnum):
    """The sending direction."""

    WRITING = 0
    SHUTTING = 1  # loseWriteConnection: shut down our direction once flushed
    SHUT = 2  # shut down; writes are ignored
    DROPPED = 3  # aborted or closed; writes are ignored, the queue was dropped


# The members as module names: an Enum class attribute costs ~0.3 us on Python
# 3.11, and write() and the read loop look at the state on every call.
OPEN, CLOSING, ABORTING, CLOSED = _Conn.OPEN, _Conn.CLOSING, _Conn.ABORTING, _Conn.CLOSED
READING, PEER_DONE, STOPPED = _Read.READING, _Read.PEER_DONE, _Read.STOPPED
WRITING, SHUTTING, SHUT, DROPPED = _Write.WRITING, _Write.SHUTTING, _Write.SHUT, _Write.DROPPED


class _Interrupt(BaseException):
    """Thrown into a greenlet parked in ``recv``/``send`` so it looks at the state again."""


def _as_bytes(data: Any) -> bytes:
    try:
        return memoryview(data).tobytes()
    except TypeError:
        raise TypeError(f"write() takes bytes, not {type(data).__name__}") from None


def _lost(exc: BaseException) -> ConnectionLost:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    reason = ConnectionLost(f"connection lost: {text}")
    reason.__cause__ = exc
    return reason


class Transport:
    """A connection as a Twisted protocol sees it (``self.transport``).

    Attributes read by Twisted protocols: ``connected``, ``disconnecting`` (after
    ``loseConnection``), ``disconnected``, ``producer``, ``streamingProducer``,
    ``producerPaused``. How it ended: :attr:`close_reason`, :meth:`wait_closed`.

    ``on_close()`` is called once the connection has ended, after ``connectionLost``.
    """

    # Defaults as class attributes: a connection sets only what it changes, which
    # saves ~30 attribute stores per accepted connection.
    _host = None
    _host_sockaddr = None  # getHost's raw address, kept at close if not yet asked for
    _on_socket = False  # a plain gevent socket: raw sends, waits on its write watcher
    _final_reason: Any = None  # the stream's end hook (process streams); see _finish
    _signal: Event | None = None  # made by the reader's first wait; most never wait
    _blocked = False  # the last send hit a full stream; wait for writability
    _buffered = 0
    _writer: Any = None  # gevent Greenlet
    _in_send = False
    _writer_interrupt_pending = False
    _reader: Any = None  # gevent Greenlet
    _in_recv = False
    _reader_interrupt_pending = False
    _closed_event = None
    _reason: BaseException | None = None  # why, from ABORTING on
    _reading_paused = False
    _pull = False
    _pulled = False
    _due: collections.deque[Any] | None = None  # timers of this connection waiting to run
    _tls_pending: Any = None  # startTLS options until the reader switches to TLS
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
        stream: Any,
        protocol: Any,
        *,
        peer: Any = None,
        on_close: Any = None,
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._peer = peer
        self._on_close = on_close
        if type(stream) is gsocket.socket:
            # The raw socket under a gevent socket is non-blocking: its send raises
            # BlockingIOError instead of waiting (gevent's own send would wait).
            self._send_now = stream._sock.send
            self._on_socket = True
        else:
            # A send that never blocks, for the fast path, if the stream has one.
            self._send_now = getattr(stream, "try_send", None)
            # Looked up once (not on gevent sockets: their __getattr__ makes a
            # missing attribute cost two exceptions).
            self._final_reason = getattr(stream, "final_reason", None)
        self._buffer: collections.deque[bytes | memoryview] = collections.deque()
        # The state: instance attributes with no class default. Python 3.11 does not
        # specialize loads and stores of an attribute that shadows a class attribute
        # (~0.1 us each), and the state is read on every recv and write.
        self._conn = OPEN
        self._read = READING
        self._write = WRITING
        self._close_reason: BaseException | None = None  # what connectionLost got

    def __repr__(self) -> str:
        if self._protocol is None:  # let go of once closed
            return f"<Transport {self._peer} closed>"
        state = self._conn.name.lower()
        return f"<Transport {self._peer} {state} protocol={self._protocol_name()}>"

    def _protocol_name(self) -> str:
        return "protocol" if self._protocol is None else type(self._protocol).__name__

    # -- running the connection -------------------------------------------------

    def start(self) -> None:
        """Call the protocol's ``makeConnection``.

        If it raises, the connection is closed, ``connectionLost`` gets the error, and
        the error is raised again.
        """
        adopt_twisted_timers(self._protocol, self)
        # Timers set in connectionMade belong to this connection (see _reactor_time).
        token = current_owner.set(self)
        try:
            self._protocol.makeConnection(self)
        except BaseException as exc:
            self._finish(exc if isinstance(exc, Exception) else _lost(exc))
            raise
        finally:
            current_owner.reset(token)

    def run(self) -> None:
        """Read and deliver data until the connection ends; blocks the calling greenlet.

        The calling greenlet becomes the reader. If it is killed (``GreenletExit``,
        as a server stopping does), the connection is aborted, ``connectionLost`` gets
        ``ConnectionLost`` and the exception propagates.
        """
        self._reader = gevent.getcurrent()
        # Reset on the way out: the greenlet's context holding us, while we hold the
        # greenlet, would be a cycle left to the garbage collector.
        token = current_owner.set(self)
        try:
            try:
                self._read_loop()
                reason = self._wait_for_end()
            except BaseException as exc:
                self._finish(_lost(exc))
                raise
            self._finish(reason)
        finally:
            current_owner.reset(token)

    def spawn(self) -> Any:
        """Run :meth:`run` in a new greenlet and return it."""
        return gevent.spawn(self.run)

    @property
    def close_reason(self) -> BaseException | None:
        """Why the connection ended: the reason ``connectionLost`` got; ``None`` before.

        Set just before ``connectionLost`` is called, so it is there inside it too,
        and after :meth:`wait_closed` has returned ``True``.
        """
        return self._close_reason

    def owns(self, greenlet: Any) -> bool:
        """Is ``greenlet`` this connection's reader or its (current) writer?

        Protocol callbacks and producers run in those; code that would block until
        the connection ends must not run there (it would wait for itself).
        """
        return greenlet is not None and (greenlet is self._reader or greenlet is self._writer)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until ``connectionLost`` has run; ``False`` if ``timeout`` passed first.

        :attr:`close_reason` then says why it ended.
        """
        check_timeout(timeout)
        if self._conn is CLOSED:
            return True
        if self._closed_event is None:
            self._closed_event = Event()
        closed: bool = self._closed_event.wait(timeout)
        return closed

    def _read_loop(self) -> None:
        stream = self._stream
        recv = stream.recv
        on_socket = self._on_socket
        size = RECV_SIZE  # a local: an idle connection keeps no read state
        # The last read emptied the socket (it returned less than asked): wait until
        # it is readable before the next, as uvloop does, rather than try a recv
        # that would fail with EAGAIN (a syscall and an exception per message in a
        # request/response exchange). Gevent sockets only; others wait inside recv.
        drained = False
        while self._read is READING:
            if self._due:
                self._run_due()
                continue
            if self._tls_pending is not None:
                self._switch_to_tls()
                stream = self._stream  # a TLS stream now: reads go through its recv
                recv = stream.recv
                on_socket = self._on_socket
                drained = False
                continue
            if self._reading_paused:
                self._wait_while_paused()
                continue
            self._in_recv = True
            try:
                if on_socket:
                    event = stream._read_event  # None once the socket was closed
                    if drained and event is not None:
                        # gevent's own wait: the socket's timeout applies, and a
                        # close from another greenlet wakes it with EBADF.
                        stream._wait(event)
                    try:
                        data = stream._sock.recv(size)
                    except BlockingIOError:
                        drained = True
                        continue
                else:
                    data = recv(size)
            except _Interrupt:
                continue
            except OSError as exc:
                self._abort_with(_lost(exc))
                return
            finally:
                self._in_recv = False
            if not data:
                self._read_eof()
                return
            got = len(data)
            drained = got < size
            if got >= size or (size > MIN_READ_SIZE and got < size >> 1):
                size = next_read_size(size, got)
            self._blocked = False  # time passed: worth one more direct flush attempt
            if self._reading_paused:
                # Paused from another greenlet while we waited in recv: hold the data.
                self._wait_while_paused()
            if self._read is not READING:
                return  # loseConnection stops reading, as Twisted's stopReading does
            try:
                self._protocol.dataReceived(data)
            except Exception as exc:
                self._fail(exc, "dataReceived")
                return
            # Drop the chunk before waiting for the next read: an idle connection
            # would keep its last one (up to MAX_READ_SIZE) until its peer sends again.
            del data

    def _wait_while_paused(self) -> None:
        while self._reading_paused and self._read is READING:
            if self._due:
                self._run_due()
                continue
            self._cleared_signal().wait()

    def _read_eof(self) -> None:
        if self._read is not READING:
            return  # stopped while the read waited (loseConnection, an abort)
        callback = getattr(self._protocol, "readConnectionLost", None)
        if callback is None:
            # Twisted drops the connection at once and with it any queued data; we
            # flush first, as loseConnection would, so a peer that half-closed after
            # its request still gets the whole answer.
            self._read = STOPPED
            self._conn = CLOSING  # only OPEN reads, so this moves forward
            return
        self._read = PEER_DONE
        try:
            callback()
        except Exception as exc:
            self._fail(exc, "readConnectionLost")

    def _wait_for_end(self) -> BaseException:
        # The usual end (EOF or loseConnection with nothing queued) is decided at
        # once, without an event. Nothing switches between a check and the wait.
        while True:
            if self._conn is ABORTING:
                return cast(BaseException, self._reason)  # set with ABORTING
            if self._tls_pending is not None:  # startTLS, write, loseConnection
                self._switch_to_tls()  # the held writes are then queued
                continue
            if self._conn is CLOSING and self._flushed():
                return ConnectionDone("connection was closed cleanly")
            if self._read is PEER_DONE and self._write is SHUT:
                return ConnectionDone("both directions were closed cleanly")
            if self._due:
                self._run_due()
                continue
            self._cleared_signal().wait()

    def _finish(self, reason: BaseException) -> None:
        """Enter ``CLOSED``: close the stream and tell the protocol, once.

        The stream's ``final_reason`` hook, if any, may replace ``reason`` (a child
        process's exit status); if it is interrupted (a kill), ``connectionLost``
        gets ``ConnectionLost`` and the interruption is raised again afterwards.
        """
        if self._conn is CLOSED:
            return
        self._stop_both_directions()
        self._conn = CLOSED
        self.disconnected = True
        self.connected = False
        self._remember_addresses()
        try:
            self._stream.close()
        except Exception:
            log.debug("closing %r failed", self._stream, exc_info=True)
        interrupted: BaseException | None = None
        if self._final_reason is not None:
            reason, interrupted = self._ask_final_reason(reason)
        try:
            if self.producer is not None:  # most connections never had one
                self._stop_producer()
            self._tell_protocol(reason)
        finally:
            # Let go of the protocol, as Twisted's transports do: it points back at
            # us (protocol.transport), and a cycle per connection would leave every
            # closed connection to the garbage collector.
            self._protocol = None
            self._release_timers()
            if self._closed_event is not None:
                self._closed_event.set()
            if self._on_close is not None:
                self._call_on_close()
        if interrupted is not None:
            raise interrupted

    def _stop_producer(self) -> None:
        producer, self.producer, self._pull = self.producer, None, False
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("Unhandled error in %r.stopProducing", producer)

    def _tell_protocol(self, reason: BaseException) -> None:
        self._close_reason = reason
        protocol = self._protocol
        try:
            protocol.connected = 0
        except AttributeError:
            pass
        try:
            protocol.connectionLost(reason)
        except Exception:
            log.exception("Unhandled error in %r.connectionLost", protocol)

    def _call_on_close(self) -> None:
        try:
            self._on_close()
        except Exception:
            log.exception("Unhandled error after %r closed", self)

    def _ask_final_reason(self, reason: BaseException) -> tuple[BaseException, Any]:
        """The stream's hook, and what interrupted it (raised again after the close)."""
        try:
            return self._final_reason(reason), None
        except Exception:
            log.exception("cannot learn how %r ended", self._stream)
            return reason, None
        except BaseException as exc:  # killed while it waited (for a child's exit)
            return _lost(exc), exc

    # -- STARTTLS ---------------------------------------------------------------

    def startTLS(self, options: Any, normal: bool = True) -> None:  # noqa: N802
        """Switch this connection to TLS (Twisted's ``ITLSTransport.startTLS``).

        ``options`` is ``ClientTLSOptions`` (from ``options_for_client_tls``: we are
        the client, the server is verified as for ``tls:``), ``ServerTLSOptions`` /
        ``SNIServerOptions`` or a bare ``OpenSSL.SSL.Context`` (we are the server).
        Returns at once. What was written before is sent in clear first; what is
        written after goes over TLS once the reader greenlet has finished the
        handshake. A failed handshake closes the connection and ``connectionLost``
        gets the ``TLSError``. ``normal`` is accepted for Twisted's signature only.
        """
        from greenpoint._starttls import check_options

        check_options(options)
        if self._conn is CLOSED or self.disconnecting or self._write >= SHUT:
            raise RuntimeError(f"startTLS on {self!r}, which is closing or closed")
        if self._tls_pending is not None or hasattr(self._stream, "peer_certificate"):
            raise RuntimeError(f"startTLS on {self!r}, which is already TLS")
        self._tls_pending = options
        self._held: list[bytes] = []
        # Until the handshake is done, writes wait here. An instance attribute
        # shadows the method, so write() itself pays nothing for STARTTLS.
        self.write = self._hold  # type: ignore[method-assign]
        self._wake_reader()

    def _hold(self, data: Any) -> None:
        if data.__class__ is not bytes:
            data = _as_bytes(data)
        if data and self._write < SHUT:
            self._held.append(data)

    def _switch_to_tls(self) -> None:
        """In the reader: flush the clear text, handshake, then release held writes."""
        from greenpoint._starttls import handshake

        options, self._tls_pending = self._tls_pending, None
        while self._buffer and self._conn < ABORTING:
            if self._writer is None:
                self._start_writer()
            self._writer.join()
        if self._conn >= ABORTING:
            return
        try:
            stream = handshake(options, self._stream, self.getPeer())
        except Exception as exc:
            self._abort_with(exc)
            return
        self._stream = stream
        self._on_socket = False
        self._blocked = False
        self._send_now = getattr(stream, "try_send", None)
        self._final_reason = getattr(stream, "final_reason", None)
        del self.write  # the class's write() again
        held, self._held = self._held, []
        for data in held:
            self.write(data)

    # -- timers (greenpoint.clock) ---------------------------------------------

    def callLater(self, delay: float, func: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        """``greenpoint.clock.callLater`` for this connection: runs in its reader greenlet.

        The callback never runs while this connection's ``dataReceived`` runs.
        """
        return clock.call_later_for(self, delay, func, *args, **kwargs)

    def run_timer(self, call: Any) -> bool:
        """Queue a due timer for the reader; ``False`` once the connection is closed."""
        if self._conn is CLOSED:
            return False
        if self._due is None:
            self._due = collections.deque()
        self._due.append(call)
        self._wake_reader()
        return True

    def _run_due(self) -> None:
        due = self._due
        while due:
            due.popleft()()  # DelayedCall._run logs what a callback raises

    def _release_timers(self) -> None:
        # Fell due as the connection ended: they still run, as in Twisted, on their own.
        due, self._due = self._due, None
        while due:
            gevent.spawn(due.popleft())

    # -- waking the reader and the writer --------------------------------------

    def _cleared_signal(self) -> Event:
        """The event the reader waits on between checks of the state, cleared.

        Made on the first wait: a state change before it has no one to wake, and
        the reader checks the state again before every wait.
        """
        signal = self._signal
        if signal is None:
            signal = self._signal = Event()
        else:
            signal.clear()
        return signal

    def _signal_reader(self) -> None:
        """Wake the reader if it waits on the state (not inside ``recv``)."""
        if self._signal is not None:
            self._signal.set()

    def _wake_reader(self) -> None:
        """Make the reader look at the state: its idle wait, or its ``recv``."""
        self._signal_reader()
        if self._in_recv and not self._reader_interrupt_pending:
            self._reader_interrupt_pending = True
            gevent.get_hub().loop.run_callback(self._deliver_reader_interrupt)

    def _deliver_reader_interrupt(self) -> None:
        # Runs in the hub: the reader is parked, and only a parked recv is interrupted.
        self._reader_interrupt_pending = False
        if self._in_recv:
            self._reader.throw(_Interrupt)

    def _interrupt_writer(self) -> None:
        if self._in_send and not self._writer_interrupt_pending:
            self._writer_interrupt_pending = True
            gevent.get_hub().loop.run_callback(self._deliver_writer_interrupt)

    def _deliver_writer_interrupt(self) -> None:
        self._writer_interrupt_pending = False
        if self._in_send and self._writer is not None:
            self._writer.throw(_Interrupt)

    def _abort_with(self, reason: BaseException) -> None:
        """Enter ``ABORTING``: end the connection now with ``reason``, dropping the queue.

        The first reason wins; the reader then closes (``_finish``).
        """
        if self._conn >= ABORTING:
            return
        self._conn = ABORTING
        self._reason = reason
        self._stop_both_directions()
        self._wake_reader()

    def _stop_both_directions(self) -> None:
        self._read = STOPPED
        self._write = DROPPED
        self._buffer.clear()
        self._buffered = 0
        self._interrupt_writer()

    def _fail(self, exc: Exception, callback: str) -> None:
        log.error(
            "Unhandled error in %s.%s; closing the connection",
            self._protocol_name(),
            callback,
            exc_info=exc,
        )
        self._abort_with(exc)

    # -- writing ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` to be sent; never blocks. Ignored once writing has closed."""
        if data.__class__ is not bytes:
            data = _as_bytes(data)
        if self._write >= SHUT or not data:
            return
        if self._buffered:
            self._enqueue(data)
            if self._on_socket and not self._blocked:
                # Push from the head of the queue here too: a reader that is never
                # short of data never yields, and would starve the writer.
                try:
                    self._flush_now()
                except OSError as exc:
                    self._abort_with(_lost(exc))
            return
        send = self._send_now
        if send is not None:
            try:
                sent = send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._abort_with(_lost(exc))
                return
            if sent == len(data):
                if self._pull:
                    # A pull producer is asked again once its data is out.
                    self._pulled = True
                    self._start_writer()
                return
            self._blocked = True
            if sent:
                # The rest as a view (cast: write() is typed for its callers, bytes).
                data = cast(bytes, memoryview(data)[sent:])
        self._enqueue(data)
        self._start_writer()

    def writeSequence(self, iovec: Any) -> None:
        """Queue each bytes object of ``iovec``, in order."""
        data = b"".join(iovec)
        if data:
            self.write(data)

    def _enqueue(self, data: Any) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
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

    def _consume(self, chunk: Any, sent: int) -> None:
        """Drop ``sent`` bytes of ``chunk``, the head of the queue."""
        self._buffered -= sent
        if sent == len(chunk):
            self._buffer.popleft()
        elif sent:
            self._buffer[0] = memoryview(chunk)[sent:]

    def _flush_now(self) -> None:
        """Send from the head of the queue until the stream would block; never blocks."""
        buffer = self._buffer
        send = self._send_now
        while buffer:
            chunk = self._next_chunk()
            try:
                sent = send(chunk)
            except (BlockingIOError, InterruptedError):
                sent = 0
            self._consume(chunk, sent)
            if sent < len(chunk):
                self._blocked = True
                return

    def _start_writer(self) -> None:
        if self._writer is None and self._conn is not CLOSED:
            self._writer = gevent.spawn(self._flush_loop)

    def _flush_loop(self) -> None:
        buffer = self._buffer
        try:
            while self._conn < ABORTING:
                if buffer:
                    if self._on_socket:
                        self._flush_when_writable()
                    else:
                        self._send_head()
                    if self.producerPaused and self._buffered <= self.write_low_water:
                        self.producerPaused = False
                        if self.producer is not None:
                            self.producer.resumeProducing()
                    continue
                if self._pull and self._pulled and self._write < SHUT:
                    # Twisted asks a pull producer for more each time its last
                    # chunk is out; it stops asking when a call writes nothing.
                    self._pulled = False
                    self.producer.resumeProducing()
                    if self._pulled or buffer:
                        gevent.sleep(0)  # let other connections run between chunks
                        continue
                self._check_flushed()
                return
        except _Interrupt:
            pass
        except OSError as exc:
            self._abort_with(_lost(exc))
        except Exception as exc:
            self._fail(exc, "producer")
        finally:
            self._writer = None

    def _flush_when_writable(self) -> None:
        # Anyone may push from the head of the queue (write() does); the writer
        # only waits until the socket can take more, then pushes.
        self._flush_now()
        if self._buffer:
            self._in_send = True
            try:
                # The socket's own write watcher, so that closing the socket wakes
                # this wait as gevent wakes its own waiters.
                self._stream._wait(self._stream._write_event)
            finally:
                self._in_send = False
            self._blocked = False

    def _send_head(self) -> None:
        # Streams without a non-blocking send: only the writer sends queued data.
        chunk = self._next_chunk()
        self._in_send = True
        try:
            sent = self._stream.send(chunk)
        finally:
            self._in_send = False
        if self._buffer and self._buffer[0] is chunk:  # else: aborted meanwhile
            self._consume(chunk, sent)

    def _next_chunk(self) -> Any:
        buffer = self._buffer
        first = buffer[0]
        if len(buffer) == 1 or len(first) >= SMALL_WRITE:
            return first
        # Many small writes queued behind a full socket: one send, not one each.
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
        if self._buffer:
            return False
        # Twisted: a pull producer, or a paused push producer, still owes data.
        return self.producer is None or (self.streamingProducer and not self.producerPaused)

    def _check_flushed(self) -> None:
        """Do what waited for the queue to drain: a half-close, a close."""
        if self._conn >= ABORTING or not self._flushed():
            return
        if self._write is SHUTTING:
            self._shutdown_write()
        if self._conn is CLOSING:
            self._signal_reader()

    def _shutdown_write(self) -> None:
        self._write = SHUT
        try:
            self._stream.shutdown(_stdsocket.SHUT_WR)
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
        self._signal_reader()  # the reader may be waiting for both directions to close

    # -- closing ----------------------------------------------------------------

    def loseConnection(self) -> None:
        """Stop reading, send everything written so far, then close.

        With a pull producer (or a paused push producer) registered, the close waits
        for ``unregisterProducer``, as in Twisted.
        """
        if self._conn is CLOSED or self.disconnecting:
            return
        self.disconnecting = True
        if self._conn is OPEN:
            self._conn = CLOSING
        if self._read is READING:
            self._read = STOPPED
        self._wake_reader()

    def abortConnection(self) -> None:
        """Close at once; data not yet sent is dropped."""
        self._abort_with(ConnectionLost("connection aborted"))

    def loseWriteConnection(self) -> None:
        """Half-close: send what was written, then shut down our sending direction."""
        if self._conn is CLOSED or self._write is not WRITING:
            return
        self._write = SHUTTING
        self._check_flushed()

    # -- flow control -------------------------------------------------------------

    def pauseProducing(self) -> None:
        """Stop reading (no ``dataReceived``) until :meth:`resumeProducing`."""
        self._reading_paused = True

    def resumeProducing(self) -> None:
        """Start reading again after :meth:`pauseProducing`."""
        if self._reading_paused:
            self._reading_paused = False
            self._signal_reader()

    def stopProducing(self) -> None:
        """Twisted's meaning: close the connection (cleanly)."""
        self.loseConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Have ``producer`` write to this connection, with flow control.

        A streaming (push) producer is paused when more than ``write_high_water``
        bytes are queued and resumed at ``write_low_water``. A pull producer gets
        ``resumeProducing()`` now and again each time what it wrote has been sent.
        """
        if self.producer is not None:
            raise RuntimeError(
                f"cannot register producer {producer!r}: {self.producer!r} is still registered"
            )
        if self._conn is CLOSED:
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
            self._pulled = False
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        """Forget the producer; a pending ``loseConnection`` can now complete."""
        self.producer = None
        self._pull = False
        self.producerPaused = False
        self._check_flushed()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the marks at which a streaming producer is paused and resumed (bytes)."""
        high = self.write_high_water if high is None else high
        low = min(self.write_low_water, high) if low is None else low
        if not 0 <= low <= high:
            raise ValueError(f"need 0 <= low <= high, got low={low}, high={high}")
        self.write_high_water, self.write_low_water = high, low

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the stream."""
        return self._buffered

    # -- addresses and options ------------------------------------------------------

    def getPeer(self) -> Any:
        """The peer's address (an :class:`~greenpoint.IPv4Address`, ...).

        Also after the connection has closed (``connectionLost`` often logs it).
        """
        if self._peer is None:
            self._peer = peer_address(self._stream)
        return self._peer

    def getHost(self) -> Any:
        """Our own address; also after the connection has closed."""
        if self._host is None:
            if self._host_sockaddr is not None:  # kept by _remember_addresses
                self._host = from_sockaddr(self._stream.family, self._host_sockaddr)
            else:
                self._host = host_address(self._stream)
        return self._host

    def _remember_addresses(self) -> None:
        """Keep what ``getHost``/``getPeer`` still need, before the stream is closed.

        The peer is normally known from the start (``buildProtocol`` got it). Our
        own address is fetched lazily; if no one asked yet, keep it now, as cheaply
        as possible on a socket (one ``getsockname``, made an address only if asked;
        the socket's family survives its close).
        """
        try:
            if self._host is None:
                if self._on_socket:
                    self._host_sockaddr = self._stream._sock.getsockname()
                else:
                    self._host = host_address(self._stream)
            if self._peer is None:
                self._peer = peer_address(self._stream)
        except Exception:
            # A stream that cannot tell: getHost/getPeer raise that error themselves.
            log.debug("cannot learn the addresses of %r", self._stream, exc_info=True)

    def getHandle(self) -> Any:
        """The underlying stream (a gevent socket for TCP and UNIX)."""
        return self._stream

    def getPeerCertificate(self) -> Any:
        """The peer's TLS certificate, if the stream is a TLS stream; else ``None``."""
        getter = getattr(self._stream, "getPeerCertificate", None)
        return getter() if getter is not None else None

    @property
    def negotiatedProtocol(self) -> Any:
        """The ALPN protocol the TLS stream negotiated, or ``None``."""
        return getattr(self._stream, "negotiatedProtocol", None)

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Turn Nagle's algorithm off (``True``) or on; a no-op on non-TCP streams."""
        self._set_tcp_option(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, enabled)

    def getTcpNoDelay(self) -> bool:
        return self._get_tcp_option(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY)

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Turn TCP keep-alive probes on or off; a no-op on non-TCP streams."""
        self._set_tcp_option(_stdsocket.SOL_SOCKET, _stdsocket.SO_KEEPALIVE, enabled)

    def getTcpKeepAlive(self) -> bool:
        return self._get_tcp_option(_stdsocket.SOL_SOCKET, _stdsocket.SO_KEEPALIVE)

    def _is_tcp(self) -> bool:
        family = getattr(self._stream, "family", None)
        return family in (_stdsocket.AF_INET, _stdsocket.AF_INET6) and hasattr(
            self._stream, "setsockopt"
        )

    def _set_tcp_option(self, level: int, option: int, enabled: bool) -> None:
        if self._is_tcp() and self._conn is not CLOSED:
            self._stream.setsockopt(level, option, int(bool(enabled)))

    def _get_tcp_option(self, level: int, option: int) -> bool:
        if not self._is_tcp() or self._conn is CLOSED or not hasattr(self._stream, "getsockopt"):
            return False
        return bool(self._stream.getsockopt(level, option))
