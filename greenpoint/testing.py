"""Fakes for testing code that connects: a clock, a resolver and a network.

They plug into the seams of :class:`~greenpoint.HostnameEndpoint` (and
``greenpoint._happy_eyeballs.open_tcp_connection``): ``clock=``, ``resolver=`` and
``connector=``. With all three, a happy-eyeballs race runs in virtual time, with no
sockets and no waiting, and the times it reports are exact::

    clock = FakeClock()
    resolver = FakeResolver(clock)
    resolver.add("example.test", AF_INET6, ["2001:db8::1"])
    resolver.add("example.test", AF_INET, ["192.0.2.1"], delay=0.01)
    network = FakeNetwork(clock)
    network.add("2001:db8::1", "blackhole")
    network.add("192.0.2.1", "accept", delay=0.02)
    endpoint = HostnameEndpoint("example.test", 80, resolver=resolver,
                                clock=clock, connector=network.connect)
    stream, info = endpoint.open_with_info()
    assert info.winner.host == "192.0.2.1" and clock.now() == 0.27

:class:`FakeClock` jumps ahead by itself: whenever every greenlet is blocked
(``gevent.idle()``), it moves to the earliest pending ``sleep`` and wakes it, as
trio's ``MockClock(autojump_threshold=0)`` does. Only sleeps made through the clock
move with it; real I/O and ``gevent.sleep`` do not.

For protocols: :class:`StringTransport` and :class:`ManualClock` (Twisted's
``StringTransport`` and ``task.Clock``) test one with no connection at all, and
``memory:NAME`` descriptions (:mod:`greenpoint.endpoints.memory`) connect in-process
with fault injection, in the description or from the test (:func:`memory_faults`).
"""

from __future__ import annotations

import dataclasses
import errno
import heapq
import itertools
import socket
from collections.abc import Iterable
from typing import Any

import gevent
import gevent.event

from greenpoint._address import from_sockaddr
from greenpoint._clock import MONOTONIC
from greenpoint._hostnames import parse_ip_literal
from greenpoint._string_transport import ManualClock, StringTransport
from greenpoint.endpoints.memory import memory_faults
from greenpoint.errors import ConnectError, ConnectRefusedError, ConnectTimeoutError

__all__ = [
    "FakeAttempt",
    "FakeClock",
    "FakeNetwork",
    "FakeResolver",
    "FakeSocket",
    "ManualClock",
    "StringTransport",
    "memory_faults",
]


