"""Unit-testing a protocol with no connection: ``StringTransport`` and ``ManualClock``.

The greenpoint counterparts of Twisted's ``proto_helpers.StringTransport`` and
``task.Clock``. A test builds the protocol, connects it to a ``StringTransport``
(which records what the protocol writes and whether it asked to close), feeds it
bytes with ``dataReceived`` and moves time by hand::

    clock = ManualClock()
    transport = StringTransport(clock=clock)
    protocol = transport.connect(MyProtocol())  # connectionMade runs here
    protocol.dataReceived(b"HELO\\r\\n")
    assert transport.value() == b"250 hello\\r\\n"
    clock.advance(30)  # TimeoutMixin's timer fires, synchronously
    assert transport.disconnecting

Everything runs in the calling greenlet; nothing blocks.
"""

from __future__ import annotations

import heapq
import io
import itertools
from typing import Any

from greenpoint._reactor_time import Clock, DelayedCall, adopt_twisted_timers, clock

__all__ = ["ManualClock", "StringTransport"]


class _Entry:
    """A ManualClock timer: ``close()`` takes it out."""

    def __init__(self, call: DelayedCall, armed: int) -> None:
        self.call = call
        self.armed = armed
        self.closed = False

    def close(self) -> None:
        self.closed = True


class ManualClock(Clock):
    """A ``greenpoint.clock`` whose time moves only by :meth:`advance` (Twisted's ``task.Clock``).

    Due calls run synchronously inside ``advance``, in time order.
    """

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._now = float(start)
        self._heap: list[tuple[float, int, _Entry]] = []
        self._order = itertools.count()

    def seconds(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time ``seconds`` ahead, running every call that falls due on the way."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        while self._heap and self._heap[0][0] <= target:
            when, _, entry = heapq.heappop(self._heap)
            if entry.closed:
                continue
            self._now = max(self._now, when)
            entry.call._due(entry.armed)
        self._now = target

    def _start_timer(self, call: DelayedCall, armed: int) -> _Entry:
        entry = _Entry(call, armed)
        heapq.heappush(self._heap, (call.time, next(self._order), entry))
        return entry

    def _dispatch(self, call: DelayedCall, armed: int) -> None:
        call._run(armed)


class StringTransport:
    """A transport that records writes instead of sending them (Twisted's ``StringTransport``).

    ``value()`` is everything written so far; ``disconnecting`` turns true on
    ``loseConnection()`` and ``aborted`` on ``abortConnection()``. Timers set through
    ``transport.callLater`` (and Twisted's ``TimeoutMixin``) use ``clock``.
    """

    def __init__(self, peer: Any = None, host: Any = None, *, clock: Clock | None = None) -> None:
        self.io = io.BytesIO()
        self.peer = peer
        self.host = host
        self.clock = clock if clock is not None else _default_clock()
        self.connected = True
        self.disconnecting = False
        self.aborted = False
        self.producer: Any = None
        self.streaming: bool | None = None
        self.producerState = "producing"
        self.tls_options: Any = None
        self.protocol: Any = None

    def __repr__(self) -> str:
        return f"<StringTransport {len(self.value())} bytes written>"

    def connect(self, protocol: Any) -> Any:
        """Attach ``protocol`` (``makeConnection``: ``connectionMade`` runs); return it."""
        self.protocol = protocol
        adopt_twisted_timers(protocol, self)
        protocol.makeConnection(self)
        return protocol

    # -- what was written -------------------------------------------------------

    def value(self) -> bytes:
        """Every byte written so far."""
        return self.io.getvalue()

    def clear(self) -> None:
        """Forget what was written."""
        self.io.seek(0)
        self.io.truncate()

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        self.io.write(data)

    def writeSequence(self, iovec: Any) -> None:  # noqa: N802 - Twisted's name
        self.write(b"".join(iovec))

    # -- closing ------------------------------------------------------------------

    def loseConnection(self) -> None:  # noqa: N802
        self.disconnecting = True

    def abortConnection(self) -> None:  # noqa: N802
        self.aborted = True
        self.disconnecting = True

    def loseWriteConnection(self) -> None:  # noqa: N802
        self.disconnecting = True

    # -- the rest of the transport interface ---------------------------------------

    def getPeer(self) -> Any:  # noqa: N802
        return self.peer

    def getHost(self) -> Any:  # noqa: N802
        return self.host

    def startTLS(self, options: Any, normal: bool = True) -> None:  # noqa: N802
        """Record the options; later writes are still recorded in clear."""
        self.tls_options = options

    def callLater(self, delay: float, func: Any, *args: Any, **kwargs: Any) -> DelayedCall:  # noqa: N802
        return self.clock.call_later_for(None, delay, func, *args, **kwargs)

    def registerProducer(self, producer: Any, streaming: bool) -> None:  # noqa: N802
        if self.producer is not None:
            raise RuntimeError(f"cannot register {producer!r}: {self.producer!r} is registered")
        self.producer, self.streaming = producer, bool(streaming)

    def unregisterProducer(self) -> None:  # noqa: N802
        self.producer = self.streaming = None

    def pauseProducing(self) -> None:  # noqa: N802
        self.producerState = "paused"

    def resumeProducing(self) -> None:  # noqa: N802
        self.producerState = "producing"

    def stopProducing(self) -> None:  # noqa: N802
        self.producerState = "stopped"

    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802
        pass

    def setTcpKeepAlive(self, enabled: bool) -> None:  # noqa: N802
        pass


def _default_clock() -> Clock:
    return clock
