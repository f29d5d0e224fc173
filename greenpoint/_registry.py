"""Prefix -> parser tables; ``client_from_string`` and ``server_from_string``.

A *parser* is either an object with ``parse(description) -> endpoint`` (it gets the
whole :class:`~greenpoint._description.Description`, including the raw ``rest`` for
nested descriptions), or a plain callable ``parser(*args, **kwargs) -> endpoint`` in
the style of Twisted's ``parseStreamClient``. Whatever a parser raises other than
:class:`DescriptionError` (``TypeError``, ``KeyError`` ...) is reported as a
:class:`DescriptionError` naming the prefix.

Built-in prefixes are imported on first use (``tls:`` does not import pyOpenSSL until
someone asks for it). Installed plugins are found through the entry-point group
``greenpoint.endpoints``: the entry point's name is the prefix and the object it loads
has a ``client`` and/or a ``server`` attribute, each a parser. A prefix provided by two
plugins is an error when used, never a silent pick.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import threading
from collections.abc import Callable, Sequence
from typing import Any

from greenpoint._description import Description, parse_description
from greenpoint._params import Param, bind, closest
from greenpoint.errors import DescriptionError

__all__ = [
    "ENTRY_POINT_GROUP",
    "EndpointParser",
    "client_from_string",
    "client_parsers",
    "register_client_parser",
    "register_server_parser",
    "server_from_string",
    "server_parsers",
]

ENTRY_POINT_GROUP = "greenpoint.endpoints"

# Built-in prefixes and the module whose CLIENT_PARSERS / SERVER_PARSERS hold them.
_BUILTIN_CLIENT_MODULES = {
    "tcp": "greenpoint.endpoints.tcp",
    "tcp4": "greenpoint.endpoints.tcp",
    "tcp6": "greenpoint.endpoints.tcp",
    "unix": "greenpoint.endpoints.unix",
    "ssl": "greenpoint.endpoints.tls",
    "tls": "greenpoint.endpoints.tls",
}
_BUILTIN_SERVER_MODULES = {
    "tcp": "greenpoint.endpoints.tcp",
    "tcp4": "greenpoint.endpoints.tcp",
    "tcp6": "greenpoint.endpoints.tcp",
    "unix": "greenpoint.endpoints.unix",
    "ssl": "greenpoint.endpoints.tls",
    "tls": "greenpoint.endpoints.tls",
    "fd": "greenpoint.endpoints.adopted",
    "systemd": "greenpoint.endpoints.adopted",
    "stdio": "greenpoint.endpoints.stdio",
    "haproxy": "greenpoint.endpoints.haproxy",
}


@dataclasses.dataclass(frozen=True)
class EndpointParser:
    """A prefix's declared parameters and the function that builds its endpoint."""

    prefix: str
    params: tuple[Param, ...]
    build: Callable[..., Any]
    summary: str = ""

    def parse(self, description: Description) -> Any:
        values = bind(self.prefix, description.args, description.kwargs, self.params)
        return self.build(**values)

    def __call__(self, *args: str, **kwargs: str) -> Any:
        return self.parse(Description(self.prefix, tuple(args), kwargs))


