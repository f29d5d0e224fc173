"""A stream handler kept connected: :class:`ReconnectingStream`.

:class:`~greenpoint.ReconnectingClient` keeps a *protocol* connected, for code
written the Twisted way. Scripts that use ``open()`` have a function that reads and
writes a stream instead; this runs it on every connection, with the same back-off
(:class:`~greenpoint.Backoff`), the same ``max_retries``, ``on_retry`` and
``when_connected``, and the same rule that a successful connection resets the delay.

The loop, in one greenlet: ``endpoint.open()``; ``handler(stream)``; close the
stream; wait the back-off delay; again. A handler that returns, or that raises
because the connection dropped (an ``OSError``), is reconnected; any other exception
from it is logged with its traceback and reconnected too, so one bad message does
not end a long-running script (``stop()`` from inside the handler ends it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from greenpoint._backoff import (
    DEFAULT_FACTOR,
    DEFAULT_INITIAL_DELAY,
    DEFAULT_JITTER,
    DEFAULT_MAX_DELAY,
    DelayPolicy,
    retry_policy,
)
from greenpoint._checks import check_timeout
from greenpoint._retry_loop import RetryLoop
from greenpoint.errors import ConnectionDone

__all__ = ["ReconnectingStream"]

log = logging.getLogger("greenpoint.reconnect")


class ReconnectingStream(RetryLoop):
    """Keep ``handler(stream)`` running on a connection to ``endpoint``, reconnecting.

    ``start()`` spawns the loop; nothing blocks the caller except
    :meth:`when_connected` and :meth:`stop`.

    Args:
        endpoint: any client endpoint (``open(timeout)``) or a client description.
        handler: ``handler(stream)``, run in the loop's greenlet for each
            connection; the stream is closed after it returns or raises.
        initial_delay, max_delay, factor, jitter, max_retries, policy, clock,
            on_retry: as for :class:`~greenpoint.ReconnectingClient`.
        timeout: seconds for each ``open()`` (``None``: the endpoint's own).
    """

    def __init__(
        self,
        endpoint: Any,
        handler: Callable[[Any], Any],
        initial_delay: float = DEFAULT_INITIAL_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        factor: float = DEFAULT_FACTOR,
        jitter: float = DEFAULT_JITTER,
        max_retries: int | None = None,
        *,
        policy: DelayPolicy | None = None,
        clock: Any = None,
        on_retry: Callable[[int, float, BaseException | None], Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        if isinstance(endpoint, str | bytes):
            from greenpoint._registry import client_from_string

            endpoint = client_from_string(endpoint)
        if not callable(getattr(endpoint, "open", None)):
            raise TypeError(f"endpoint must be a client endpoint, not {endpoint!r}")
        if not callable(handler):
            raise TypeError(f"handler must be callable as handler(stream), not {handler!r}")
        policy = retry_policy(max_retries, policy, initial_delay, max_delay, factor, jitter)
        super().__init__(endpoint, policy, max_retries, clock, on_retry)
        self.handler = handler
        self.timeout = check_timeout(timeout)
        self._connections = 0
        self._stream: Any = None

    @property
    def stream(self) -> Any:
        """The live stream, or ``None`` while not connected."""
        return self._stream

    @property
    def connections(self) -> int:
        """How many connections the handler has been run on."""
        return self._connections

    # Stopping interrupts the handler (GreenletExit) or the attempt; the stream is
    # closed on the way out. From inside the handler, stop() returns at once and
    # the loop ends when the handler returns.
    _own_greenlet_error = "when_connected() called from the handler would wait for itself"

    def _live(self) -> Any:
        return self._stream

    def _connect_once(self) -> bool:
        self._state = "connecting"
        try:
            stream = self.endpoint.open(timeout=self.timeout)
        except Exception as exc:
            self._attempt_failed(exc)
            self._count_failure(exc)
            return False
        self._stream = stream
        self._connections += 1
        self._connected(stream)
        return True

    def _stay_connected(self) -> None:
        stream = self._stream
        reason: BaseException = ConnectionDone(f"the handler returned ({self.endpoint})")
        try:
            self.handler(stream)
        except OSError as exc:  # the connection dropped under the handler
            reason = exc
            log.warning("connection to %s lost: %s", self.endpoint, exc)
        except Exception as exc:
            reason = exc
            log.exception("handler %r failed on %s; reconnecting", self.handler, self.endpoint)
        finally:
            self._stream = None
            stream.close()
        self._lost_reason = reason