class FakeClock:
    """A virtual clock with ``now()`` and ``sleep()``; time passes only when asked.

    With ``autojump=True`` (the default) time jumps to the next sleeper whenever the
    gevent loop is idle. With ``autojump=False`` it moves only by :meth:`advance`.
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = True) -> None:
        self._now = float(start)
        self._autojump = autojump
        self._sleepers: list[tuple[float, int, gevent.event.Event]] = []
        self._order = itertools.count()
        self._driver: gevent.Greenlet | None = None

    def now(self) -> float:
        """The current virtual time, in seconds."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Block the calling greenlet until the clock has moved ``seconds`` ahead."""
        if seconds <= 0:
            gevent.sleep(0)
            return
        wake = gevent.event.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), wake))
        if self._autojump and (self._driver is None or self._driver.dead):
            self._driver = gevent.spawn(self._jump_while_idle)
        try:
            wake.wait()
        finally:
            if not wake.is_set():  # killed while asleep: forget this sleeper
                self._sleepers = [entry for entry in self._sleepers if entry[2] is not wake]
                heapq.heapify(self._sleepers)

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` ahead and wake every sleeper that is due."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._move_to(self._now + seconds)

    def _move_to(self, when: float) -> None:
        self._now = max(self._now, when)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            heapq.heappop(self._sleepers)[2].set()

    def _jump_while_idle(self) -> None:
        while self._sleepers:
            gevent.idle()
            if self._sleepers:
                self._move_to(self._sleepers[0][0])


@dataclasses.dataclass
class FakeSocket:
    """What :class:`FakeNetwork` connects: knows its peer and whether it was closed."""

    family: int
    peer: Any
    bind_address: Any = None
    closed: bool = False

    def getpeername(self) -> Any:
        return self.peer

    def close(self) -> None:
        self.closed = True


@dataclasses.dataclass(frozen=True)
class FakeAttempt:
    """One connect the fake network saw: when, to where, bound to what."""

    time: float
    family: int
    host: str
    port: int
    bind_address: Any


_OUTCOMES = ("accept", "refuse", "blackhole", "unreachable")


class FakeNetwork:
    """A scripted network: each host answers a connect with a set outcome after a delay.

    Outcomes: ``"accept"`` (a :class:`FakeSocket`), ``"refuse"``
    (``ConnectRefusedError``), ``"unreachable"`` (``ConnectError``, ``ENETUNREACH``),
    ``"blackhole"`` (no answer: waits out the connect's own ``timeout``, or forever),
    or any exception instance, raised as is. A host that was never added is
    unreachable at once. ``connect`` has the signature of the racer's connect seam.
    Delays are measured on ``clock`` (the real clock when none is given).
    """

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock or MONOTONIC
        self._routes: dict[str, tuple[Any, float]] = {}
        self.attempts: list[FakeAttempt] = []
        self.sockets: list[FakeSocket] = []

    def add(self, host: str, outcome: Any = "accept", *, delay: float = 0.0) -> None:
        """Make connects to ``host`` (any port) end with ``outcome`` after ``delay`` s."""
        if isinstance(outcome, str) and outcome not in _OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(_OUTCOMES)} or an exception")
        self._routes[_canonical(host)] = (outcome, delay)

    def connect(
        self,
        family: int,
        sockaddr: Any,
        *,
        timeout: float | None = None,
        bind_address: Any = None,
        nodelay: bool = True,
    ) -> FakeSocket:
        """Connect to ``sockaddr`` on the fake network (blocks in virtual time)."""
        host, port = sockaddr[0], sockaddr[1]
        self.attempts.append(FakeAttempt(self.clock.now(), family, host, port, bind_address))
        address = from_sockaddr(family, sockaddr)
        outcome, delay = self._routes.get(_canonical(host), ("unreachable", 0.0))
        if outcome == "blackhole":
            if timeout is None:
                gevent.event.Event().wait()  # until killed
            self.clock.sleep(timeout)
            raise ConnectTimeoutError(f"timed out connecting to {address}", address=address)
        self.clock.sleep(delay)
        if outcome == "accept":
            sock = FakeSocket(family, tuple(sockaddr), bind_address)
            self.sockets.append(sock)
            return sock
        if outcome == "refuse":
            raise ConnectRefusedError(
                f"connection refused by {address}: Connection refused",
                address=address,
                errno=errno.ECONNREFUSED,
            )
        if outcome == "unreachable":
            raise ConnectError(
                f"cannot connect to {address}: Network is unreachable",
                address=address,
                errno=errno.ENETUNREACH,
            )
        raise outcome

    def open_sockets(self) -> list[FakeSocket]:
        """Every socket this network connected that nobody has closed yet."""
        return [sock for sock in self.sockets if not sock.closed]


def _canonical(host: str) -> str:
    parsed = parse_ip_literal(host, 0)
    return parsed[1][0] if parsed is not None else host


_EAI_NODATA = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)


class FakeResolver:
    """A scripted ``getaddrinfo``: answers per (name, family), after a virtual delay.

    Call :meth:`add` for each name and family; a family with no answer for a known
    name gets "No address associated with hostname", an unknown name "Name or service
    not known", as glibc says. ``calls`` records ``(time, host, family)``. Delays are
    measured on ``clock`` (the real clock when none is given), so it also serves as a
    static resolver for real loopback tests.
    """

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock or MONOTONIC
        self._answers: dict[tuple[str, int], tuple[list[Any], float, Any]] = {}
        self.calls: list[tuple[float, str, int]] = []

    def add(
        self,
        host: str,
        family: int,
        addresses: Iterable[str | tuple[str, int]] = (),
        *,
        delay: float = 0.0,
        error: BaseException | str | None = None,
    ) -> None:
        """Answer lookups of ``host`` for ``family`` with ``addresses`` (or ``error``).

        An address is an IP string (the port is the one asked for) or ``(ip, port)``
        to answer with a port of its own, as a real server's loopback tests need.
        """
        if isinstance(error, str):
            error = socket.gaierror(socket.EAI_NONAME, error)
        self._answers[(host, family)] = (list(addresses), delay, error)

    def __call__(
        self,
        host: str,
        port: int,
        family: int = 0,
        type: int = 0,  # noqa: A002 - getaddrinfo's own parameter name
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        self.calls.append((self.clock.now(), host, family))
        families = [family] if family else [socket.AF_INET6, socket.AF_INET]
        known = [key for key in self._answers if key[0] == host]
        if not known:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        results: list[tuple[Any, ...]] = []
        delay = 0.0
        for wanted in families:
            addresses, family_delay, error = self._answers.get((host, wanted), ([], 0.0, None))
            delay = max(delay, family_delay)
            if error is not None and family:
                self.clock.sleep(family_delay)
                raise error
            for address in addresses:
                ip, ip_port = address if isinstance(address, tuple) else (address, port)
                sockaddr = (ip, ip_port) if wanted == socket.AF_INET else (ip, ip_port, 0, 0)
                results.append((wanted, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        self.clock.sleep(delay)
        if not results:
            raise socket.gaierror(_EAI_NODATA, "No address associated with hostname")
        return results
