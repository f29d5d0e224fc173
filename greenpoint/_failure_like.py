"""The parts of Twisted's ``Failure`` that ported protocols call on a ``reason``.

greenpoint gives ``connectionLost`` an exception, not a ``Failure``. Twisted code
often asks the reason ``reason.check(ConnectionDone)``, ``reason.trap(...)``,
``reason.value`` or ``reason.getErrorMessage()`` (``amp.AMP.connectionLost`` does).
:class:`FailureLike` adds those to greenpoint's reasons, so such code runs
unchanged. Twisted's own ``ConnectionDone``/``ConnectionLost``/``ConnectionClosed``
(and ``ProcessTerminated``) match greenpoint's classes of the same name, by name,
without importing Twisted.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FailureLike"]

_TWISTED_ERRORS = "twisted.internet.error"


class FailureLike:
    """Mixin for exceptions handed to ``connectionLost``: a ``Failure``'s vocabulary."""

    @property
    def value(self) -> Any:
        """The exception itself (``Failure.value``)."""
        return self

    @property
    def type(self) -> type:
        """The exception's class (``Failure.type``)."""
        return type(self)

    def check(self, *error_types: Any) -> Any:
        """The first of ``error_types`` this reason is, or ``None`` (``Failure.check``)."""
        for error_type in error_types:
            if _matches(self, error_type):
                return error_type
        return None

    def trap(self, *error_types: Any) -> Any:
        """``check``, raising this reason when none matches (``Failure.trap``)."""
        found = self.check(*error_types)
        if found is None:
            raise self  # type: ignore[misc]
        return found

    def getErrorMessage(self) -> str:  # noqa: N802 - Twisted's name
        return str(self)

    def raiseException(self) -> None:  # noqa: N802 - Twisted's name
        raise self  # type: ignore[misc]


def _matches(reason: Any, error_type: Any) -> bool:
    if isinstance(error_type, str):  # Failure.check accepts qualified names too
        return any(
            f"{cls.__module__}.{cls.__qualname__}" == error_type for cls in type(reason).__mro__
        )
    if isinstance(error_type, type) and isinstance(reason, error_type):
        return True
    # Twisted's connection errors of the same name as one of ours.
    if getattr(error_type, "__module__", None) == _TWISTED_ERRORS:
        return any(cls.__name__ == error_type.__name__ for cls in type(reason).__mro__)
    return False
