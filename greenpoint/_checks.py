"""Checks for arguments that Python callers pass: one message style, raised at the call.

A bad value found here raises :class:`FieldTypeError` (a ``TypeError``: wrong kind of
thing) or :class:`FieldError` (a ``ValueError``: right kind, wrong value), naming the
parameter and the value, before any I/O; one message style for every endpoint
constructor: ``port must be an int from 1 to 65535, not str '80'``. A description
reaches the same checks through its endpoint's constructor, and the parser turns the
error into a ``DescriptionError`` naming the key (``greenpoint._registry``).

Timeouts are checked here because gevent takes them unchecked: a NaN deadline
never fires and stalls the whole loop (an enclosing ``gevent.Timeout`` included),
and a negative or ``str`` one fails deep inside with gevent's own wording.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "FieldError",
    "FieldTypeError",
    "check_backlog",
    "check_factory",
    "check_timeout",
    "finite_number",
    "hashable",
    "port",
    "seconds",
    "whole_number",
]


class FieldError(ValueError):
    """A bad argument; ``field`` is its Python name (``bind_address``).

    The description parser (``EndpointParser.parse``) maps ``field`` back to the
    description key (``bindAddress``) and raises ``DescriptionError`` naming it, so a
    constructor never needs to know about descriptions.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class FieldTypeError(FieldError, TypeError):
    """A :class:`FieldError` for the wrong kind of value (``port="80"``).

    Also a ``TypeError``, as Python says for a wrong type, and still a ``ValueError``
    for code that caught what these checks raised before.
    """


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def whole_number(
    name: str, value: Any, lo: int = 0, hi: int | None = None, *, field: str | None = None
) -> int:
    """Return ``value`` if it is an ``int`` from ``lo`` to ``hi`` (``None``: no limit).

    ``bool`` counts as not an int: ``backlog=True`` is a mistake, not 1. ``field``
    names the argument in the error when ``name`` says more (``"bind port"``).

    Raises:
        FieldTypeError: not an int. FieldError: out of range.
    """
    span = f"of {lo} or more" if hi is None else f"from {lo} to {hi}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldTypeError(field or name, f"{name} must be an int {span}, not {_shown(value)}")
    if value < lo or (hi is not None and value > hi):
        raise FieldError(field or name, f"{name} must be an int {span}, not {value!r}")
    return value


def port(name: str, value: Any, *, zero: bool = False, field: str | None = None) -> int:
    """A TCP port: 1 to 65535, or 0 too when ``zero`` (listen on / bind any port)."""
    return whole_number(name, value, 0 if zero else 1, 65535, field=field)


def finite_number(name: str, value: Any, *, field: str | None = None) -> float:
    """Return ``value`` if it is a finite ``int`` or ``float`` (not ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldTypeError(field or name, f"{name} must be a number, not {_shown(value)}")
    if not math.isfinite(value):
        raise FieldError(field or name, f"{name} must be a finite number, not {value!r}")
    return value


def seconds(
    name: str,
    value: Any,
    *,
    allow_none: bool = True,
    zero: bool = True,
    field: str | None = None,
) -> float | None:
    """Return ``value`` if it is a finite number of seconds (or ``None`` when allowed).

    ``zero=False`` refuses ``0`` too (a constructor's own timeout, where 0 would
    make every call fail at once). Infinity is refused: ``None`` means no limit.

    Raises:
        FieldTypeError: not a number (``bool`` counts as not a number).
        FieldError: NaN, infinite, negative (or 0 when ``zero=False``).
    """
    key = field or name
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "a number of seconds or None" if allow_none else "a number of seconds"
        raise FieldTypeError(key, f"{name} must be {kind}, not {_shown(value)}")
    if not math.isfinite(value):
        no_limit = " (None: no limit)" if allow_none else ""
        raise FieldError(key, f"{name} must be a finite number of seconds{no_limit}, not {value}")
    if value < 0 or (value == 0 and not zero):
        least = "zero or more" if zero else "more than zero"
        raise FieldError(key, f"{name} must be {least} seconds, not {value}")
    return value


def check_timeout(value: Any, name: str = "timeout", *, zero: bool = True) -> float | None:
    """:func:`seconds` for a per-call ``timeout`` (``None``: the endpoint's, or none)."""
    if value is None:  # the usual case, on every open(): no second call
        return None
    return seconds(name, value, zero=zero)


def hashable(value: Any) -> bool:
    """Whether ``value`` can be a cache key: hashable, so (by Python's convention)
    it cannot change in place, as a list or a dict could."""
    try:
        hash(value)
    except TypeError:
        return False
    return True


def check_backlog(value: Any, name: str = "backlog") -> int:
    """Return ``value`` if it is an ``int`` of 0 or more (the ``listen()`` queue)."""
    return whole_number(name, value, 0)


def check_factory(factory: Any, call: str) -> None:
    """Refuse what is not a protocol factory *instance*, before anything is started.

    The usual mistakes are ``None``, a ``Protocol`` subclass, a ``Factory`` subclass
    (the class rather than an instance) and a ``Factory()`` with no ``protocol``;
    each gets a message saying which.

    Raises:
        TypeError: naming ``call`` and what was passed.
    """
    from greenpoint._protocol import Factory

    expected = f"{call}() needs a protocol factory instance (with {', '.join(_FACTORY_METHODS)})"
    if isinstance(factory, type):
        what = "the factory class" if hasattr(factory, "buildProtocol") else "a class"
        raise TypeError(
            f"{expected}, not {what} {factory.__qualname__}; "
            "for a Protocol subclass P pass Factory.forProtocol(P)"
        )
    missing = [m for m in _FACTORY_METHODS if not callable(getattr(factory, m[:-2], None))]
    if missing:
        raise TypeError(f"{expected}, not {factory!r} (it has no {', '.join(missing)})")
    # Factory.buildProtocol calls self.protocol(): None would fail per connection.
    if (
        isinstance(factory, Factory)
        and getattr(factory.buildProtocol, "__func__", None) is Factory.buildProtocol
        and factory.protocol is None
    ):
        raise TypeError(
            f"{call}(): {factory!r} has no protocol; use Factory.forProtocol(P) "
            "or set its protocol attribute"
        )


_FACTORY_METHODS = ("buildProtocol()", "doStart()", "doStop()")
