"""Declared parameters of a description prefix: binding, coercion and defaults. Pure.

Each built-in prefix declares its parameters as a tuple of :class:`Param`. ``bind``
matches a :class:`~greenpoint._description.Description`'s positional and keyword
values against them, coerces every value, and raises :class:`DescriptionError` naming
the prefix and the parameter (with a "did you mean" for a near miss) for anything
wrong. The same declarations drive ``python -m greenpoint check`` and the README table.

The way back: :meth:`Param.format` writes a value as its key takes it (each coercer's
inverse), and :func:`describe` writes an endpoint's values back as description
parts, only the keys not at their default. So each key and its default are written
once, in the declaration, for parsing, checking and ``str(endpoint)`` alike.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from greenpoint._hostnames import is_ip_literal
from greenpoint._redact import REDACTED
from greenpoint.errors import DescriptionError

__all__ = [
    "REQUIRED",
    "Param",
    "bind",
    "boolean",
    "choice",
    "closest",
    "describe",
    "file_path",
    "format_value",
    "host",
    "integer",
    "ip_literal",
    "number",
    "octal_mode",
    "port",
    "register_inverse",
    "seconds_text",
    "text",
]


class _Required:
    """The marker for a parameter without a default; one instance, kept by copy/pickle."""

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

_Coerce = TypeVar("_Coerce", bound=Callable[[str], Any])


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a prefix.

    ``name`` is the description key (Twisted's spelling, e.g. ``bindAddress``);
    ``target`` the Python keyword it is passed as (defaults to ``name``);
    ``positional`` whether it may also be given by position, in declaration order;
    ``secret`` that its value (a password) is never shown by ``greenpoint check``.
    ``in_form`` whether the usual form (``greenpoint check``, the README table) shows
    it by position: ``False`` for values positional only because Twisted's parser
    signature makes them so (``tcp:80:127.0.0.1``), which are shown as ``key=value``.
    ``shown_default`` is what ``greenpoint check`` and the README table print as the
    default when ``default`` is ``None`` only so that the builder can tell "not
    given" apart (``tls:``'s ``timeout``: 30, unless ``endpoint=`` brings its own).
    """

    name: str
    coerce: Callable[[str], Any] = str
    default: Any = REQUIRED
    positional: bool = False
    target: str | None = None
    help: str = ""
    secret: bool = False
    in_form: bool = True
    shown_default: str | None = None

    @property
    def keyword(self) -> str:
        return self.target or self.name

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def format(self, value: Any) -> str:
        """``value`` written as this key takes it: the inverse of ``coerce``."""
        return _INVERSES.get(self.coerce, format_value)(value)

    @property
    def says_none(self) -> bool:
        """Whether the key has a word for ``None`` (its coercer has an inverse that
        writes it, such as ``timeout=none``)."""
        return self.coerce in _INVERSES


# coercer -> its inverse, for coercers whose value is not written by format_value.
_INVERSES: dict[Callable[[str], Any], Callable[[Any], str]] = {}


def register_inverse(coerce: _Coerce, write: Callable[[Any], str]) -> _Coerce:
    """Declare ``write`` as the inverse of ``coerce``; returns ``coerce``.

    ``coerce(write(value)) == value`` must hold for every value ``coerce`` returns.
    Only coercers that :func:`format_value` cannot invert need one: a value spelt
    differently (an octal mode), or ``None`` written as a word (``none``, ``0``).
    """
    _INVERSES[coerce] = write
    return coerce


