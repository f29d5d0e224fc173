"""The errors greenpoint raises.

Every error has one root, and each is also the standard exception it resembles, so
code that catches ``ValueError`` or ``OSError`` keeps working::

    GreenpointError
    ├── DescriptionError (ValueError)        a bad endpoint description
    ├── ConnectError (OSError)               every failure to connect; .attempts
    │   ├── DNSLookupError                   the name did not resolve
    │   ├── ConnectTimeoutError (TimeoutError) the deadline passed
    │   ├── ConnectRefusedError              nothing listens there
    │   ├── ConnectCancelledError            the caller gave up (Timeout, kill)
    │   ├── NoProtocolError                  the factory built no protocol
    │   ├── ProxyError                       a SOCKS or HTTP proxy refused or failed
    │   └── TLSError                         the TLS handshake failed
    │       └── TLSVerificationError         the peer's certificate was refused
    ├── ListenError (OSError)                a server endpoint could not bind
    ├── AlreadyListenedError                 an adopted fd was used twice
    ├── ProxyHeaderError (ValueError)        a bad, late or unauthorised PROXY header
    └── ConnectionClosed                     reasons given to connectionLost
        ├── ConnectionDone                   a clean close
        └── ConnectionLost                   anything else
            ├── ProcessTerminated            a child exited with non-zero status
            └── IdleTimeoutError (TimeoutError) no byte either way for idle_timeout

Errors are translated once, at the I/O edge, and always chained (``raise ... from``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from greenpoint._failure_like import FailureLike

__all__ = [
    "AlreadyListenedError",
    "Attempt",
    "ConnectCancelledError",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ConnectRefusedError",
    "ConnectTimeoutError",
    "DescriptionError",
    "DNSLookupError",
    "GreenpointError",
    "IdleTimeoutError",
    "ListenError",
    "NoProtocolError",
    "ProcessTerminated",
    "ProxyError",
    "ProxyHeaderError",
    "TLSError",
    "TLSVerificationError",
]


class GreenpointError(Exception):
    """The root of every error greenpoint raises."""


class DescriptionError(GreenpointError, ValueError):
    """An endpoint description that cannot be used.

    ``prefix`` and ``parameter`` name what was wrong (either may be ``None``) and
    ``suggestion`` the known name that was probably meant.
    """

    def __init__(
        self,
        message: str,
        *,
        prefix: str | None = None,
        parameter: str | None = None,
        suggestion: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.prefix = prefix
        self.parameter = parameter
        self.suggestion = suggestion
        self.position = position


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One try at one address: what was tried, in which phase, and how it ended.

    ``phase`` is ``"resolve"``, ``"connect"`` or ``"handshake"``; ``error`` is
    ``None`` for the attempt that won; ``started`` and ``elapsed`` are seconds
    relative to the start of the whole connect.
    """

    address: Any
    phase: str
    error: BaseException | None = None
    started: float = 0.0
    elapsed: float = 0.0

    def describe(self) -> str:
        """One line for logs: ``address [phase] outcome (started +t ms, took t ms)``."""
        outcome = "connected" if self.error is None else _error_text(self.error)
        return (
            f"{self.address} [{self.phase}] {outcome} "
            f"(started +{_milliseconds(self.started)}, took {_milliseconds(self.elapsed)})"
        )


def _milliseconds(seconds: float) -> str:
    # A refusal on loopback takes well under a millisecond; "0 ms" would hide it.
    ms = seconds * 1000
    return f"{ms:.1f} ms" if abs(ms) < 10 else f"{ms:.0f} ms"


