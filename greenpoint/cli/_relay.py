"""``greenpoint relay``: connect each accepted connection to a client endpoint.

A :class:`Relay` is the per-connection handler given to ``ServerEndpoint.serve``:
it opens the client endpoint, pumps bytes both ways (half-closes passed on), and
logs one line when the connection ends, with the bytes each way and the duration.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent

from greenpoint.cli._pump import Pump
from greenpoint.errors import IdleTimeoutError

__all__ = ["Relay", "format_bytes"]

log = logging.getLogger("greenpoint.relay")


def format_bytes(count: int) -> str:
    """``123 B``, ``4.5 kB``, ``6.7 MB``: short enough for a progress line."""
    if count < 1000:
        return f"{count} B"
    scaled = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        scaled /= 1000
        if scaled < 1000 or unit == "TB":
            return f"{scaled:.1f} {unit}"
    raise AssertionError("unreachable")


class Relay:
    """Handler: ``relay(stream, address)`` connects to ``upstream`` and pumps.

    ``timeout`` overrides the upstream endpoint's connect timeout. ``send_proxy``
    (1 or 2) sends a PROXY header of that version first, naming the client (and,
    for v2, its TLS facts) as HAProxy's ``send-proxy[-v2]`` does. ``total`` counts
    the connections handled; ``active`` holds ``(client address, Pump)`` for each
    running connection.
    """

    def __init__(
        self,
        upstream: Any,
        timeout: float | None = None,
        verbose: int = 0,
        send_proxy: int | None = None,
    ) -> None:
        if send_proxy not in (None, 1, 2):
            raise ValueError(f"send_proxy must be None, 1 or 2, not {send_proxy!r}")
        self.upstream = upstream
        self.send_proxy = send_proxy
        self.timeout = timeout
        self.verbose = verbose
        self.total = 0
        self.active: dict[object, tuple[Any, Pump]] = {}

    def __call__(self, stream: Any, address: Any) -> None:
        self.total += 1
        try:
            connection = self.upstream.open(timeout=self.timeout)
        except OSError as exc:
            reason = str(exc) if self.verbose else str(exc).splitlines()[0]
            # A ConnectError already says "cannot connect to <upstream>: ...".
            prefix = f"cannot connect to {self.upstream}"
            if not reason.startswith("cannot connect to"):
                reason = f"{prefix}: {reason}"
            log.error("%s: %s", address, reason)
            return
        if self.send_proxy is not None:
            from greenpoint.cli._send_proxy import header_for

            try:
                connection.sendall(header_for(stream, address, self.send_proxy))
            except OSError as exc:
                connection.close()
                log.error("%s: cannot send the PROXY header to %s: %s", address, self.upstream, exc)
                return
        pump = Pump(stream, connection)
        key = object()  # two connections may share an address (UNIX clients)
        self.active[key] = (address, pump)
        cut: str | None = None  # why the relay itself ended it, if it did
        try:
            with connection:
                pump.run()
        except IdleTimeoutError as exc:
            cut = f"idle: {exc}"
            raise
        except gevent.GreenletExit:
            cut = "the relay was stopping and --grace ran out"
            raise
        finally:
            del self.active[key]
            if cut is not None:
                ending = f", cut: {cut}"
            elif pump.error:
                ending = f", ended by {type(pump.error).__name__}: {pump.error}"
            else:
                ending = ""
            log.info(
                "%s -> %s: %d bytes up, %d bytes down, %.3f s%s",
                address,
                self.upstream,
                pump.up,
                pump.down,
                pump.elapsed,
                ending,
            )

    def progress_lines(self) -> list[str]:
        """One line per running connection: bytes each way so far, and for how long."""
        return [
            f"{address}: {format_bytes(pump.up)} up, {format_bytes(pump.down)} down, "
            f"{pump.elapsed:.0f} s"
            for address, pump in self.active.values()
        ]

    def report_progress(self, interval: float) -> None:
        """Log :meth:`progress_lines` every ``interval`` seconds, forever."""
        while True:
            gevent.sleep(interval)
            for line in self.progress_lines():
                log.info("%s", line)
