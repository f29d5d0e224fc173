"""The dispatcher: protocol callbacks of many connections, one greenlet switch per batch.

Loop-dispatched connections (:mod:`greenpoint._callback_transport`) do their I/O in
the gevent loop's watcher callbacks, which run in the hub itself. Protocol code
must not run there (gevent refuses a blocking call in the hub, and the hub's
stack cannot be suspended to finish one later), so those callbacks only *post*
``(connection, item)`` to the dispatcher's queue. The first post of a loop
iteration schedules one hub callback, :meth:`Dispatcher._wake`, which switches
once into the dispatcher greenlet; it delivers every queued item in order and
switches back. A connection's items are delivered in the order posted.

A protocol that blocks (``gevent.sleep``, a socket call, a lock) switches the
dispatcher out in the middle of a delivery. The hub then resumes inside
``_wake``, right after its switch, and sees the dispatcher still *busy* with a
connection: it leaves that greenlet to the connection (the connection is *held*:
its reading stops and its later items wait in its own list until the call
returns, then the greenlet delivers them and exits) and starts a fresh
dispatcher for everyone else. A protocol that never blocks costs a share of one
switch pair per loop iteration; one that blocks costs a greenlet, as it would
with a greenlet per connection, and never stalls the others.

A greenlet killed (or a ``BaseException`` raised by protocol code) ends the
connection being delivered, ``connectionLost`` gets ``ConnectionLost``, and the
greenlet dies; the next batch gets a fresh dispatcher.

The usual item, data for a connection in its plain state (reading, not paused,
nothing held back, not closing), takes a short path: the receiver says so by
its ``_direct`` attribute (its protocol, or ``None``), and the dispatcher calls
``_direct.dataReceived(data)`` itself, in the connection's context, without
the receiver's ``_deliver``. On that path the hub posts the connection alone
(not a ``(connection, item)`` pair) and the dispatcher reads it when its turn
comes (``os.read`` on the receiver's ``_fd``, ``_size`` bytes): each connection's
read, protocol code and write then run back to back, with its objects and its
data still in the CPU's caches, and one chunk of read data is alive at a time
instead of one per ready connection (bench/README.md, issue 21 section 14). A
read that fills its buffer or finds end of file goes to ``_read_more``; a
connection that left the plain state before its turn gets itself as the item
of ``_deliver``. The connection's context is entered by setting the
dispatcher greenlet's ``gr_context`` (greenlet switches the thread's context
with it), only when the receiver differs from the previous one: cheaper than a
``Context.run`` per message, and the same context for the protocol code.
"""

from __future__ import annotations

import collections
import contextvars
import threading
from os import read as _read
from typing import Any, Protocol

import gevent

from greenpoint._read_size import MIN_READ_SIZE, next_read_size

__all__ = ["Dispatcher", "Receiver", "dispatcher"]


class Receiver(Protocol):
    """What the dispatcher delivers to (a loop-dispatched connection)."""

    _holder: Any  # the greenlet this connection is held by, or None
    _held: collections.deque[Any] | None
    # The protocol whose dataReceived may be called straight away with posted
    # bytes, in _context; None when anything else must be looked at (_deliver).
    _direct: Any
    _context: contextvars.Context | None
    _fd: int  # read by the dispatcher on the short path, _size bytes at a time
    _size: int

    def _deliver(self, item: Any) -> None:
        """Run one posted item's protocol code; may block; raises only BaseException.

        ``item`` is the receiver itself for a readable event posted on the short
        path whose receiver has left it since."""

    def _read_more(self, data: bytes) -> None:
        """The dispatcher's read filled its buffer (``data``) or found end of file."""

    def _read_failed(self, exc: OSError) -> None:
        """The dispatcher's read raised ``exc`` (``EAGAIN`` included)."""

    def _killed(self, exc: BaseException) -> None:
        """End the connection: ``exc`` interrupted its protocol code."""

    def _fail(self, exc: Exception, callback: str) -> None:
        """``callback`` of the protocol raised ``exc``: log it, end the connection."""

    def _hold(self) -> None:
        """Stop reading: a greenlet blocked in this connection's code holds it."""

    def _release(self) -> None:
        """The holding greenlet is done: read again if the state says so."""