class _Table:
    def __init__(self, side: str, builtin_modules: dict[str, str]) -> None:
        self.side = side
        self.builtin_modules = builtin_modules
        self.registered: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._plugins: dict[str, list[tuple[str, Any]]] | None = None

    def register(self, prefix: str, parser: Any, replace: bool) -> None:
        key = _check_prefix(prefix)
        if not (hasattr(parser, "parse") or callable(parser)):
            raise TypeError(f"a {self.side} parser must be callable or have .parse()")
        if not replace and (key in self.registered or key in self.builtin_modules):
            raise ValueError(
                f"{self.side} prefix {key!r} is already registered; pass replace=True to replace it"
            )
        self.registered[key] = parser

    def lookup(self, prefix: str) -> Any:
        if prefix in self.registered:
            return self.registered[prefix]
        module_name = self.builtin_modules.get(prefix)
        if module_name is not None:
            module = importlib.import_module(module_name)
            table = getattr(module, f"{self.side.upper()}_PARSERS")
            return table[prefix]
        found = self.plugins().get(prefix)
        if found:
            if len(found) > 1:
                names = ", ".join(sorted(origin for origin, _ in found))
                raise DescriptionError(
                    f"{self.side} prefix {prefix!r} is provided by more than one plugin "
                    f"({names}); uninstall one or register the one you want explicitly",
                    prefix=prefix,
                )
            return found[0][1]
        known = sorted(self.prefixes())
        suggestion = closest(prefix, known)
        hint = f" did you mean {suggestion!r}?" if suggestion else ""
        raise DescriptionError(
            f"unknown {self.side} endpoint type {prefix!r}:{hint} (known: {', '.join(known)})",
            prefix=prefix,
            suggestion=suggestion,
        )

    def plugins(self) -> dict[str, list[tuple[str, Any]]]:
        with self._lock:
            if self._plugins is None:
                self._plugins = _load_plugins(self.side)
            return self._plugins

    def prefixes(self) -> set[str]:
        return set(self.registered) | set(self.builtin_modules) | set(self.plugins())


def _load_plugins(side: str) -> dict[str, list[tuple[str, Any]]]:
    found: dict[str, list[tuple[str, Any]]] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        plugin = entry.load()
        parser = getattr(plugin, side, None)
        if parser is None:
            continue
        origin = entry.dist.name if entry.dist is not None else entry.value
        found.setdefault(entry.name.lower(), []).append((origin, parser))
    return found


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix or any(c in prefix for c in ":=\\[]"):
        raise ValueError(f"an endpoint prefix must be a non-empty name, not {prefix!r}")
    return prefix.lower()


_CLIENTS = _Table("client", _BUILTIN_CLIENT_MODULES)
_SERVERS = _Table("server", _BUILTIN_SERVER_MODULES)


def register_client_parser(prefix: str, parser: Any, *, replace: bool = False) -> None:
    """Make ``client_from_string`` build endpoints for ``prefix:`` with ``parser``."""
    _CLIENTS.register(prefix, parser, replace)


def register_server_parser(prefix: str, parser: Any, *, replace: bool = False) -> None:
    """Make ``server_from_string`` build endpoints for ``prefix:`` with ``parser``."""
    _SERVERS.register(prefix, parser, replace)


def client_parsers() -> dict[str, Any]:
    """Every client prefix and its parser (built-in, registered and plugins)."""
    return {prefix: _CLIENTS.lookup(prefix) for prefix in sorted(_CLIENTS.prefixes())}


def server_parsers() -> dict[str, Any]:
    """Every server prefix and its parser (built-in, registered and plugins)."""
    return {prefix: _SERVERS.lookup(prefix) for prefix in sorted(_SERVERS.prefixes())}


def _build(table: _Table, description: str | bytes | Description) -> Any:
    parsed = description if isinstance(description, Description) else parse_description(description)
    parser = table.lookup(parsed.prefix)
    try:
        if hasattr(parser, "parse"):
            return parser.parse(parsed)
        return parser(*parsed.args, **parsed.kwargs)
    except DescriptionError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, LookupError, AttributeError) as exc:
        raise DescriptionError(
            f"{parsed.prefix}: {type(exc).__name__}: {exc}", prefix=parsed.prefix
        ) from exc


def client_from_string(description: str | bytes) -> Any:
    """Build a client endpoint from a description such as ``"tcp:example.com:80"``.

    Does no I/O: the endpoint connects when you call ``open()`` or ``connect()``.

    Raises:
        DescriptionError: naming the prefix and the parameter at fault.
    """
    return _build(_CLIENTS, description)


def server_from_string(description: str | bytes) -> Any:
    """Build a server endpoint from a description such as ``"tcp:8080"``.

    Does no I/O: the endpoint binds when you call ``bind()``, ``serve()`` or ``listen()``.

    Raises:
        DescriptionError: naming the prefix and the parameter at fault.
    """
    return _build(_SERVERS, description)


def parser_params(parser: Any) -> Sequence[Param]:
    """The declared parameters of a parser, or ``()`` for a plugin that declares none."""
    return tuple(getattr(parser, "params", ()))