def _error_text(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if type(error).__name__ not in text else text


class ConnectError(GreenpointError, OSError):
    """A connection could not be made.

    ``attempts`` lists every :class:`Attempt` (address, phase, error, timing), in
    the order they started; ``address`` is what the caller asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        address: Any = None,
        attempts: tuple[Attempt, ...] | list[Attempt] = (),
        errno: int | None = None,
    ) -> None:
        self.attempts = tuple(attempts)
        self.address = address
        if errno is not None:
            OSError.__init__(self, errno, message)
        else:
            OSError.__init__(self, message)
        self.message = message

    def __str__(self) -> str:
        if len(self.attempts) <= 1:
            return self.message
        lines = [self.message] + ["  " + attempt.describe() for attempt in self.attempts]
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        # OSError would pickle (errno, strerror) as positional arguments, which our
        # keyword-only __init__ does not take; rebuild from our own state instead,
        # then restore any attributes added later (the third item is the __dict__).
        return (
            _rebuild,
            (type(self), self.message, self.address, self.attempts, self.errno),
            self.__dict__,
        )


def _rebuild(
    cls: type[ConnectError],
    message: str,
    address: Any,
    attempts: tuple[Attempt, ...],
    errno: int | None,
) -> ConnectError:
    return cls(message, address=address, attempts=attempts, errno=errno)


class DNSLookupError(ConnectError):
    """A host name did not resolve to any address."""


class ConnectTimeoutError(ConnectError, TimeoutError):
    """The connect deadline passed before a connection (and handshake) completed."""


class ConnectRefusedError(ConnectError, ConnectionRefusedError):
    """Nothing was listening at the address (the peer refused the connection)."""


class ConnectCancelledError(ConnectError):
    """The connect was abandoned by its caller (``gevent.Timeout``, ``kill()``, ``stop()``)."""


class NoProtocolError(ConnectError):
    """The factory's ``buildProtocol`` returned ``None``; the connection was closed."""


class ProxyError(ConnectError):
    """A SOCKS or HTTP CONNECT proxy refused the connection, failed authentication,
    could not reach the target, broke its protocol, or closed mid-negotiation.

    ``proxy`` names the proxy (never its credentials); ``reply`` is the proxy's own
    answer: the SOCKS reply code (an int) or the HTTP status line, or ``None`` when
    it gave none.
    """

    proxy: Any = None
    reply: Any = None


class TLSError(ConnectError):
    """The TLS handshake failed."""


class TLSVerificationError(TLSError):
    """The peer's certificate was refused: untrusted, expired, or for another name."""


class ListenError(GreenpointError, OSError):
    """A server endpoint could not start listening (the address is named in the message)."""


class AlreadyListenedError(GreenpointError, RuntimeError):
    """An adopted file descriptor was already handed to a listener once."""


class ProxyHeaderError(GreenpointError, ValueError):
    """A PROXY protocol header was malformed, too long, too late, or came from a
    source outside the allowed proxy networks; the connection was closed."""


class ConnectionClosed(FailureLike, GreenpointError):
    """Why a connection ended; given to ``Protocol.connectionLost``.

    It also answers ``check``/``trap``/``value``/``getErrorMessage`` as Twisted's
    ``Failure`` does, for ported protocols that ask (see ``_failure_like``).
    """

    default_message = "the connection was closed"

    def __str__(self) -> str:
        return super().__str__() or self.default_message


class ConnectionDone(ConnectionClosed):
    """The connection was closed cleanly."""

    default_message = "the connection was closed cleanly"


class ConnectionLost(ConnectionClosed):
    """The connection was lost in a non-clean fashion."""

    default_message = "the connection was lost"


class ProcessTerminated(ConnectionLost):
    """A child process exited with a non-zero status or was killed by a signal."""

    default_message = "the process ended with an error"

    def __init__(
        self, message: str = "", *, exit_code: int | None = None, signal: int | None = None
    ):
        super().__init__(message)
        self.exit_code = exit_code
        self.signal = signal


class IdleTimeoutError(ConnectionLost, TimeoutError):
    """No byte was received or sent for the server's ``idle_timeout``; the server closed it.

    A stream handler blocked on the connection gets it raised; a protocol gets it as
    the reason given to ``connectionLost``. It is a ``ConnectionLost`` (code that
    handles lost connections keeps working) and a ``TimeoutError``.
    """

    default_message = "the connection was idle for too long"

    def __init__(self, message: str = "", *, idle_timeout: float | None = None) -> None:
        super().__init__(message)
        self.idle_timeout = idle_timeout

    def __str__(self) -> str:
        return ConnectionClosed.__str__(self)
