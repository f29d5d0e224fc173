"""``socket.makefile()`` for our socket-like streams (TLS, PROXY protocol).

The stdlib's ``socket.SocketIO`` works over any object with ``recv_into``, ``send``
and ``_decref_socketios``; what is left is the mode check and the buffered and text
layers, made here as ``socket.socket.makefile`` makes them.
"""

from __future__ import annotations

import io
from typing import Any, Literal, cast

RawMode = Literal["r", "w", "rw"]

__all__ = ["raw_file_mode", "layer_file"]


def raw_file_mode(mode: str) -> RawMode:
    """The ``SocketIO`` mode (``"r"``, ``"w"`` or ``"rw"``) for a ``makefile`` mode."""
    if not set(mode) <= {"r", "w", "b"}:
        raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
    writing = "w" in mode
    reading = "r" in mode or not writing
    return cast(RawMode, ("r" if reading else "") + ("w" if writing else ""))


def layer_file(
    raw: Any,
    mode: str,
    buffering: int | None,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> Any:
    """Put the buffered (and, without ``b``, text) layers over ``raw``."""
    if buffering is None or buffering < 0:
        buffering = io.DEFAULT_BUFFER_SIZE
    if buffering == 0:
        if "b" not in mode:
            raise ValueError("unbuffered streams must be binary")
        return raw
    if raw.readable() and raw.writable():
        buffer: Any = io.BufferedRWPair(raw, raw, buffering)
    elif raw.readable():
        buffer = io.BufferedReader(raw, buffering)
    else:
        buffer = io.BufferedWriter(raw, buffering)
    if "b" in mode:
        return buffer
    text = io.TextIOWrapper(buffer, encoding, errors, newline)
    # typeshed has TextIOWrapper.mode read-only; the instance takes it as socket.makefile sets it.
    cast(Any, text).mode = mode
    return text