class Dispatcher:
    """The queue of posted items and the greenlet that delivers them (one per hub)."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._run_callback = hub.loop.run_callback
        # (receiver, item) pairs, and receivers alone: readable on the short path.
        self._queue: collections.deque[Any] = collections.deque()
        self._scheduled = False
        self._greenlet: Any = None  # the current dispatcher; None until needed
        self._busy: Any = None  # the connection whose item is being delivered
        # Open connections posting here: with none, the idle dispatcher ends (a
        # stopped server leaves no greenlet behind; the next batch makes one).
        self.connections = 0
        # While there are connections: a check watcher that runs _wake at the end
        # of every loop iteration, after the I/O callbacks (libev runs pending
        # watchers by priority; this one has the lowest). The connections' own
        # read watchers then post with a C call (the queue's append, the
        # connection as its argument) and schedule nothing themselves.
        self._check: Any = None

    def __repr__(self) -> str:
        return f"<Dispatcher {len(self._queue)} queued>"

    def add_connection(self) -> None:
        """A connection will post here (its read watcher may append to the queue)."""
        self.connections += 1
        if self._check is None:
            check = self._check = self.hub.loop.check(ref=False, priority=-2)
            check.start(self._wake)

    def remove_connection(self) -> None:
        """A connection has ended; with none left, stop waking at every iteration."""
        self.connections -= 1
        if not self.connections and self._check is not None:
            check, self._check = self._check, None
            check.close()

    def post(self, receiver: Any, item: Any) -> None:
        """Queue ``item`` for ``receiver``; delivered in this loop iteration or the next."""
        self._queue.append((receiver, item))
        if not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        """Have the hub switch into the dispatcher in this loop iteration."""
        self._scheduled = True
        self._run_callback(self._wake)

    def post_soon(self, receiver: Any, item: Any) -> None:
        """:meth:`post` after the loop's other callbacks (a turn for other connections)."""
        self._run_callback(self.post, receiver, item)

    # -- in the hub ---------------------------------------------------------------

    def _wake(self) -> None:
        # Runs in the hub. Never raises: an exception here would reach the hub's
        # error handler (and the callbacks queued behind it would wait a turn).
        self._scheduled = False
        queue = self._queue
        while queue:
            glet = self._greenlet
            if glet is None or glet.dead:
                glet = self._greenlet = gevent.Greenlet(self._serve)
            self._busy = None
            glet.switch()
            # Back in the hub: the dispatcher waits for the next batch, died, or
            # is blocked inside the protocol code of the connection it is busy with.
            busy = self._busy
            if busy is not None:
                self._busy = None
                self._greenlet = None
                if not glet.dead:
                    self._hand_over(busy, glet)

    def _hand_over(self, receiver: Any, glet: Any) -> None:
        """Leave ``glet`` (blocked in ``receiver``'s code) to ``receiver`` alone."""
        held: collections.deque[Any] = collections.deque()
        rest: collections.deque[Any] = collections.deque()
        for entry in self._queue:
            if entry.__class__ is not tuple:  # a connection posted as readable
                if entry is receiver:
                    held.append(entry)
                else:
                    rest.append(entry)
            elif entry[0] is receiver:
                held.append(entry[1])
            else:
                rest.append(entry)
        self._queue.clear()
        self._queue.extend(rest)
        receiver._holder = glet
        receiver._held = held
        try:
            receiver._hold()
        except Exception:  # pragma: no cover - _hold only stops a watcher
            pass

    # -- in the dispatcher greenlet ---------------------------------------------------

    def _serve(self) -> None:
        me = gevent.getcurrent()
        queue = self._queue
        popleft = queue.popleft
        switch = self.hub.switch
        # Whose context this greenlet is in: set (gr_context) for short-path
        # deliveries only; _deliver's Context.run restores it on return.
        owner: Any = None
        entry: Any
        receiver: Any
        item: Any
        data: Any
        while True:
            while queue:
                entry = popleft()
                if entry.__class__ is not tuple:
                    # A connection whose read watcher fired on the short path: read
                    # it now and hand the data over (see the module's docstring).
                    receiver = entry
                    protocol = receiver._direct
                    if protocol is None:  # it left the plain state meanwhile
                        item = receiver
                    else:
                        self._busy = receiver
                        if receiver is not owner:
                            owner = receiver
                            me.gr_context = receiver._context
                        size = receiver._size
                        try:
                            data = _read(receiver._fd, size)
                        except OSError as exc:
                            receiver._read_failed(exc)
                            continue
                        try:
                            if 0 < len(data) < size:
                                if size != MIN_READ_SIZE:
                                    receiver._size = next_read_size(size, len(data))
                                protocol.dataReceived(data)
                            else:  # filled the buffer, or end of file
                                receiver._read_more(data)
                                data = None  # one chunk alive at a time (_read_on)
                        except Exception as exc:
                            receiver._fail(exc, "dataReceived")
                        except BaseException as exc:
                            receiver._killed(exc)
                            raise
                        if self._greenlet is not me:
                            self._run_held(receiver)
                            return
                        continue
                else:
                    receiver, item = entry
                    protocol = receiver._direct
                if protocol is not None and item.__class__ is bytes:
                    # The short path (see the module's docstring).
                    self._busy = receiver
                    if receiver is not owner:
                        owner = receiver
                        me.gr_context = receiver._context
                    try:
                        protocol.dataReceived(item)
                    except Exception as exc:
                        receiver._fail(exc, "dataReceived")
                    except BaseException as exc:
                        receiver._killed(exc)
                        raise
                else:
                    if receiver._holder is not None:
                        receiver._held.append(item)  # its blocked call has not returned
                        continue
                    self._busy = receiver
                    try:
                        receiver._deliver(item)
                    except BaseException as exc:
                        receiver._killed(exc)
                        raise
                if self._greenlet is not me:
                    # We blocked in there and were left to this connection.
                    self._run_held(receiver)
                    return
            # Hold no connection (or data) while idle.
            self._busy = receiver = item = protocol = entry = data = None
            if owner is not None and owner._context is None:
                # Its connection has closed: do not keep it (its context refers
                # to it) alive while idle.
                owner = me.gr_context = None
            if not self.connections:
                self._greenlet = None
                return
            switch()  # until _wake has a new batch

    @staticmethod
    def _run_held(receiver: Any) -> None:
        """In a greenlet left to ``receiver``: deliver what waited, then let go."""
        held = receiver._held
        try:
            while held:
                item = held.popleft()
                try:
                    receiver._deliver(item)
                except BaseException as exc:
                    receiver._killed(exc)
                    raise
        finally:
            receiver._holder = None
            receiver._held = None
        receiver._release()


_local = threading.local()


def dispatcher() -> Dispatcher:
    """The dispatcher of the current thread's hub (made on first use)."""
    hub = gevent.get_hub()
    found: Dispatcher | None = getattr(_local, "dispatcher", None)
    if found is None or found.hub is not hub:
        found = _local.dispatcher = Dispatcher(hub)
    return found
