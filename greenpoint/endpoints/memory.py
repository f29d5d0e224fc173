"""``memory:NAME``: client and server endpoints that connect inside the process.

A server description ``memory:NAME`` binds the name in this process; a client
description ``memory:NAME`` connects to it. No socket, no file descriptor, no
port: connections are :mod:`greenpoint._memory_stream` pairs. ``open``,
``connect``, ``serve``, ``listen`` and ``tls:...:endpoint=[memory:NAME]`` work as
for any endpoint, so code that reads its endpoints from configuration runs in tests
unchanged, and with the faults it meets in production, written into the client
description:

=================  ==================================================================
``refuse=1``       ``open()`` raises ``ConnectRefusedError`` (as with no server bound)
``blackhole=1``    ``open()`` hangs until its timeout: ``ConnectTimeoutError``
``resetAfter=N``   the connection is reset once N bytes have crossed (both ways)
``delay=S``        every write reaches the peer S seconds later (fractions allowed)
``chunk=N``        a read returns at most N bytes
``timeout=S``      the connect timeout (default 30), which ``blackhole`` runs into
=================  ==================================================================

The same faults can be injected from a test without touching the descriptions the
code under test reads: ``with greenpoint.testing.memory_faults("db", refuse=True):``
applies to every client of ``memory:db`` (and wins over its description's keys)
until the block ends.

Twisted has nothing addressable by a description here: its ``MemoryReactor`` and
``iosim`` fakes are wired up in code. Names are per process (per gevent hub would
be no different in practice: greenpoint runs one hub per thread).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
from collections.abc import Iterator, Mapping
from typing import Any

from gevent import Timeout
from gevent.event import Event

from greenpoint._checks import FieldError, check_timeout
from greenpoint._defaults import DEFAULT_TIMEOUT
from greenpoint._memory_stream import Faults, MemoryAddress, MemoryStream, stream_pair
from greenpoint._params import Param, boolean, format_value, integer, number, register_inverse, text
from greenpoint._registry import EndpointParser
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.errors import ConnectRefusedError, ConnectTimeoutError, ListenError

__all__ = [
    "CLIENT_PARSERS",
    "SERVER_PARSERS",
    "MemoryAddress",
    "MemoryClientEndpoint",
    "MemoryListener",
    "MemoryServerEndpoint",
    "memory_faults",
]

# name -> the listener bound to it, in this process.
_bound: dict[str, MemoryListener] = {}


@dataclasses.dataclass(frozen=True)
class _Injected:
    refuse: bool
    blackhole: bool
    faults: Faults


# name -> faults a test injected for every client of that name (memory_faults).
_injected: dict[str, _Injected] = {}


@contextlib.contextmanager
def memory_faults(
    name: str,
    *,
    refuse: bool = False,
    blackhole: bool = False,
    reset_after: int | None = None,
    delay: float = 0.0,
    chunk: int | None = None,
) -> Iterator[None]:
    """Make every client of ``memory:NAME`` meet these faults inside the ``with`` block.

    They replace, for the block, the fault keys of the clients' own descriptions;
    connections made before the block keep the faults they were made with.
    """
    _check_name(name)
    injected = _Injected(refuse, blackhole, Faults(reset_after, delay, chunk))
    previous = _injected.get(name)
    _injected[name] = injected
    try:
        yield
    finally:
        if previous is None:
            _injected.pop(name, None)
        else:
            _injected[name] = previous


class MemoryListener:
    """What ``MemoryServerEndpoint.bind()`` returns: accepts in-process connections."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False
        self._pending: collections.deque[MemoryStream] = collections.deque()
        self._arrived = Event()

    def __repr__(self) -> str:
        return f"<MemoryListener memory:{self.name}{' closed' if self.closed else ''}>"

    def __enter__(self) -> MemoryListener:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def accept(self) -> tuple[MemoryStream, MemoryAddress]:
        """Wait for the next connection; blocks only the calling greenlet."""
        while True:
            if self.closed:
                raise OSError(errno.EBADF, f"{self!r} is closed")
            if self._pending:
                stream = self._pending.popleft()
                return stream, stream.getPeer()
            self._arrived.clear()
            self._arrived.wait()

    def get_host(self) -> MemoryAddress:
        return MemoryAddress(self.name)

    def getsockname(self) -> str:
        return self.name

    def fileno(self) -> int:
        return -1  # no descriptor: nothing to poll or pass to a child

    def close(self) -> None:
        """Unbind the name; connections not yet accepted are closed (their clients read EOF)."""
        if self.closed:
            return
        self.closed = True
        if _bound.get(self.name) is self:
            del _bound[self.name]
        while self._pending:
            self._pending.popleft().close()
        self._arrived.set()

    def connect(self, faults: Faults) -> MemoryStream:
        """Make a connection to this listener; returns the client's end."""
        client, server = stream_pair(self.name, faults)
        self._pending.append(server)
        self._arrived.set()
        return client


