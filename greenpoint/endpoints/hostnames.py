"""``HostnamesEndpoint``: one service on several machines, raced as one (RFC 8305).

``tcp:db1.example,db2.example,192.0.2.7:5432`` builds one: every host's addresses
join one happy-eyeballs race under one deadline (see
:func:`greenpoint._happy_eyeballs.open_tcp_connection_to_any`), so a dead machine
costs ``attemptDelay`` (250 ms), not a timeout, and a refusing one nothing.

``order=sequence`` tries the hosts one after another instead (a primary and its
fallbacks): each host gets its own happy-eyeballs race and an equal share of what is
left of the deadline, so a black-holed first host of three costs a third of it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from greenpoint._address import HostnameAddress
from greenpoint._checks import FieldError, check_timeout, seconds
from greenpoint._checks import port as check_port
from greenpoint._defaults import DEFAULT_TIMEOUT
from greenpoint._happy_eyeballs import (
    ConnectInfo,
    open_tcp_connection,
    open_tcp_connection_to_any,
)
from greenpoint._hostnames import BindAddress, checked_host
from greenpoint._interleave import DEFAULT_ATTEMPT_DELAY
from greenpoint._sockopts import (
    SocketOptionsHook,
    TCPOptions,
    check_socket_fields,
    configured_connect,
    socket_configurer,
)
from greenpoint.endpoints._base import ClientEndpoint
from greenpoint.endpoints.hostname import tcp_description_values
from greenpoint.errors import Attempt, ConnectError, ConnectRefusedError, ConnectTimeoutError

__all__ = ["ORDERS", "HostnamesEndpoint", "split_hosts"]
ORDERS = ("race", "sequence")


def split_hosts(text: str) -> list[str]:
    """``"a.example, ::1"`` -> ``["a.example", "::1"]``; empty items are an error."""
    hosts = [item.strip() for item in text.split(",")]
    if any(not item for item in hosts):
        raise ValueError(f"expected host names separated by commas, got {text!r}")
    return hosts


@dataclasses.dataclass(eq=True)
class HostnamesEndpoint(ClientEndpoint):
    """Connect to whichever of ``hosts`` (``(host, port)`` pairs) answers first.

    All names are resolved at once and all their addresses raced as one RFC 8305
    race: families interleaved, a new attempt every ``attempt_delay`` seconds or
    at once when one fails, within one ``timeout``. ``order="sequence"`` tries the
    hosts in the order given instead, each with an equal share of the time left.
    ``open_with_info()`` says which address won and lists every lookup and attempt.
    ``resolver``, ``clock`` and ``connector`` are the seams of
    :class:`~greenpoint.HostnameEndpoint`.
    """

    prefix: ClassVar[str] = "tcp"

    hosts: Sequence[tuple[str, int]]
    timeout: float | None = DEFAULT_TIMEOUT
    bind_address: Any = None  # any form BindAddress.parse takes; held as a BindAddress
    attempt_delay: float = DEFAULT_ATTEMPT_DELAY
    resolver: Callable[..., Any] | None = None
    order: str = "race"
    clock: Any = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)
    connector: Callable[..., Any] | None = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )
    nodelay: bool = dataclasses.field(default=True, kw_only=True)
    tcp_options: TCPOptions = dataclasses.field(default_factory=TCPOptions, kw_only=True)
    socket_options: SocketOptionsHook = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )

    def __post_init__(self) -> None:
        hosts = tuple((host, port) for host, port in self.hosts)
        if not hosts:
            raise ValueError("hosts must name at least one (host, port)")
        for host, port in hosts:
            checked_host(host)  # an invalid name is refused now
            check_port("port", port)
        self.hosts = hosts
        seconds("timeout", self.timeout)
        seconds("attempt_delay", self.attempt_delay, allow_none=False)
        self.bind_address = BindAddress.parse(self.bind_address)
        if self.order not in ORDERS:
            raise FieldError("order", f"order must be 'race' or 'sequence', not {self.order!r}")
        self.socket_options = check_socket_fields(
            self.nodelay, self.tcp_options, self.socket_options
        )

    def _connect(self) -> Callable[..., Any] | None:
        # The connector seam (tests) wins; otherwise one with the socket options.
        if self.connector is not None:
            return self.connector
        configure = socket_configurer(self.tcp_options, self.socket_options)
        return configured_connect(self.nodelay, configure)

    def open(self, timeout: float | None = None) -> Any:
        """Connect and return the connected gevent socket (see :meth:`open_with_info`)."""
        return self.open_with_info(timeout)[0]

    def open_with_info(self, timeout: float | None = None) -> tuple[Any, ConnectInfo]:
        """Connect; return ``(socket, info)``: the winner, every lookup and attempt.

        Raises:
            DNSLookupError: no host gave an address.
            ConnectTimeoutError: the deadline passed first.
            ConnectRefusedError: every address refused.
            ConnectError: every address failed; ``.attempts`` lists each.
        """
        check_timeout(timeout)
        limit = self.timeout if timeout is None else timeout
        if self.order == "sequence":
            return self._one_after_another(limit)
        return open_tcp_connection_to_any(
            self.hosts,
            timeout=limit,
            bind_address=self.bind_address,
            attempt_delay=self.attempt_delay,
            resolver=self.resolver,
            clock=self.clock,
            connect=self._connect(),
        )

    def _one_after_another(self, limit: float | None) -> tuple[Any, ConnectInfo]:
        now = self.clock.now if self.clock is not None else time.monotonic
        start = now()
        deadline = None if limit is None else start + limit
        attempts: list[Attempt] = []
        resolutions: list[Any] = []
        last: ConnectError | None = None
        for index, (host, port) in enumerate(self.hosts):
            offset = now() - start
            share = None
            if deadline is not None:
                # What is left, shared equally by the hosts not yet tried.
                share = max(0.0, deadline - now()) / (len(self.hosts) - index)
            try:
                sock, info = open_tcp_connection(
                    host,
                    port,
                    timeout=share,
                    bind_address=self.bind_address,
                    attempt_delay=self.attempt_delay,
                    resolver=self.resolver,
                    clock=self.clock,
                    connect=self._connect(),
                )
            except ConnectError as exc:
                last = exc
                attempts += [_shifted(attempt, offset) for attempt in exc.attempts]
                continue
            attempts += [_shifted(attempt, offset) for attempt in info.attempts]
            resolutions += [_shifted(resolution, offset) for resolution in info.resolutions]
            return sock, ConnectInfo(
                self._target(), info.winner, tuple(attempts), tuple(resolutions), now() - start
            )
        raise self._all_failed(attempts, last)

    def _target(self) -> HostnameAddress:
        ports = {port for _, port in self.hosts}
        if len(ports) == 1:
            return HostnameAddress(",".join(host for host, _ in self.hosts), ports.pop())
        return HostnameAddress(",".join(f"{host}:{port}" for host, port in self.hosts), 0)

    def _all_failed(self, attempts: list[Attempt], last: ConnectError | None) -> ConnectError:
        errors = [attempt.error for attempt in attempts if attempt.phase == "connect"]
        message = f"cannot connect to {self._target()}: all {len(self.hosts)} hosts failed"
        if errors and all(isinstance(error, ConnectionRefusedError) for error in errors):
            cls: type[ConnectError] = ConnectRefusedError
        elif isinstance(last, ConnectTimeoutError):
            cls = ConnectTimeoutError
        else:
            cls = ConnectError
        return cls(message, address=self._target(), attempts=attempts)

    def description_values(self) -> Mapping[str, Any]:
        ports = {port for _, port in self.hosts}
        if len(ports) != 1:
            raise ValueError("hosts on different ports have no description form")
        host = ",".join(host for host, _ in self.hosts)
        return {**tcp_description_values(self), "host": host, "port": ports.pop()}


def _shifted(value: Any, offset: float) -> Any:
    """An ``Attempt`` or ``Resolution`` with its start moved by ``offset`` seconds."""
    return dataclasses.replace(value, started=value.started + offset)
