"""Checks for arguments that Python callers pass: one message style, raised at the call.

A bad value found here raises a plain ``TypeError`` (wrong kind of thing) or
``ValueError`` (right kind, wrong value) naming the parameter and the value, before
any I/O. Descriptions have their own checks and raise ``DescriptionError``.

Timeouts are checked here because gevent takes them unchecked: a NaN deadline
never fires and stalls the whole loop (an enclosing ``gevent.Timeout`` included),
and a negative or ``str`` one fails deep inside with gevent's own wording.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_backlog", "check_factory", "check_timeout"]


def check_timeout(value: Any, name: str = "timeout", *, zero: bool = True) -> float | None:
    """Return ``value`` if it is ``None`` or a finite number of seconds, else raise.

    ``zero=False`` refuses ``0`` too (a constructor's own timeout, where 0 would
    make every call fail at once). Infinity is refused: ``None`` means no limit.

    Raises:
        TypeError: not a number (``bool`` counts as not a number).
        ValueError: NaN, infinite, negative (or 0 when ``zero=False``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be a number of seconds or None, not {type(value).__name__} {value!r}"
        )
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds (None: no limit), not {value}")
    if value < 0 or (value == 0 and not zero):
        least = "zero or more" if zero else "more than zero"
        raise ValueError(f"{name} must be {least} seconds, not {value}")
    return value


def check_backlog(value: Any, name: str = "backlog") -> int:
    """Return ``value`` if it is an ``int`` of 0 or more (the ``listen()`` queue)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int of 0 or more, not {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an int of 0 or more, not {value}")
    return value


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
