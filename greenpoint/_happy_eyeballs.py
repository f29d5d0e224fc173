"""Connect to a host name quickly when one address family is broken (RFC 8305).

:func:`open_tcp_connection` resolves AAAA and A at the same time, starts connecting
as soon as a usable answer is in, starts a new attempt every ``attempt_delay`` (or at
once when one fails), keeps the first connection that succeeds and closes every
other socket, on every path. One deadline covers all of it.

The racer is one coordinator running in the caller's greenlet, fed by a queue of
events from short-lived child greenlets (two lookups, one per attempt, one alarm).
Only the coordinator decides anything, so there are no locks and no races between
"A won" and "B won": the first ``connected`` event it reads wins.

Time, names and sockets go through three seams, so that tests (ours and users', see
:mod:`greenpoint.testing`) can run the race on a fake clock against a scripted
network with exact virtual times:

* ``clock`` — a :class:`greenpoint._clock.Clock`: ``now()`` and ``sleep(seconds)``;
* ``resolver`` — ``getaddrinfo``'s signature; called once per family with
  ``family=`` set;
* ``connect`` — ``connect(family, sockaddr, *, timeout, bind_address)`` returning a
  connected socket (``greenpoint._socket.connect_address`` by default).
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

import gevent
import gevent.queue

from greenpoint._address import HostnameAddress, IPv4Address, IPv6Address, from_sockaddr
from greenpoint._clock import MONOTONIC, Clock
from greenpoint._defaults import DEFAULT_TIMEOUT
from greenpoint._hostnames import BindAddress, encode_hostname, family_name, parse_ip_literal
from greenpoint._interleave import (
    DEFAULT_ATTEMPT_DELAY,
    MAX_ADDRESSES,
    RESOLUTION_DELAY,
    AddressQueue,
    clamp_attempt_delay,
)
from greenpoint._socket import connect_address
from greenpoint.errors import (
    Attempt,
    ConnectCancelledError,
    ConnectError,
    ConnectRefusedError,
    ConnectTimeoutError,
    DNSLookupError,
)

__all__ = [
    "BOTH_FAMILIES",
    "ConnectInfo",
    "DNSQuery",
    "LiteralRoute",
    "Resolution",
    "connect_literal",
    "literal_route",
    "open_tcp_connection",
    "open_tcp_connection_to_any",
]

logger = logging.getLogger("greenpoint.happy_eyeballs")

# RFC 8305 §3: query AAAA first, then A; IPv6 is preferred when both are known.
BOTH_FAMILIES = (socket.AF_INET6, socket.AF_INET)
_IPAddress = IPv4Address | IPv6Address  # what from_sockaddr gives for AF_INET/AF_INET6


@dataclasses.dataclass(frozen=True)
class DNSQuery:
    """One lookup the racer made: a name and a record type (``AAAA`` or ``A``)."""

    hostname: str
    family: int

    @property
    def record_type(self) -> str:
        return "AAAA" if self.family == socket.AF_INET6 else "A"

    def __str__(self) -> str:
        return f"{self.hostname} ({self.record_type})"


@dataclasses.dataclass(frozen=True)
class Resolution:
    """How one lookup ended: the addresses it gave, or its error, and when."""

    query: DNSQuery
    addresses: tuple[IPv4Address | IPv6Address, ...] = ()
    error: BaseException | None = None
    started: float = 0.0
    elapsed: float = 0.0

    def describe(self) -> str:
        if self.error is not None:
            outcome = f"{type(self.error).__name__}: {self.error}"
        elif self.addresses:
            outcome = ", ".join(str(address.host) for address in self.addresses)
        else:
            outcome = "no addresses"
        return f"{self.query} -> {outcome} (took {self.elapsed * 1000:.0f} ms)"


@dataclasses.dataclass(frozen=True)
class ConnectInfo:
    """How a connection was made: for logging why a connect was slow.

    ``attempts`` lists every connection attempt in the order they started, as
    :class:`~greenpoint.errors.Attempt` values (the winner has ``error=None``;
    attempts still running when another won have a ``ConnectCancelledError``);
    ``resolutions`` the lookups (empty for an IP literal). Times are seconds from
    the start of the connect.
    """

    address: HostnameAddress
    winner: IPv4Address | IPv6Address
    attempts: tuple[Attempt, ...]
    resolutions: tuple[Resolution, ...]
    elapsed: float

    def describe(self) -> str:
        """A few lines for a log: the lookups, then each attempt."""
        lines = [f"connected to {self.address} via {self.winner} in {self.elapsed * 1000:.0f} ms"]
        lines += ["  lookup " + resolution.describe() for resolution in self.resolutions]
        lines += ["  attempt " + attempt.describe() for attempt in self.attempts]
        return "\n".join(lines)


def open_tcp_connection(
    host: str | bytes,
    port: int,
    *,
    families: Sequence[int] = BOTH_FAMILIES,
    timeout: float | None = DEFAULT_TIMEOUT,
    bind_address: Any = None,
    attempt_delay: float = DEFAULT_ATTEMPT_DELAY,
    resolver: Callable[..., Any] | None = None,
    max_addresses: int = MAX_ADDRESSES,
    clock: Clock | None = None,
    connect: Callable[..., Any] | None = None,
) -> tuple[Any, ConnectInfo]:
    """Connect to ``host``:``port`` over any of ``families``; return ``(socket, info)``.

    Blocks only the calling greenlet. An IP literal is connected to directly; a name
    is resolved (one lookup per family, concurrently) and its addresses raced as
    RFC 8305 says. ``timeout`` (``None``: no limit) is one deadline for all of it.

    A ``gevent.Timeout`` or ``kill()`` delivered to the caller stops every lookup and
    attempt and closes every socket before it propagates.

    Raises:
        DNSLookupError: the name is invalid or no lookup gave an address (the
            resolver's own message is kept).
        ConnectTimeoutError: the deadline passed; ``.attempts`` says what was running.
        ConnectRefusedError: every address refused.
        ConnectError: every address failed; ``.attempts`` lists each one.
    """
    if families is not BOTH_FAMILIES:
        families = tuple(families)
        if not families or not set(families) <= set(BOTH_FAMILIES):
            raise ValueError(f"families must be AF_INET6 and/or AF_INET, not {families!r}")
    clock = clock or MONOTONIC
    connect = connect or connect_address
    target = HostnameAddress(_display_host(host), port)
    binds = _bind_sockaddrs(bind_address, families, target)
    literal = _literal_sockaddr(host, port, target)
    if literal is not None:
        return _connect_literal(target, literal, families, timeout, binds, clock, connect)
    try:
        name = encode_hostname(host)
    except ValueError as exc:
        raise DNSLookupError(str(exc), address=target) from exc
    race = _Race(
        target=target,
        name=name,
        families=families,
        timeout=timeout,
        binds=binds,
        attempt_delay=clamp_attempt_delay(attempt_delay),
        resolver=resolver or gevent.get_hub().resolver.getaddrinfo,
        max_addresses=max_addresses,
        clock=clock,
        connect=connect,
    )
    sock, info = race.run()
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", info.describe())
    return sock, info


def open_tcp_connection_to_any(
    hosts: Sequence[tuple[str, int]],
    *,
    families: Sequence[int] = BOTH_FAMILIES,
    timeout: float | None = DEFAULT_TIMEOUT,
    bind_address: Any = None,
    attempt_delay: float = DEFAULT_ATTEMPT_DELAY,
    resolver: Callable[..., Any] | None = None,
    max_addresses: int = MAX_ADDRESSES,
    clock: Clock | None = None,
    connect: Callable[..., Any] | None = None,
) -> tuple[Any, ConnectInfo]:
    """Connect to whichever of several ``(host, port)`` answers first: one race.

    Every name is looked up at once (AAAA and A each); IP literals are candidates
    from the start. All addresses join one RFC 8305 queue (families interleaved,
    IPv6 first; within a family, in the order the answers arrive, a literal first)
    and are raced as for one name: a new attempt every ``attempt_delay`` or at once
    when one fails, one deadline for everything, the losers closed. ``info`` and
    the errors list every lookup and attempt, each naming its host.

    Raises:
        The same as :func:`open_tcp_connection`; ``DNSLookupError`` only when no
        host gave an address.
    """
    hosts = [(str(host), int(port)) for host, port in hosts]
    if not hosts:
        raise ValueError("give at least one (host, port)")
    if families is not BOTH_FAMILIES:
        families = tuple(families)
    ports = {port for _, port in hosts}
    shown = ",".join(host if len(ports) == 1 else f"{host}:{port}" for host, port in hosts)
    target = HostnameAddress(shown, hosts[0][1] if len(ports) == 1 else 0)
    queries: list[tuple[str, int]] = []
    literals: list[tuple[int, Any]] = []
    for host, port in hosts:
        try:
            literal = parse_ip_literal(host, port)
            if literal is None:
                queries.append((encode_hostname(host), port))
            elif literal[0] in families:
                literals.append(literal)
        except ValueError as exc:
            raise DNSLookupError(str(exc), address=target) from exc
    if not queries and not literals:
        allowed = " or ".join(family_name(family) for family in families)
        raise ConnectError(f"cannot connect to {target}: no {allowed} address", address=target)
    race = _Race(
        target=target,
        name=queries[0][0] if queries else shown,
        families=tuple(families),
        timeout=timeout,
        binds=_bind_sockaddrs(bind_address, families, target),
        attempt_delay=clamp_attempt_delay(attempt_delay),
        resolver=resolver or gevent.get_hub().resolver.getaddrinfo,
        max_addresses=max_addresses,
        clock=clock or MONOTONIC,
        connect=connect or connect_address,
        queries=queries,
        literals=literals,
    )
    sock, info = race.run()
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", info.describe())
    return sock, info


def _bind_sockaddrs(
    bind_address: Any, families: Sequence[int], target: HostnameAddress
) -> dict[int, tuple[Any, ...]]:
    """What each family's attempts bind to (a family left out binds nothing).

    Raises:
        ValueError: ``bind_address`` is not one (``BindAddress.parse``).
        ConnectError: its IPv6 zone names no interface of this machine.
    """
    bind = BindAddress.parse(bind_address)
    if bind is None:
        return {}
    try:
        sockaddrs = {family: bind.for_family(family) for family in families}
    except ValueError as exc:
        raise ConnectError(
            f"cannot connect to {target}: bad bind address: {exc}", address=target
        ) from exc
    return {family: sockaddr for family, sockaddr in sockaddrs.items() if sockaddr is not None}


@dataclasses.dataclass(frozen=True)
class LiteralRoute:
    """What :func:`open_tcp_connection` works out before it connects to an IP literal.

    ``target`` is the address errors name, ``bind`` the sockaddr to bind (or
    ``None``). ``stable`` is false when an IPv6 zone was looked up (the host's or
    the bind address's): the interface may come or go, so it is looked up again.
    """

    target: HostnameAddress
    family: int
    sockaddr: tuple[Any, ...]
    bind: tuple[Any, ...] | None
    stable: bool


def literal_route(host: str | bytes, port: int, bind_address: Any) -> LiteralRoute | None:
    """The route to ``host`` if it is an IP literal (either family), else ``None``.

    Checks what :func:`open_tcp_connection` checks, in its order, so that an endpoint
    may work this out once and connect with :func:`connect_literal` on each open.

    Raises:
        ValueError, ConnectError, DNSLookupError: as :func:`open_tcp_connection`.
    """
    target = HostnameAddress(_display_host(host), port)
    binds = _bind_sockaddrs(bind_address, BOTH_FAMILIES, target)
    literal = _literal_sockaddr(host, port, target)
    if literal is None:
        return None
    family, sockaddr = literal
    bind = BindAddress.parse(bind_address)
    zoned = "%" in target.hostname or (bind is not None and "%" in (bind.ipv6 or ""))
    return LiteralRoute(target, family, sockaddr, binds.get(family), stable=not zoned)


def _literal_sockaddr(
    host: str | bytes, port: int, target: HostnameAddress
) -> tuple[int, tuple[Any, ...]] | None:
    try:
        return parse_ip_literal(host, port) if isinstance(host, str) else None
    except ValueError as exc:
        raise DNSLookupError(str(exc), address=target) from exc


def _display_host(host: str | bytes) -> str:
    if isinstance(host, bytes | bytearray):
        return bytes(host).decode("ascii", "backslashreplace")
    return host


def _connect_literal(
    target: HostnameAddress,
    literal: tuple[int, tuple[Any, ...]],
    families: Sequence[int],
    timeout: float | None,
    binds: dict[int, tuple[Any, ...]],
    clock: Clock,
    connect: Callable[..., Any],
) -> tuple[Any, ConnectInfo]:
    """An IP literal of one of ``families``: see :func:`connect_literal`."""
    family, sockaddr = literal
    if family not in families:
        allowed = " or ".join(family_name(f) for f in families)
        raise ConnectError(
            f"cannot connect to {from_sockaddr(family, sockaddr)}: it is an "
            f"{family_name(family)} address and only {allowed} is allowed here",
            address=target,
        )
    start = clock.now()
    sock = connect_literal(
        target,
        family,
        sockaddr,
        timeout=timeout,
        bind_address=binds.get(family),
        connect=connect,
        clock=clock,
    )
    elapsed = clock.now() - start
    address = cast(_IPAddress, from_sockaddr(family, sockaddr))  # an IP literal's
    attempt = Attempt(address, "connect", None, 0.0, elapsed)
    return sock, ConnectInfo(target, address, (attempt,), (), elapsed)


def connect_literal(
    target: Any,
    family: int,
    sockaddr: tuple[Any, ...],
    *,
    timeout: float | None,
    bind_address: tuple[Any, ...] | None = None,
    connect: Callable[..., Any] | None = None,
    clock: Clock | None = None,
) -> Any:
    """Connect to an IP literal's ``sockaddr``: one attempt, in the caller's greenlet.

    No resolver, no racing. The one way to reach a literal, for
    :func:`open_tcp_connection` and the TCP endpoints alike, so a failure is the same
    from both: ``connect``'s own error, with ``address`` set to ``target`` (what the
    caller asked for; ``None``: the literal's own address) and ``.attempts`` holding
    the attempt. Success costs nothing more than ``connect`` (the TCP endpoints' hot
    path): the attempt is written down only for an error.
    """
    now = (clock or MONOTONIC).now
    start = now()
    try:
        return (connect or connect_address)(
            family, sockaddr, timeout=timeout, bind_address=bind_address
        )
    except ConnectError as exc:
        address = from_sockaddr(family, sockaddr)
        attempt = Attempt(address, "connect", exc, 0.0, now() - start)
        asked = address if target is None else target
        raise type(exc)(exc.message, address=asked, attempts=(attempt,), errno=exc.errno) from exc


# Events the children put on the coordinator's queue.
_RESOLVED = "resolved"
_CONNECTED = "connected"
_FAILED = "failed"
_ALARM = "alarm"


@dataclasses.dataclass
class _Running:
    address: IPv4Address | IPv6Address
    started: float


class _Race:
    """One happy-eyeballs connect; ``run()`` once, in the caller's greenlet."""

    def __init__(
        self,
        *,
        target: HostnameAddress,
        name: str,
        families: tuple[int, ...],
        timeout: float | None,
        binds: dict[int, tuple[Any, ...]],
        attempt_delay: float,
        resolver: Callable[..., Any],
        max_addresses: int,
        clock: Clock,
        connect: Callable[..., Any],
        queries: Sequence[tuple[str, int]] | None = None,
        literals: Sequence[tuple[int, Any]] = (),
    ) -> None:
        self.target = target
        self.name = name
        # Several hosts (open_tcp_connection_to_any): each name's lookups and the IP
        # literals given feed one address queue and one race.
        self.queries = ((name, target.port),) if queries is None else tuple(queries)
        self.literals = tuple(literals)
        self.families = families
        self.timeout = timeout
        self.binds = binds
        self.attempt_delay = attempt_delay
        self.resolver = resolver
        self.clock = clock
        self.connect = connect
        self.events: gevent.queue.Queue = gevent.queue.Queue()
        self.addresses = AddressQueue(max_addresses)
        # (name, port, family) -> when its lookup started
        self.unanswered: dict[tuple[str, int, int], float] = {}
        self.resolutions: list[Resolution] = []
        self.running: dict[gevent.Greenlet, _Running] = {}
        self.finished: list[Attempt] = []
        self.children: set[gevent.Greenlet] = set()
        self.attempt_greenlets: list[gevent.Greenlet] = []
        self.alarm: gevent.Greenlet | None = None
        self.alarm_at: float | None = None
        self.start = 0.0

    # -- the coordinator ------------------------------------------------------

    def run(self) -> tuple[Any, ConnectInfo]:
        self.start = self.clock.now()
        winner: tuple[Any, ConnectInfo] | None = None
        try:
            winner = self._race()
        finally:
            try:
                self._stop_children(winner)
            except BaseException:
                if winner is not None:
                    winner[0].close()
                raise
        return winner

    def _race(self) -> tuple[Any, ConnectInfo]:
        deadline = None if self.timeout is None else self.start + self.timeout
        for family, sockaddr in self.literals:
            self.addresses.add(family, [sockaddr])
        for name, port in self.queries:
            for family in self.families:
                self.unanswered[(name, port, family)] = self.clock.now() - self.start
                self._spawn(self._resolve, (name, port, family))
        started = False  # have attempts begun?
        resolution_wait_until: float | None = None
        next_attempt_at = 0.0
        while True:
            now = self.clock.now()
            if deadline is not None and now >= deadline:
                raise self._timed_out(now)
            if not started and self.addresses:
                if any(key[2] == socket.AF_INET6 for key in self.unanswered):
                    # RFC 8305 §3: A answered before AAAA; give AAAA the Resolution
                    # Delay to arrive so that IPv6 keeps its preference.
                    if resolution_wait_until is None:
                        resolution_wait_until = now + RESOLUTION_DELAY
                    started = now >= resolution_wait_until
                else:
                    started = True
            if started and self.addresses and now >= next_attempt_at:
                self._start_attempt(now)
                next_attempt_at = now + self.attempt_delay
                continue
            if not self.running and not self.addresses and not self.unanswered:
                raise self._all_failed()
            wake_at = _earliest(
                deadline,
                resolution_wait_until if not started else None,
                next_attempt_at if started and self.addresses else None,
            )
            kind, *details = self._next_event(wake_at)
            now = self.clock.now()
            if kind == _RESOLVED:
                self._record_resolution(now, *details)
            elif kind == _CONNECTED:
                greenlet, sock = details
                return sock, self._info(now, greenlet)
            elif kind == _FAILED:
                greenlet, error = details
                running = self.running.pop(greenlet)
                took = now - self.start - running.started
                self.finished.append(
                    Attempt(running.address, "connect", error, running.started, took)
                )
                # RFC 8305 §5: a failed attempt starts the next one at once.
                next_attempt_at = now

    def _next_event(self, wake_at: float | None) -> tuple[Any, ...]:
        if wake_at != self.alarm_at:
            self._disarm()
            if wake_at is not None:
                self.alarm_at = wake_at
                self.alarm = self._spawn(self._ring_at, wake_at)
        event: tuple[Any, ...] = self.events.get()
        if event[0] == _ALARM and event[1] is self.alarm:
            self.alarm, self.alarm_at = None, None
        return event

    def _disarm(self) -> None:
        if self.alarm is not None:
            self.alarm.kill(block=False)
            self.children.discard(self.alarm)
        self.alarm, self.alarm_at = None, None

    def _record_resolution(
        self, now: float, key: tuple[str, int, int], result: Any, error: Any
    ) -> None:
        started = self.unanswered.pop(key)
        name, _port, family = key
        addresses: list[Any] = []
        if error is None:
            addresses = _sockaddrs(result, family)
            self.addresses.add(family, addresses)
        self.resolutions.append(
            Resolution(
                DNSQuery(name, family),
                tuple(cast(_IPAddress, from_sockaddr(family, sockaddr)) for sockaddr in addresses),
                error,
                started,
                now - self.start - started,
            )
        )

    def _start_attempt(self, now: float) -> None:
        # Called only when an address is waiting, so pop() gives one.
        family, sockaddr = cast("tuple[int, Any]", self.addresses.pop())
        greenlet = self._spawn(self._attempt, family, sockaddr)
        self.attempt_greenlets.append(greenlet)
        address = cast(_IPAddress, from_sockaddr(family, sockaddr))
        self.running[greenlet] = _Running(address, now - self.start)

    # -- children -------------------------------------------------------------

    def _spawn(self, function: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        greenlet = gevent.spawn(function, *args)
        self.children.add(greenlet)
        return greenlet

    def _resolve(self, key: tuple[str, int, int]) -> None:
        name, port, family = key
        try:
            result = self.resolver(name, port, family=family)
        except Exception as exc:  # the resolver's own error is what the user must see
            self.events.put((_RESOLVED, key, None, exc))
        else:
            self.events.put((_RESOLVED, key, result, None))

    def _attempt(self, family: int, sockaddr: Any) -> Any:
        # No per-attempt timeout: the coordinator's deadline covers every attempt.
        bind = self.binds.get(family)
        try:
            sock = self.connect(family, sockaddr, timeout=None, bind_address=bind)
        except Exception as exc:
            self.events.put((_FAILED, gevent.getcurrent(), exc))
            return None
        # Queue.put never switches greenlets, so no kill can land between connect()
        # returning and the coordinator (or _stop_children) learning of the socket.
        self.events.put((_CONNECTED, gevent.getcurrent(), sock))
        return sock

    def _ring_at(self, when: float) -> None:
        self.clock.sleep(max(0.0, when - self.clock.now()))
        self.events.put((_ALARM, gevent.getcurrent()))

    def _stop_children(self, winner: tuple[Any, ConnectInfo] | None) -> None:
        """Kill every child, then close every socket an attempt made, but the winner's."""
        gevent.killall(list(self.children), block=True)
        keep = winner[0] if winner is not None else None
        for greenlet in self.attempt_greenlets:
            # A killed attempt's value is its GreenletExit; a failed one's is None.
            sock = greenlet.value
            if sock is not None and sock is not keep and not isinstance(sock, BaseException):
                sock.close()

    # -- outcomes -------------------------------------------------------------

    def _info(self, now: float, winner: gevent.Greenlet) -> ConnectInfo:
        elapsed = now - self.start
        attempts = list(self.finished)
        winning = self.running.pop(winner)
        attempts.append(
            Attempt(winning.address, "connect", None, winning.started, elapsed - winning.started)
        )
        for running in self.running.values():
            cancelled = ConnectCancelledError(
                f"cancelled: {winning.address} connected first", address=running.address
            )
            attempts.append(
                Attempt(
                    running.address,
                    "connect",
                    cancelled,
                    running.started,
                    elapsed - running.started,
                )
            )
        attempts.sort(key=lambda attempt: attempt.started)
        return ConnectInfo(
            self.target, winning.address, tuple(attempts), tuple(self.resolutions), elapsed
        )

    def _failed_lookups(self) -> list[Attempt]:
        return [
            Attempt(r.query, "resolve", r.error or _no_addresses(r.query), r.started, r.elapsed)
            for r in self.resolutions
            if r.error is not None or not r.addresses
        ]

    def _all_failed(self) -> ConnectError:
        lookups = self._failed_lookups()
        attempts = sorted(lookups + self.finished, key=lambda attempt: attempt.started)
        if not self.finished:
            return DNSLookupError(
                f"cannot resolve {self.target.hostname!r}: {_lookup_reasons(lookups)}",
                address=self.target,
                attempts=attempts,
            )
        errors = [attempt.error for attempt in self.finished]
        if len(self.finished) == 1:
            summary = f"{self.finished[0].address}: {_reason(errors[0])}"
        else:
            summary = f"all {len(self.finished)} addresses failed"
        message = f"cannot connect to {self.target}: {summary}"
        if all(isinstance(error, ConnectionRefusedError) for error in errors):
            return ConnectRefusedError(
                message, address=self.target, attempts=attempts, errno=_errno.ECONNREFUSED
            )
        return ConnectError(message, address=self.target, attempts=attempts)

    def _timed_out(self, now: float) -> ConnectTimeoutError:
        elapsed = now - self.start
        attempts = self._failed_lookups() + list(self.finished)
        for (name, _port, family), started in self.unanswered.items():
            query = DNSQuery(name, family)
            error = ConnectTimeoutError(f"no answer within {self.timeout:g} s", address=query)
            attempts.append(Attempt(query, "resolve", error, started, elapsed - started))
        for running in self.running.values():
            error = ConnectTimeoutError(
                f"still connecting after {self.timeout:g} s", address=running.address
            )
            attempts.append(
                Attempt(
                    running.address, "connect", error, running.started, elapsed - running.started
                )
            )
        attempts.sort(key=lambda attempt: attempt.started)
        tried = len(self.finished) + len(self.running)
        if tried:
            doing = (
                f"connecting to {self.target} ({tried} address{'es' if tried > 1 else ''} tried)"
            )
        else:
            doing = f"resolving {self.target.hostname!r}"
        return ConnectTimeoutError(
            f"timed out after {self.timeout:g} s {doing}",
            address=self.target,
            attempts=attempts,
            errno=_errno.ETIMEDOUT,
        )


def _earliest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _sockaddrs(result: Any, family: int) -> list[Any]:
    """The stream sockaddrs of ``family`` in a ``getaddrinfo`` result, in order."""
    found = []
    for entry in result or ():
        entry_family, entry_type = entry[0], entry[1]
        if entry_family == family and entry_type in (socket.SOCK_STREAM, 0):
            found.append(entry[4])
    return found


def _no_addresses(query: DNSQuery) -> DNSLookupError:
    return DNSLookupError(f"no {query.record_type} records for {query.hostname!r}", address=query)


def _reason(error: BaseException | None) -> str:
    if isinstance(error, ConnectError):
        return error.message
    return f"{type(error).__name__}: {error}"


def _lookup_reasons(lookups: list[Attempt]) -> str:
    texts = []
    for attempt in lookups:
        error = attempt.error
        text = error.message if isinstance(error, ConnectError) else str(error)
        text = text or type(error).__name__
        if text not in texts:
            texts.append(text)
    if len(texts) == 1:
        return texts[0]
    return "; ".join(
        f"{attempt.address.record_type}: {_reason(attempt.error)}" for attempt in lookups
    )
