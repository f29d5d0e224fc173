"""Copy bytes both ways between two connected streams, honouring half-closes.

What ``greenpoint connect``/``listen`` (stdio to a connection) and ``relay`` (a
connection to a connection) run. One greenlet per direction reads from one stream
and writes to the other:

* end-of-file on one side is passed on as a half-close (``shutdown(SHUT_WR)``) to
  the other, and the opposite direction keeps going (RFC 9293 §3.6: a TCP peer that
  has sent FIN may still receive);
* the pump ends when both directions have reached end-of-file, or at the first
  error in either (a reset, a broken pipe), since a broken stream cannot carry the
  other direction either.

Counts are kept as the bytes go, so a caller can show live progress.
"""

from __future__ import annotations

import socket
from typing import Any

import gevent

from greenpoint._clock import MONOTONIC, Clock
from greenpoint._read_size import MIN_READ_SIZE, next_read_size

__all__ = ["Pump"]

CHUNK_SIZE = MIN_READ_SIZE  # the first read; later ones adapt (greenpoint._read_size)


class Pump:
    """Bytes both ways between ``left`` and ``right``; :meth:`run` blocks until done.

    ``up`` counts bytes read from ``left`` and written to ``right``, ``down`` the
    other way. ``error`` is the first exception that ended the pump early, if any.
    The streams are not closed here: their owners close them.
    """

    def __init__(self, left: Any, right: Any, *, clock: Clock = MONOTONIC) -> None:
        self.left = left
        self.right = right
        self.up = 0
        self.down = 0
        self.error: BaseException | None = None
        self._now = clock.now
        self.started = clock.now()
        self.finished: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the pump was made (until it finished, once it has)."""
        end = self.finished if self.finished is not None else self._now()
        return end - self.started

    def run(self) -> None:
        """Copy until both directions ended or one failed; blocks the calling greenlet.

        If the calling greenlet is killed, both directions are stopped first.
        """
        upward = gevent.spawn(self._copy, self.left, self.right, "up")
        downward = gevent.spawn(self._copy, self.right, self.left, "down")
        directions = [upward, downward]
        try:
            for finished in gevent.iwait(directions):
                if finished.value is not None:  # an error: the other side is moot
                    self.error = finished.value
                    break
        finally:
            for greenlet in directions:
                greenlet.kill(block=False)
            gevent.joinall(directions)
            self.finished = self._now()

    def _copy(self, source: Any, sink: Any, counter: str) -> BaseException | None:
        """One direction; returns the error that ended it, or ``None`` at end-of-file."""
        # Counted send by send where the sink has send(): a pump stopped mid-chunk
        # (a --grace that ran out) then reports what really left, not a chunk less.
        send = getattr(sink, "send", None)
        size = CHUNK_SIZE
        try:
            while True:
                data = source.recv(size)
                if not data:
                    break
                got = len(data)
                if got >= size or (size > MIN_READ_SIZE and got < size >> 1):
                    size = next_read_size(size, got)
                if send is None:
                    sink.sendall(data)
                    setattr(self, counter, getattr(self, counter) + len(data))
                    continue
                view = memoryview(data)
                while view:
                    sent = send(view)
                    setattr(self, counter, getattr(self, counter) + sent)
                    view = view[sent:]
        except Exception as exc:  # OSError, or a TLS library's own error
            return exc
        try:
            sink.shutdown(socket.SHUT_WR)
        except Exception:
            # The sink is already gone: nothing more can be said to it, and the
            # other direction will find out for itself.
            pass
        return None