def seconds_text(seconds: float) -> str:
    """Seconds as a description writes them: ``30``, ``2.5``; ``repr`` is exact, so
    ``10.46875`` never comes back as ``10.4688`` (as ``%g`` would give)."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def format_value(value: Any) -> str:
    """A value written as the built-in coercers read it back.

    ``1``/``0`` for booleans, whole floats without ``.0``, comma lists for sequences,
    ``none`` for ``None``; anything else by ``str``. Quoting for the description
    grammar is :func:`~greenpoint._description.format_description`'s job, not this.
    """
    if isinstance(value, str):
        return value  # as it is: a Bracketed nested description stays one
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return seconds_text(value)
    if isinstance(value, tuple | list | frozenset):
        return ",".join(format_value(item) for item in value)
    return str(value)


def describe(
    params: Sequence[Param], values: Mapping[str, Any]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """``(args, kwargs)`` texts that :func:`bind` reads back as ``values``.

    ``values`` are keyed by ``Param.keyword`` (the constructor's names). Required
    parameters are always written, optional ones only when not at their default.
    What the usual form shows by position (``positional`` and ``in_form``:
    ``tls:HOST:PORT``) is written by position, in order, until one is not; every
    other key as ``key=value``. Left out: a keyword absent from ``values``, and
    ``None`` for a key that has no word for it; both read back as the default. A
    secret is written as ``***``.
    """
    args: list[str] = []
    kwargs: dict[str, str] = {}
    by_position = True  # every positional parameter so far was written by position
    for param in params:
        value = values.get(param.keyword, param.default)
        written = param.keyword in values and (
            param.required
            or not (value == param.default or (value is None and not param.says_none))
        )
        if param.positional:
            by_position = by_position and written and param.in_form
        if not written:
            continue
        text_ = REDACTED if param.secret else param.format(value)
        if param.positional and by_position:
            args.append(text_)
        else:
            kwargs[param.name] = text_
    return tuple(args), kwargs


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name that ``name`` was probably meant to be, or ``None``."""
    known = list(known)
    by_fold = {k.lower().replace("_", ""): k for k in known}
    folded = name.lower().replace("_", "")
    if folded in by_fold:
        return by_fold[folded]
    matches = difflib.get_close_matches(folded, list(by_fold), n=1, cutoff=0.6)
    return by_fold[matches[0]] if matches else None


def bind(
    prefix: str,
    args: Sequence[str],
    kwargs: Mapping[str, str],
    params: Sequence[Param],
) -> dict[str, Any]:
    """Match values to ``params`` and coerce them; returns ``{target: value}``.

    As in Twisted (``clientFromString``'s ``tcp:host=example.com:80``), positional
    values fill, in order, the positional parameters that no keyword named.
    """
    by_name = {param.name: param for param in params}
    positional = [param for param in params if param.positional]
    named = [param for param in positional if param.name in kwargs]
    open_slots = [param for param in positional if param.name not in kwargs]
    if len(args) > len(open_slots):
        extra = args[len(open_slots) :]
        if not params:
            hint = "it takes no parameters"
        else:
            expected = ", ".join(p.name for p in open_slots) or "no positional values"
            hint = f"expected: {expected}; other parameters are given as key=value"
            if named:
                given = ", ".join(f"{p.name}=" for p in named)
                hint = f"expected: {expected}, as {given} was given by keyword"
        if "" in extra or "" in kwargs.values():
            # "interface=::" splits at its colons into interface="" and two values.
            hint += (
                "; an IPv6 address in a description must be bracketed, [::], "
                "or its colons escaped, \\:\\:"
            )
        raise DescriptionError(
            f"{prefix}: too many positional values {list(extra)!r} ({hint})",
            prefix=prefix,
            parameter=named[0].name if named else None,
        )
    raw_positional = {param.name: value for param, value in zip(open_slots, args, strict=False)}
    raw: dict[str, str] = {}
    for key, value in kwargs.items():
        if key not in by_name:
            suggestion = closest(key, by_name)
            hint = f": did you mean {suggestion!r}?" if suggestion else ""
            allowed = ", ".join(p.name for p in params)
            listing = f"parameters: {allowed}" if allowed else "it takes no parameters"
            raise DescriptionError(
                f"{key!r} is not a parameter of {prefix}{hint} ({listing})",
                prefix=prefix,
                parameter=key,
                suggestion=suggestion,
            )
        raw[key] = value
    raw.update(raw_positional)
    bound: dict[str, Any] = {}
    for param in params:
        if param.name in raw:
            value = raw[param.name]
            try:
                bound[param.keyword] = param.coerce(value)
            except DescriptionError:
                raise
            except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
                raise DescriptionError(
                    f"{prefix}: bad {param.name}={value!r}: {exc}",
                    prefix=prefix,
                    parameter=param.name,
                ) from exc
        elif param.required:
            raise DescriptionError(
                f"{prefix}: missing {param.name}" + (f" ({param.help})" if param.help else ""),
                prefix=prefix,
                parameter=param.name,
            )
        else:
            bound[param.keyword] = param.default
    return bound


# Coercions: each takes the text and returns the value, or raises ValueError with a
# sentence that says what was expected (``bind`` adds the prefix and parameter name).


def text(value: str) -> str:
    """Any text, unchanged."""
    return value


# ASCII digits only, no spaces: int() and float() also take "1_000", "١٢" and " +5\n",
# which in a config file are more likely typos than intent.
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_OCTAL = re.compile(r"(?:0[oO])?[0-7]+", re.ASCII)
_MAX_DIGITS = 30  # far beyond any port, backlog or fd; keeps int() off huge inputs


def _spaces(value: str) -> str:
    return ", with no spaces around it" if value != value.strip() else ""


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """A coercer for a whole number in ``[minimum, maximum]`` (either bound optional)."""

    def coerce(value: str) -> int:
        digits = value
        if not _INTEGER.fullmatch(digits):
            raise ValueError("expected a whole number" + _spaces(value))
        if len(digits) > _MAX_DIGITS:
            raise ValueError("number too large")
        number_ = int(digits, 10)
        if minimum is not None and number_ < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and number_ > maximum:
            raise ValueError(f"must be at most {maximum}")
        return number_

    coerce.__name__ = "integer"
    return coerce


port = integer(0, 65535)
port.__name__ = "port"
port.__doc__ = "A TCP port number, 0 to 65535 (0: let the system choose when listening)."


def number(value: str) -> float:
    """A non-negative, finite number of seconds; fractions allowed (``2.5``)."""
    text_ = value
    if not _DECIMAL.fullmatch(text_):
        raise ValueError("expected a number of seconds, such as 30 or 2.5" + _spaces(value))
    seconds = float(text_)
    if not math.isfinite(seconds):
        raise ValueError("number too large")
    return seconds


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(value: str) -> bool:
    """``1``/``0`` as Twisted writes them, or true/false, yes/no, on/off."""
    folded = value.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError("expected 1 or 0 (or true/false, yes/no, on/off)")


def octal_mode(value: str) -> int:
    """A file mode in octal, as chmod takes it: ``600``, ``0666`` or ``0o666``."""
    digits = value
    if not _OCTAL.fullmatch(digits) or len(digits) > _MAX_DIGITS:
        raise ValueError("expected an octal file mode such as 600 or 0o666")
    mode = int(digits, 8)
    if not 0 <= mode <= 0o777:
        # setuid, setgid and sticky mean nothing on a socket file
        raise ValueError("only permission bits are allowed: 0 to 777 (octal)")
    return mode


register_inverse(octal_mode, lambda mode: format(mode, "o"))


def file_path(value: str) -> str:
    """A path to a file or directory the endpoint reads (``greenpoint check`` looks for it)."""
    if not value:
        raise ValueError("expected a file or directory path")
    return value


def host(value: str) -> str:
    """A host name or IP literal (brackets were already removed by the parser)."""
    value = value.strip()
    if not value:
        raise ValueError("expected a host name or IP address")
    return value


def ip_literal(value: str) -> str:
    """An IP address literal, or empty for "every interface"."""
    value = value.strip()
    if value and not is_ip_literal(value):
        raise ValueError(f"expected an IP address, got {value!r}")
    return value


def choice(*options: str) -> Callable[[str], str]:
    """A coercer for one of ``options``, matched case-insensitively."""
    folded = {option.lower(): option for option in options}

    def coerce(value: str) -> str:
        key = value.strip().lower()
        if key not in folded:
            raise ValueError(f"expected one of {', '.join(options)}")
        return folded[key]

    coerce.__name__ = "choice"
    return coerce
