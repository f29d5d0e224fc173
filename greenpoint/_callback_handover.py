"""STARTTLS on a loop-dispatched connection: hand it over to a greenlet Transport.

A TLS stream reads and writes through pyOpenSSL in a greenlet (a write may need a
read and the reverse), which loop callbacks cannot do. So ``startTLS`` on a
:class:`~greenpoint._callback_transport.CallbackTransport` moves the connection
out of loop dispatch, once and for good: reading stops, writes made after the
call are held, and a greenlet of its own sends what was written before (in
clear), handshakes, then runs the rest of the connection as the greenlet
:class:`~greenpoint._transport.Transport` (its public constructor and ``run``).

The protocol keeps its ``transport`` object: its class becomes
:class:`HandedOver`, which passes every call on to the new Transport, so the
protocol, the listening port (``kill``, ``join``, ``rawlink``) and the idle
sweep all keep talking to the same object.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent

from greenpoint._transport import Transport

__all__ = ["HandedOver", "start_tls"]

log = logging.getLogger("greenpoint")


def start_tls(connection: Any, options: Any) -> None:
    """``transport.startTLS(options)`` for a loop-dispatched connection."""
    from greenpoint._starttls import check_options

    check_options(options)
    if connection.disconnected or connection.disconnecting or connection._write_closed:
        raise RuntimeError(f"startTLS on {connection!r}, which is closing or closed")
    if connection._tls_pending is not None:
        raise RuntimeError(f"startTLS on {connection!r}, which is already TLS")
    connection._tls_pending = options
    held: list[bytes] = []

    def hold(data: Any) -> None:
        if data.__class__ is not bytes:
            data = memoryview(data).tobytes()
        if data:
            held.append(data)

    connection.write = hold  # until the handshake is done
    connection._stop_reading()
    connection._handover = gevent.spawn(_run_tls, connection, options, held)


def _run_tls(connection: Any, options: Any, held: list[bytes]) -> None:
    from greenpoint._starttls import handshake

    connection._stop_writing()
    try:
        plain = connection.getHandle()  # the gevent socket (made now if need be)
        buffer = connection._buffer
        if buffer:
            clear = b"".join(bytes(chunk) for chunk in buffer)
            buffer.clear()
            connection._buffered = 0
            plain.sendall(clear)
        if connection.disconnected or connection._reason is not None:
            return
        stream = handshake(options, plain, connection.getPeer())
    except Exception as exc:
        del connection.write
        connection._finish(exc)
        return
    except BaseException as exc:
        del connection.write
        connection._killed(exc)
        raise
    if connection.disconnected or connection._reason is not None:
        stream.close()
        del connection.write
        if not connection.disconnected:
            connection._finish(connection._reason)
        return
    protocol = connection._protocol
    closing = connection._close_when_flushed  # loseConnection during the handshake
    inner = Transport(stream, protocol, peer=connection._peer, on_close=connection._ended)
    producer = connection.producer
    paused = connection._reading_paused
    connection._protocol = None
    connection._inner = inner
    del connection.write
    connection.__class__ = HandedOver
    if producer is not None:
        inner.registerProducer(producer, connection.streamingProducer)
    if paused:
        inner.pauseProducing()
    for data in held:
        inner.write(data)
    if closing:
        inner.loseConnection()
    inner.run()


def _to_inner(name: str) -> property:
    def get(self: Any) -> Any:
        return getattr(self._inner, name)

    def set_(self: Any, value: Any) -> None:
        setattr(self._inner, name, value)

    return property(get, set_)


class HandedOver:
    """A loop-dispatched connection after ``startTLS``: every call goes to ``_inner``."""

    _inner: Any
    _closed_event: Any

    connected = _to_inner("connected")
    disconnecting = _to_inner("disconnecting")
    disconnected = _to_inner("disconnected")
    producer = _to_inner("producer")
    streamingProducer = _to_inner("streamingProducer")  # noqa: N815 - Twisted's name
    producerPaused = _to_inner("producerPaused")  # noqa: N815 - Twisted's name
    write_high_water = _to_inner("write_high_water")
    write_low_water = _to_inner("write_low_water")

    def __getattr__(self, name: str) -> Any:
        # Everything else (write, loseConnection, getPeerCertificate...) is the
        # Transport's.
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<handed over to {self._inner!r}>"

    # What the dispatcher may still hold for us (posted before the hand-over).
    _holder = None
    _held = None

    def _deliver(self, item: Any) -> None:
        if item is self:  # a readable event posted before the hand-over: the reader reads
            return
        if item.__class__ is bytes:
            if item:
                log.debug("%r: %d bytes read before the TLS hand-over dropped", self, len(item))
            return
        self._inner.run_timer(item)  # a timer that fell due: run by the new reader

    def _killed(self, exc: BaseException) -> None:
        self.kill(exc)

    def _release(self) -> None:
        pass

    def _hold(self) -> None:
        pass

    # What the listening port calls.

    @property
    def dead(self) -> bool:
        return bool(self._inner.disconnected)

    def ready(self) -> bool:
        return self.dead

    def kill(self, exception: Any = gevent.GreenletExit, block: bool = False) -> None:
        reader = self._inner._reader
        if reader is not None:
            reader.kill(exception, block=block)

    def join(self, timeout: float | None = None) -> None:
        self._inner.wait_closed(timeout)

    def rawlink(self, callback: Any) -> None:
        from greenpoint._callback_transport import CallbackTransport

        CallbackTransport.rawlink(self, callback)  # type: ignore[arg-type]

    def unlink(self, callback: Any) -> None:
        if self._closed_event is not None:
            self._closed_event.unlink(callback)
