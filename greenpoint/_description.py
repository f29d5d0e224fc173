"""The endpoint description language: tokenize, parse, quote and format. Pure text.

The grammar is Twisted's (``twisted.internet.endpoints._tokenize``):

* ``:`` separates segments; the first segment is the prefix (case-insensitive).
* In a segment, the first ``=`` makes a keyword argument; later ``=`` are literal
  (``a:b=c=d`` gives ``b='c=d'``).
* ``\\`` makes the next character literal, whatever it is.
* Empty segments are kept; order of positionals is kept; the last duplicate keyword wins.

and adds:

* ``str`` and ``bytes`` alike (bytes are decoded as UTF-8, undecodable bytes kept
  with ``surrogateescape`` so file names round-trip through ``os.fsencode``);
* a value that starts with ``[`` runs to the matching ``]`` with ``:`` literal inside,
  and the brackets are dropped: ``tcp:[::1]:443``, ``interface=[fe80::1%eth0]``;
* a trailing ``\\`` or an unclosed ``[`` is a :class:`DescriptionError` naming the
  position, never a crash;
* :func:`quote_string_argument` escapes ``\\``, ``:``, ``=`` and ``[`` so that any
  text comes back unchanged from :func:`parse_description`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from greenpoint.errors import DescriptionError

__all__ = [
    "Description",
    "format_description",
    "parse_description",
    "quote_string_argument",
]

_ESCAPE = "\\"
_SEPARATOR = ":"
_ASSIGN = "="
_OPEN = "["
_CLOSE = "]"
_MUST_QUOTE = frozenset(_ESCAPE + _SEPARATOR + _ASSIGN + _OPEN)


@dataclasses.dataclass(frozen=True)
class Description:
    """A parsed description: ``prefix:arg:arg:key=value``.

    ``prefix`` is lower-cased; ``args`` are the positional values in order;
    ``kwargs`` the keyword values (the last duplicate wins); ``rest`` is the raw,
    still-escaped text after the prefix, for parsers that nest a whole description
    (``haproxy:tcp:80``).
    """

    prefix: str
    args: tuple[str, ...] = ()
    kwargs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rest: str = ""

    def __str__(self) -> str:
        return format_description(self.prefix, self.args, self.kwargs)


def _as_text(description: str | bytes) -> str:
    if isinstance(description, bytes | bytearray):
        return bytes(description).decode("utf-8", "surrogateescape")
    if isinstance(description, str):
        return description
    raise DescriptionError(
        f"an endpoint description must be str or bytes, not {type(description).__name__}"
    )


def _segments(text: str) -> list[tuple[str | None, str]]:
    """Split into ``(key or None, value)`` segments, honouring escapes and brackets."""
    segments: list[tuple[str | None, str]] = []
    key: str | None = None
    value: list[str] = []
    at_value_start = True  # a "[" only opens a bracket at the start of a value
    bracket_closed = False  # after "]", only ":" or the end may follow
    i = 0
    length = len(text)
    while i < length:
        char = text[i]
        if bracket_closed and char != _SEPARATOR:
            raise DescriptionError(
                f"unexpected {char!r} after ']' at position {i}: a bracketed value must "
                "end its segment",
                position=i,
            )
        if char == _ESCAPE:
            if i + 1 >= length:
                raise DescriptionError(
                    f"trailing backslash at position {i}: escape it as '\\\\' to mean a "
                    "literal backslash",
                    position=i,
                )
            value.append(text[i + 1])
            i += 2
            at_value_start = False
            continue
        if char == _OPEN and at_value_start:
            end = text.find(_CLOSE, i + 1)
            if end < 0:
                raise DescriptionError(
                    f"unclosed '[' at position {i}: a bracketed value such as [::1] needs its ']'",
                    position=i,
                )
            value.append(text[i + 1 : end])
            i = end + 1
            at_value_start = False
            bracket_closed = True
            continue
        if char == _SEPARATOR:
            segments.append((key, "".join(value)))
            key, value, at_value_start, bracket_closed = None, [], True, False
        elif char == _ASSIGN and key is None:
            key = "".join(value)
            value, at_value_start = [], True
        else:
            value.append(char)
            at_value_start = False
        i += 1
    segments.append((key, "".join(value)))
    return segments


def parse_description(description: str | bytes) -> Description:
    """Parse ``prefix:arg:key=value`` into a :class:`Description`.

    Raises:
        DescriptionError: for an empty description, a missing prefix, a trailing
            backslash or an unclosed ``[``.
    """
    text = _as_text(description)
    if not text.strip():
        raise DescriptionError("empty endpoint description: expected e.g. 'tcp:80'")
    segments = _segments(text)
    first_key, prefix = segments[0]
    if first_key is not None:
        raise DescriptionError(
            f"endpoint description {text!r} must start with a type such as 'tcp:', "
            f"not the keyword {first_key!r}",
            parameter=first_key,
        )
    if not prefix:
        raise DescriptionError(
            f"endpoint description {text!r} has an empty type: expected e.g. 'tcp:80'"
        )
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for key, value in segments[1:]:
        if key is None:
            args.append(value)
        else:
            kwargs.pop(key, None)  # the last duplicate wins, and keeps its place
            kwargs[key] = value
    rest = _raw_rest(text)
    return Description(prefix.lower(), tuple(args), kwargs, rest)


def _raw_rest(text: str) -> str:
    """The raw text after the first unescaped ``:``."""
    i = 0
    while i < len(text):
        if text[i] == _ESCAPE:
            i += 2
            continue
        if text[i] == _SEPARATOR:
            return text[i + 1 :]
        i += 1
    return ""


def quote_string_argument(argument: str | bytes) -> str:
    """Escape ``argument`` so that it parses back as exactly one value.

    Unlike Twisted's ``quoteStringArgument``, ``=`` and ``[`` are escaped too (so a
    positional value containing ``=`` is not read as a keyword) and ``bytes`` works.
    """
    text = _as_text(argument)
    return "".join(_ESCAPE + char if char in _MUST_QUOTE else char for char in text)


def format_description(
    prefix: str, args: Iterable[object] = (), kwargs: Mapping[str, object] | None = None
) -> str:
    """Build a description string that :func:`parse_description` reads back."""
    parts = [prefix]
    parts.extend(_format_value(str(arg)) for arg in args)
    for key, value in (kwargs or {}).items():
        parts.append(f"{quote_string_argument(key)}={_format_value(str(value))}")
    return _SEPARATOR.join(parts)


_IPV6_LITERAL = re.compile(r"[0-9A-Za-z.%_-]*:[0-9A-Za-z:.%_-]*")


def _format_value(value: str) -> str:
    # IPv6 literals read better bracketed ([::1]) than escaped (\:\:1).
    if _IPV6_LITERAL.fullmatch(value):
        return _OPEN + value + _CLOSE
    return quote_string_argument(value)
