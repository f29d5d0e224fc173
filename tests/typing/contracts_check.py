"""Every stream and listener greenpoint makes satisfies the published contracts.

A static check (mypy --strict, run by tests/test_typing.py): a concrete class that
drifts from greenpoint.Stream / Listener / PreparingListener fails it. Never run.
"""

from __future__ import annotations

from greenpoint import Listener, PreparingListener, Stream
from greenpoint._pipe_stream import PipeStream
from greenpoint._process_stream import ProcessStream
from greenpoint._proxied_stream import ProxiedStream
from greenpoint._tls_listener import TLSListener
from greenpoint._wrapping_listener import WrappingListener
from greenpoint.endpoints.haproxy import HAProxyListener
from greenpoint.tls import TLSStream


def streams(
    tls: TLSStream, proxied: ProxiedStream, pipe: PipeStream, process: ProcessStream
) -> list[Stream]:
    return [tls, proxied, pipe, process]


def listeners(
    tls: TLSListener, haproxy: HAProxyListener, base: WrappingListener
) -> list[PreparingListener]:
    return [tls, haproxy, base]


def plain(listener: PreparingListener) -> Listener:
    return listener