@dataclasses.dataclass(frozen=True)
class MemoryServerEndpoint(ServerEndpoint):
    """Listen on ``memory:NAME`` in this process."""

    name: str

    prefix = "memory"

    def __post_init__(self) -> None:
        _check_name(self.name)

    # MemoryStream lacks recv_into/getpeername/getsockname of the Stream protocol
    # (greenpoint/_memory_stream.py), so neither return type is a Listener/Stream yet.
    def bind(self) -> MemoryListener:  # type: ignore[override]
        """Bind the name; ``ListenError`` (``EADDRINUSE``) if a listener holds it."""
        if self.name in _bound:
            raise ListenError(
                errno.EADDRINUSE, f"cannot listen on memory:{self.name}: the name is in use"
            )
        listener = _bound[self.name] = MemoryListener(self.name)
        return listener


@dataclasses.dataclass(frozen=True)
class MemoryClientEndpoint(ClientEndpoint):
    """Connect to ``memory:NAME`` in this process, with optional faults."""

    name: str
    timeout: float | None = DEFAULT_TIMEOUT
    refuse: bool = False
    blackhole: bool = False
    faults: Faults = Faults()

    prefix = "memory"

    def __post_init__(self) -> None:
        _check_name(self.name)
        check_timeout(self.timeout)

    @property
    def address(self) -> MemoryAddress:
        return MemoryAddress(self.name)

    # Not a Stream yet: MemoryStream lacks recv_into/getpeername/getsockname.
    def open(self, timeout: float | None = None) -> MemoryStream:  # type: ignore[override]
        """Connect; blocks only the calling greenlet (only ``blackhole`` ever waits).

        Raises:
            ConnectRefusedError: nothing is bound to the name, or ``refuse``.
            ConnectTimeoutError: ``blackhole``, once ``timeout`` has passed.
        """
        check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        refuse, blackhole, faults = self.refuse, self.blackhole, self.faults
        injected = _injected.get(self.name)
        if injected is not None:
            refuse, blackhole, faults = injected.refuse, injected.blackhole, injected.faults
        if refuse:
            raise ConnectRefusedError(
                f"connection to {self.address} refused (refuse fault)",
                address=self.address,
                errno=errno.ECONNREFUSED,
            )
        if blackhole:
            try:
                with Timeout(timeout):
                    Event().wait()  # nothing ever answers
            except Timeout:
                pass
            raise ConnectTimeoutError(
                f"connecting to {self.address} timed out after {timeout:g} s (blackhole fault)",
                address=self.address,
                errno=errno.ETIMEDOUT,
            )
        listener = _bound.get(self.name)
        if listener is None:
            raise ConnectRefusedError(
                f"connection to {self.address} refused: nothing listens on that name",
                address=self.address,
                errno=errno.ECONNREFUSED,
            )
        return listener.connect(faults)

    def description_values(self) -> Mapping[str, Any]:
        return {**super().description_values(), **dataclasses.asdict(self.faults)}


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise FieldError("name", f"a memory: endpoint needs a non-empty name, not {name!r}")


# -- descriptions ----------------------------------------------------------------------


def _timeout(value: str) -> float | None:
    return None if value.strip().lower() == "none" else number(value)


register_inverse(_timeout, format_value)  # None is "none"


def _build_client(
    name: str,
    timeout: float | None,
    refuse: bool,
    blackhole: bool,
    reset_after: int | None,
    delay: float,
    chunk: int | None,
) -> MemoryClientEndpoint:
    faults = Faults(reset_after=reset_after, delay=delay, chunk=chunk)
    return MemoryClientEndpoint(name, timeout, refuse, blackhole, faults)


_NAME = Param("name", text, positional=True, help="the name a memory: server is bound to")

CLIENT_PARSERS = {
    "memory": EndpointParser(
        "memory",
        (
            _NAME,
            Param("timeout", _timeout, default=DEFAULT_TIMEOUT, help="seconds, or none"),
            Param("refuse", boolean, default=False, help="fault: refuse the connection"),
            Param("blackhole", boolean, default=False, help="fault: never answer; time out"),
            Param(
                "resetAfter",
                integer(0),
                default=None,
                target="reset_after",
                help="fault: reset once this many bytes have crossed",
            ),
            Param("delay", number, default=0.0, help="fault: seconds each write takes"),
            Param("chunk", integer(1), default=None, help="fault: most bytes one read returns"),
        ),
        _build_client,
        "connect inside this process to a memory: server (for tests; fault injection)",
    )
}

SERVER_PARSERS = {
    "memory": EndpointParser(
        "memory", (_NAME,), MemoryServerEndpoint, "listen inside this process, by name"
    )
}
