"""What a description means, key by key; and the table of every built-in prefix.

``greenpoint check`` prints :func:`format_explanation` of :func:`explain`; the
README's prefix table is :func:`prefix_table`. Both read the ``Param`` declarations
that the parsers themselves use, so neither can drift from what is accepted.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from greenpoint._description import parse_description
from greenpoint._params import REQUIRED, Param, bind, file_path
from greenpoint._redact import REDACTED, redact_description
from greenpoint._registry import _CLIENTS, _SERVERS, _build, parser_params
from greenpoint._tls_verify import is_ip_literal
from greenpoint.errors import DescriptionError

__all__ = [
    "Explanation",
    "KeyValue",
    "explain",
    "explain_either",
    "format_explanation",
    "format_value",
    "prefix_table",
]

SIDES = ("client", "server")
_TABLES = {"client": _CLIENTS, "server": _SERVERS}

# Prefixes whose shape the parameter list cannot say: they wrap a whole description.
_WRAPPER_FORMS = {
    ("server", "haproxy"): "haproxy:[KEY=VALUE:]...SERVER",
    ("client", "socks5"): "socks5:HOST:PORT:proxy=[CLIENT]",
    ("client", "socks4a"): "socks4a:HOST:PORT:proxy=[CLIENT]",
    ("client", "httpconnect"): "httpconnect:HOST:PORT:proxy=[CLIENT]",
}


@dataclasses.dataclass(frozen=True)
class KeyValue:
    """One parameter of a parsed description: the value in effect and its default."""

    name: str
    value: str
    default: str
    given: bool
    help: str = ""
    missing_file: bool = False  # a path the endpoint will read, absent now


@dataclasses.dataclass(frozen=True)
class Explanation:
    """What one description means on one side (client or server)."""

    side: str
    text: str
    endpoint: Any
    canonical: str | None
    summary: str
    keys: tuple[KeyValue, ...]
    wrapped: Explanation | None = None


def format_value(param: Param, value: Any) -> str:
    """A parameter value as ``check`` and the README show it: as a description writes
    it (:meth:`Param.format`), with ``required``, ``none`` and ``""`` spelt out."""
    if value is REQUIRED:
        return "required"
    if value is None:
        return "none"
    text = param.format(value)
    if text == "":
        return '""'
    if ":" in text and is_ip_literal(text):
        return f"[{text}]"  # pasted back as one value; a bare :: reads as three
    return text


def explain(text: str | bytes, side: str) -> Explanation:
    """Parse ``text`` as a ``side`` ("client" or "server") description and explain it.

    Raises:
        DescriptionError: the description is not valid on that side.
    """
    table = _TABLES[side]
    description = parse_description(text)
    parser = table.lookup(description.prefix)
    endpoint = _build(table, description)
    canonical = _canonical(endpoint)
    params = tuple(parser_params(parser))
    keys = _key_values(description.prefix, description.args, description.kwargs, params)
    if keys is None:
        keys = _keys_from_endpoint(endpoint, params) or ()
    wrapped = None
    inner = getattr(endpoint, "endpoint", None)
    if inner is None:
        inner = getattr(endpoint, "proxy", None)  # socks5:, socks4a:, httpconnect:
    inner_text = _canonical(inner) if inner is not None else None
    if inner_text is not None:
        try:
            wrapped = explain(inner_text, side)
        except DescriptionError:
            wrapped = None
    return Explanation(
        side=side,
        text=text if isinstance(text, str) else text.decode("utf-8", "surrogateescape"),
        endpoint=endpoint,
        canonical=canonical,
        summary=getattr(parser, "summary", "") or "",
        keys=keys,
        wrapped=wrapped,
    )


def explain_either(text: str | bytes, sides: Sequence[str] = SIDES) -> list[Explanation]:
    """Explain ``text`` on every side in ``sides`` where it is valid.

    Raises:
        DescriptionError: valid on none of them. With one side, that side's error;
            with both, the error of the side that knows the prefix, or both
            messages joined when both know it.
    """
    found: list[Explanation] = []
    errors: dict[str, DescriptionError] = {}
    for side in sides:
        try:
            found.append(explain(text, side))
        except DescriptionError as exc:
            errors[side] = exc
    if found:
        return found
    if len(errors) == 1:
        raise next(iter(errors.values()))
    prefix = next((exc.prefix for exc in errors.values() if exc.prefix), None)
    knowing = [side for side in errors if prefix and prefix in _TABLES[side].prefixes()]
    if len(knowing) == 1:
        raise errors[knowing[0]]
    if not knowing:  # a prefix nobody knows: the side that knows more names says it
        raise errors[sides[-1]]
    message = "; ".join(f"as a {side}: {exc}" for side, exc in errors.items())
    raise DescriptionError(message, prefix=prefix)


def _canonical(endpoint: Any) -> str | None:
    from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint

    if not isinstance(endpoint, ClientEndpoint | ServerEndpoint):
        return None
    try:
        return str(endpoint)
    except Exception:  # an endpoint with no description form (a process)
        return None


def _key_values(
    prefix: str, args: Sequence[Any], kwargs: Mapping[str, Any], params: Sequence[Param]
) -> tuple[KeyValue, ...] | None:
    """Each declared key with its value in effect; ``None`` if they do not bind."""
    if not params:
        return ()
    try:
        values = bind(
            prefix, [str(a) for a in args], {k: str(v) for k, v in kwargs.items()}, params
        )
    except DescriptionError:
        return None
    # Positional values fill the positional parameters not named by keyword (bind).
    open_slots = [param for param in params if param.positional and param.name not in kwargs]
    given = {param.name for param in open_slots[: len(args)]} | set(kwargs)
    return tuple(
        KeyValue(
            name=param.name,
            value=(
                param.shown_default
                if param.shown_default and values[param.keyword] is None
                else _shown_value(param, values[param.keyword])
            ),
            default=param.shown_default or format_value(param, param.default),
            given=param.name in given,
            help=param.help,
            missing_file=_missing_file(param, values[param.keyword]),
        )
        for param in params
    )


def _shown_value(param: Param, value: Any) -> str:
    if param.secret and value is not None:
        return REDACTED  # a password is never printed
    # A nested description (tls:'s endpoint=) may hold one too.
    return redact_description(format_value(param, value))


def _missing_file(param: Param, value: Any) -> bool:
    # Checked here, not by the parser: a description may be written before its files.
    return param.coerce is file_path and isinstance(value, str) and not os.path.exists(value)


def _keys_from_endpoint(endpoint: Any, params: Sequence[Param]) -> tuple[KeyValue, ...] | None:
    # Wrappers (haproxy:) take the rest of the text as another description, so the
    # raw values do not bind; the endpoint's own description parts always do.
    try:
        prefix, args, kwargs = endpoint.description_parts()
    except Exception:
        return None
    return _key_values(prefix, args, dict(kwargs), params)


def format_explanation(explanation: Explanation, indent: str = "") -> str:
    """Lines for a terminal: the endpoint, then one line per key."""
    endpoint = explanation.endpoint
    lines = [
        f"{indent}{explanation.side}: {type(endpoint).__name__}"
        + (f" — {explanation.summary}" if explanation.summary else "")
    ]
    if explanation.canonical is not None:
        lines.append(f"{indent}  canonical: {explanation.canonical}")
    width = max((len(key.name) for key in explanation.keys), default=0)
    value_width = max((len(key.value) for key in explanation.keys), default=0)
    for key in explanation.keys:
        if key.default == "required":
            note = "required"
        elif key.given and key.value != key.default:
            note = f"default {key.default}"
        else:
            note = "default"
        lines.append(f"{indent}  {key.name:<{width}}  {key.value:<{value_width}}  ({note})")
        if key.given and key.help:  # what a key set on purpose does, under it
            lines.append(f"{indent}  {'':<{width}}  {key.help}")
        if key.missing_file:
            lines.append(f"{indent}  {'':<{width}}  warning: no such file or directory")
    if explanation.wrapped is not None:
        lines.append(f"{indent}  wraps:")
        lines.append(format_explanation(explanation.wrapped, indent + "    "))
    return "\n".join(lines)


# -- the README table ------------------------------------------------------------


def _builtin_parsers(side: str) -> dict[str, Any]:
    table = _TABLES[side]
    return {
        prefix: table._builtin(module, prefix)
        for prefix, module in sorted(table.builtin_modules.items())
    }


def _form(side: str, prefix: str, params: Sequence[Param]) -> str:
    if (side, prefix) in _WRAPPER_FORMS:
        return _WRAPPER_FORMS[(side, prefix)]
    text = prefix
    for param in params:
        if param.positional and param.in_form:
            placeholder = param.name.upper()
            text += f":{placeholder}" if param.required else f"[:{placeholder}]"
        elif param.required:
            text += f":{param.name}={param.name.upper()}"
    return text


def _optional_keys(params: Sequence[Param]) -> str:
    keys = [
        f"`{param.name}={param.shown_default or format_value(param, param.default)}`"
        for param in params
        if not param.required
    ]
    return ", ".join(keys) or "none"


def prefix_table() -> str:
    """Markdown tables of every built-in prefix, client then server, with defaults."""
    out: list[str] = []
    for side in SIDES:
        out.append(f"| {side.capitalize()} description | Optional keys and defaults | What it is |")
        out.append("|---|---|---|")
        for prefix, parser in _builtin_parsers(side).items():
            params = tuple(parser_params(parser))
            summary = (getattr(parser, "summary", "") or "").replace("|", "\\|")
            out.append(
                f"| `{_form(side, prefix, params)}` | {_optional_keys(params)} | {summary} |"
            )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
