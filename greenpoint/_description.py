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
* a value that starts with ``[`` runs to its matching ``]`` with ``:`` literal inside,
  and the brackets are dropped: ``tcp:[::1]:443``, ``interface=[fe80::1%eth0]``;
  brackets nest, so a value can hold a whole description with its own brackets
  (``proxy=[tcp:[::1]:1080]``); the ``]`` must end the segment;
* a trailing ``\\`` or an unclosed ``[`` is a :class:`DescriptionError` naming the
  position, never a crash;
* :func:`quote_string_argument` escapes ``\\``, ``:``, ``=`` and ``[`` so that any
  text comes back unchanged from :func:`parse_description`;
* a wrapper's own keywords may come before a whole nested description
  (``haproxy:timeout=2:tcp:8080``): :func:`split_leading_keywords` reads them by
  these same rules, and :func:`format_description` writes the nested one as a raw
  ``tail``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any, overload

from greenpoint._params import format_value
from greenpoint.errors import DescriptionError

__all__ = [
    "Bracketed",
    "Description",
    "format_description",
    "parse_description",
    "quote_string_argument",
    "split_leading_keywords",
]

_ESCAPE = "\\"
_SEPARATOR = ":"
_ASSIGN = "="
_OPEN = "["
_CLOSE = "]"
# "=" is escaped too (Twisted leaves it, so a positional "a=b" comes back as a keyword)
# and "[" (so a value that starts with one is not read as a bracketed literal).
_MUST_QUOTE = frozenset(_ESCAPE + _SEPARATOR + _ASSIGN + _OPEN)


@dataclasses.dataclass(frozen=True)
class Description:
    """A parsed description: ``prefix:arg:arg:key=value``.

    ``prefix`` is lower-cased; ``args`` are the positional values in order;
    ``kwargs`` the keyword values (the last duplicate wins); ``rest`` is the raw,
    still-escaped text after the prefix, for parsers that nest a whole description
    (``haproxy:tcp:80``). When ``rest`` is not given it is built from ``args`` and
    ``kwargs``. Two descriptions are equal when prefix, args and kwargs are; ``rest``
    is only a spelling and does not take part.

    ``str(description)`` is a description that parses back to an equal one.
    """

    prefix: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    rest: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Normalise what callers pass (lists, mixed-case prefixes) so equality means
        # "same description", and keep kwargs a private copy.
        object.__setattr__(self, "prefix", self.prefix.lower())
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        if self.rest is None:
            object.__setattr__(self, "rest", _format_parts(self.args, self.kwargs))

    def __hash__(self) -> int:
        return hash((self.prefix, self.args, tuple(sorted(self.kwargs.items()))))

    def __str__(self) -> str:
        return format_description(self.prefix, self.args, self.kwargs)


def _as_text(description: object) -> str:
    if isinstance(description, bytes | bytearray | memoryview):
        return bytes(description).decode("utf-8", "surrogateescape")
    if isinstance(description, str):
        return description
    raise DescriptionError(
        f"an endpoint description must be str or bytes, not {type(description).__name__}"
    )


@dataclasses.dataclass
class _Tokens:
    segments: list[tuple[str | None, str]]  # (key or None, value), escapes resolved
    ends: list[int]  # per segment, the index of the separator ending it, or len(text)

    @property
    def rest_start(self) -> int:
        """The index just after the first separator, or ``len(text)``."""
        return self.ends[0] + 1 if len(self.ends) > 1 else self.ends[0]


def _tokenize(text: str) -> _Tokens:
    """Split into ``(key or None, value)`` segments, honouring escapes and brackets."""
    segments: list[tuple[str | None, str]] = []
    ends: list[int] = []
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
                f"unexpected {char!r} after ']' at position {i} of {text!r}: a bracketed "
                "value such as [::1] must end its segment",
                position=i,
            )
        if char == _ESCAPE:
            if i + 1 >= length:
                raise DescriptionError(
                    f"trailing backslash at position {i} of {text!r}: write '\\\\' for a "
                    "literal backslash",
                    position=i,
                )
            value.append(text[i + 1])
            i += 2
            at_value_start = False
            continue
        if char == _OPEN and at_value_start:
            end = _matching_close(text, i)
            if end < 0:
                raise DescriptionError(
                    f"unclosed '[' at position {i} of {text!r}: a bracketed value such as "
                    "[::1] needs its ']'",
                    position=i,
                )
            value.append(text[i + 1 : end])
            i = end + 1
            at_value_start = False
            bracket_closed = True
            continue
        if char == _SEPARATOR:
            segments.append((key, "".join(value)))
            ends.append(i)
            key, value, at_value_start, bracket_closed = None, [], True, False
        elif char == _ASSIGN and key is None:
            key = "".join(value)
            value, at_value_start = [], True
        else:
            value.append(char)
            at_value_start = False
        i += 1
    segments.append((key, "".join(value)))
    ends.append(length)
    return _Tokens(segments, ends)


def _matching_close(text: str, start: int) -> int:
    """The index of the ``]`` that closes the ``[`` at ``start``, or -1.

    Brackets nest, so a whole description can sit in one value
    (``endpoint=[socks5:h:443:proxy=[tcp:[::1]:1080]]``); escaped characters
    (``\\]``) do not count. The inside is kept raw, escapes and all, for the
    nested description's own parse.
    """
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char == _ESCAPE:
            i += 2
            continue
        if char == _OPEN:
            depth += 1
        elif char == _CLOSE:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def parse_description(description: str | bytes) -> Description:
    """Parse ``prefix:arg:key=value`` into a :class:`Description`.

    Pure: no registry lookup, no I/O. Positions in error messages count characters
    of the (decoded) text from 0.

    Raises:
        DescriptionError: for a description that is empty, not text, has no prefix,
            ends in a lone backslash, or has an unclosed or misplaced ``[...]``.
    """
    text = _as_text(description)
    if not text.strip():
        raise DescriptionError("empty endpoint description: expected e.g. 'tcp:80'")
    tokens = _tokenize(text)
    first_key, prefix = tokens.segments[0]
    if first_key is not None:
        raise DescriptionError(
            f"endpoint description {text!r} must start with a type such as 'tcp:', "
            f"not the keyword {first_key + '=' + prefix!r}",
            parameter=first_key,
            position=0,
        )
    if not prefix.strip():
        raise DescriptionError(
            f"endpoint description {text!r} has an empty type: expected e.g. 'tcp:80'",
            position=0,
        )
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for key, value in tokens.segments[1:]:
        if key is None:
            args.append(value)
        else:
            kwargs.pop(key, None)  # the last duplicate wins, in its own place
            kwargs[key] = value
    return Description(prefix, tuple(args), kwargs, text[tokens.rest_start :])


def split_leading_keywords(rest: str) -> tuple[dict[str, str], str]:
    """The leading ``key=value`` segments of ``rest``, and the raw text after them.

    For a wrapper whose own keywords come before a whole nested description
    (``haproxy:timeout=2:tcp:8080``, where ``rest`` is ``timeout=2:tcp:8080``): the
    first positional segment (the nested prefix) starts the rest, which is kept
    raw, escapes and brackets and all, for its own parse. The segments are read by
    the grammar's own rules, so a bracketed or escaped ``:`` never ends one.

    Raises:
        DescriptionError: ``rest`` does not tokenize (a lone ``\\``, an unclosed ``[``).
    """
    tokens = _tokenize(rest)
    keywords: dict[str, str] = {}
    start = 0
    for (key, value), end in zip(tokens.segments, tokens.ends, strict=True):
        if key is None:
            return keywords, rest[start:]
        keywords.pop(key, None)  # the last duplicate wins, as in parse_description
        keywords[key] = value
        start = end + 1
    return keywords, ""


@overload
def quote_string_argument(argument: str) -> str: ...
@overload
def quote_string_argument(argument: bytes) -> bytes: ...
def quote_string_argument(argument: str | bytes) -> str | bytes:
    """Escape ``argument`` so that it parses back as exactly one value, unchanged.

    Unlike Twisted's ``quoteStringArgument``, ``=`` and ``[`` are escaped too (so a
    positional value containing ``=`` is not read as a keyword) and ``bytes`` works:
    bytes in, bytes out, so that ``b"unix:" + quote_string_argument(path)`` works.

    Raises:
        DescriptionError: for anything but ``str`` or ``bytes``.
    """
    text = _as_text(argument)
    quoted = "".join(_ESCAPE + char if char in _MUST_QUOTE else char for char in text)
    if isinstance(argument, str):
        return quoted
    return quoted.encode("utf-8", "surrogateescape")


def format_description(
    prefix: str,
    args: Iterable[object] = (),
    kwargs: Mapping[str, object] | None = None,
    tail: str | None = None,
) -> str:
    """Build a description string that :func:`parse_description` reads back.

    ``tail``, when given, is a whole nested description appended raw after the keys
    (``haproxy:timeout=2:`` + ``tcp:8080``; see :func:`split_leading_keywords`).

    Values are turned into text as :func:`~greenpoint._params.format_value` writes
    them (``str`` for text, ``1``/``0`` for booleans, ``2.5`` and ``30`` for numbers;
    ``bytes`` are decoded); IPv6-looking values are bracketed (``[::1]``) rather than escaped, everything else is quoted
    with :func:`quote_string_argument`.
    """
    args = tuple(args)
    kwargs = kwargs or {}
    parts = [quote_string_argument(_as_text(prefix))]
    if args or kwargs:
        parts.append(_format_parts(args, kwargs))
    if tail is not None:
        parts.append(tail)
    return _SEPARATOR.join(parts)


def _format_parts(args: Iterable[object], kwargs: Mapping[str, object]) -> str:
    parts = [_format_value(arg) for arg in args]
    for key, value in kwargs.items():
        parts.append(f"{quote_string_argument(_as_text(key))}={_format_value(value)}")
    return _SEPARATOR.join(parts)


# What a bracketed value may hold when formatting: IPv6 literals with an optional
# zone (RFC 6874 style "%eth0"), and any other colon-bearing token of the same
# characters. No "]", so the bracket cannot end early.
_BRACKETABLE = re.compile(r"[0-9A-Za-z.%_-]*:[0-9A-Za-z:.%_-]*")


class Bracketed(str):
    """A value written in brackets by :func:`format_description`: a nested description.

    ``proxy=[tcp:127.0.0.1:1080]`` reads better than ``proxy=tcp\\:127.0.0.1\\:1080``;
    a value whose brackets do not balance is quoted instead.
    """


def _balanced(text: str) -> bool:
    return _matching_close(_OPEN + text + _CLOSE, 0) == len(text) + 1


def _format_value(value: object) -> str:
    if isinstance(value, Bracketed) and _balanced(value):
        return _OPEN + value + _CLOSE
    text = _as_text(value) if isinstance(value, bytes | bytearray) else format_value(value)
    # IPv6 literals read better bracketed ([::1]) than escaped (\:\:1).
    if _BRACKETABLE.fullmatch(text):
        return _OPEN + text + _CLOSE
    return quote_string_argument(text)
