"""Prefix -> parser tables; ``client_from_string`` and ``server_from_string``.

A *parser* is either an object with ``parse(description) -> endpoint`` (it gets the
whole :class:`~greenpoint._description.Description`, including the raw ``rest`` for
nested descriptions), or a plain callable ``parser(*args, **kwargs) -> endpoint`` in
the style of Twisted's ``parseStreamClient``. Whatever a parser raises other than
:class:`DescriptionError` (``TypeError``, ``KeyError`` ...) is reported as a
:class:`DescriptionError` naming the prefix.

A prefix is looked up, in order, among parsers registered in this process
(``register_client_parser``), the built-ins, and installed plugins.

Built-in prefixes are imported on first use (``tls:`` does not import pyOpenSSL until
someone asks for it). Installed plugins are found through the entry-point group
``greenpoint.endpoints``: the entry point's name is the prefix and the object it loads
has a ``client`` and/or a ``server`` attribute, each a parser. Only the plugins for
the prefix asked for are imported. A prefix that two plugins provide is an error when
used, naming both, never a silent pick. Entry points are read once; call
:func:`reset_plugin_cache` after installing a plugin into a running process.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from greenpoint._checks import FieldError
from greenpoint._description import Description, parse_description
from greenpoint._params import Param, bind, closest
from greenpoint.errors import DescriptionError

if TYPE_CHECKING:
    from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "EndpointParser",
    "client_from_string",
    "client_parsers",
    "register_client_parser",
    "register_server_parser",
    "reset_plugin_cache",
    "server_from_string",
    "server_parsers",
]

ENTRY_POINT_GROUP = "greenpoint.endpoints"

# Built-in prefixes and the module whose CLIENT_PARSERS / SERVER_PARSERS hold them.
_BUILTIN_CLIENT_MODULES = {
    "socks5": "greenpoint.endpoints.proxy",
    "socks4a": "greenpoint.endpoints.proxy",
    "httpconnect": "greenpoint.endpoints.proxy",
    "envproxy": "greenpoint.endpoints.envproxy",
    "tcp": "greenpoint.endpoints.tcp",
    "tcp4": "greenpoint.endpoints.tcp",
    "tcp6": "greenpoint.endpoints.tcp",
    "unix": "greenpoint.endpoints.unix",
    "ssl": "greenpoint.endpoints.tls",
    "tls": "greenpoint.endpoints.tls",
    "memory": "greenpoint.endpoints.memory",
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
    "memory": "greenpoint.endpoints.memory",
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
        try:
            return self.build(**values)
        except FieldError as exc:
            # The endpoint's constructor refused a value: name the key it came from.
            key = self.key_for(exc.field)
            raise DescriptionError(
                f"{self.prefix}: bad {key}: {exc}", prefix=self.prefix, parameter=key
            ) from exc

    def key_for(self, field: str) -> str:
        """The description key of a constructor argument (``bind_address`` ->
        ``bindAddress``); ``field`` itself when no parameter declares it."""
        for param in self.params:
            if field in (param.keyword, param.name):
                return param.name
        return field

    def __call__(self, *args: str, **kwargs: str) -> Any:
        return self.parse(Description(self.prefix, tuple(args), kwargs))


class _Table:
    """One side's prefixes: registered parsers, built-in modules, plugins."""

    def __init__(self, side: str, builtin_modules: dict[str, str]) -> None:
        self.side = side
        self.builtin_modules = builtin_modules
        self.registered: dict[str, Any] = {}
        self.other: _Table | None = None  # the other side, for "that is a server type"

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
        """The parser for ``prefix`` (lower-case), or a :class:`DescriptionError`."""
        if prefix in self.registered:
            return self.registered[prefix]
        module_name = self.builtin_modules.get(prefix)
        if module_name is not None:
            return self._builtin(module_name, prefix)
        found = self._plugins(prefix)
        if len(found) > 1:
            names = " and ".join(sorted(origin for origin, _ in found))
            raise DescriptionError(
                f"{self.side} endpoint type {prefix!r} is provided by more than one plugin "
                f"({names}); uninstall one, or choose one with "
                f"register_{self.side}_parser({prefix!r}, ...)",
                prefix=prefix,
            )
        if found:
            return found[0][1]
        entries = _plugin_entries().get(prefix)
        if entries:
            origins = " and ".join(_origin(entry) for entry in entries)
            raise DescriptionError(
                f"endpoint type {prefix!r} (from {origins}) has no {self.side} parser",
                prefix=prefix,
            )
        raise self._unknown(prefix)

    def _builtin(self, module_name: str, prefix: str) -> Any:
        module = importlib.import_module(module_name)
        table = getattr(module, f"{self.side.upper()}_PARSERS", {})
        if prefix not in table:
            # The module map above and the module disagree: a greenpoint bug.
            raise LookupError(f"{module_name} defines no {self.side} parser for {prefix!r}")
        return table[prefix]

    def _plugins(self, prefix: str) -> list[tuple[str, Any]]:
        found = []
        for entry in _plugin_entries().get(prefix, ()):
            parser = getattr(_load_plugin(entry, prefix), self.side, None)
            if parser is not None:
                found.append((_origin(entry), parser))
        return found

    def _unknown(self, prefix: str) -> DescriptionError:
        known = sorted(self.prefixes() - {prefix})
        suggestion = closest(prefix, known)
        other = self.other.prefixes() if self.other is not None else set()
        if suggestion:
            hint = f": did you mean {suggestion!r}?"
        elif self.other is not None and prefix in other:
            hint = f": {prefix!r} is a {self.other.side} type, not a {self.side} one"
        else:
            hint = ""
        return DescriptionError(
            f"unknown {self.side} endpoint type {prefix!r}{hint} (known: {', '.join(known)})",
            prefix=prefix,
            suggestion=suggestion,
        )

    def prefixes(self) -> set[str]:
        """Every prefix this side might serve (plugins are listed without loading)."""
        return set(self.registered) | set(self.builtin_modules) | set(_plugin_entries())

    def parsers(self) -> dict[str, Any]:
        """Every usable prefix and its parser; loads built-ins and plugins."""
        result = {}
        for prefix in sorted(self.prefixes()):
            if prefix in self.registered or prefix in self.builtin_modules:
                result[prefix] = self.lookup(prefix)
            elif self._plugins(prefix):
                result[prefix] = self.lookup(prefix)  # raises on a conflict
        return result


# Plugin discovery, shared by both sides: entry points by lower-case name, read once.
_plugin_lock = threading.Lock()
_plugin_cache: dict[str, list[importlib.metadata.EntryPoint]] | None = None
_loaded: dict[tuple[str, str, str], Any] = {}


def _plugin_entries() -> dict[str, list[importlib.metadata.EntryPoint]]:
    global _plugin_cache
    with _plugin_lock:
        if _plugin_cache is None:
            entries: dict[str, list[importlib.metadata.EntryPoint]] = {}
            for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                entries.setdefault(entry.name.lower(), []).append(entry)
            _plugin_cache = entries
        return _plugin_cache


def _load_plugin(entry: importlib.metadata.EntryPoint, prefix: str) -> Any:
    key = (entry.name, entry.value, _origin(entry))
    if key not in _loaded:
        try:
            _loaded[key] = entry.load()
        except Exception as exc:
            raise DescriptionError(
                f"the plugin for endpoint type {prefix!r} ({_origin(entry)}: "
                f"{entry.value}) failed to load: {type(exc).__name__}: {exc}",
                prefix=prefix,
            ) from exc
    return _loaded[key]


def _origin(entry: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return dist.name if dist is not None else entry.value


def reset_plugin_cache() -> None:
    """Forget discovered and loaded plugins; the next lookup reads entry points again.

    For a process that installs a plugin while running, and for tests.
    """
    global _plugin_cache
    with _plugin_lock:
        _plugin_cache = None
        _loaded.clear()


_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]*")


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"an endpoint prefix is a name such as 'tcp' or 'my-proxy' (a letter, then "
            f"letters, digits, '_', '.', '+' or '-'), not {prefix!r}"
        )
    return prefix.lower()


_CLIENTS = _Table("client", _BUILTIN_CLIENT_MODULES)
_SERVERS = _Table("server", _BUILTIN_SERVER_MODULES)
_CLIENTS.other, _SERVERS.other = _SERVERS, _CLIENTS


def register_client_parser(prefix: str, parser: Any, *, replace: bool = False) -> None:
    """Make ``client_from_string`` build endpoints for ``prefix:`` with ``parser``."""
    _CLIENTS.register(prefix, parser, replace)


def register_server_parser(prefix: str, parser: Any, *, replace: bool = False) -> None:
    """Make ``server_from_string`` build endpoints for ``prefix:`` with ``parser``."""
    _SERVERS.register(prefix, parser, replace)


def client_parsers() -> dict[str, Any]:
    """Every client prefix and its parser (built-in, registered and plugins)."""
    return _CLIENTS.parsers()


def server_parsers() -> dict[str, Any]:
    """Every server prefix and its parser (built-in, registered and plugins)."""
    return _SERVERS.parsers()


def _build(table: _Table, description: str | bytes | Description) -> Any:
    parsed = description if isinstance(description, Description) else parse_description(description)
    parser = table.lookup(parsed.prefix)
    try:
        if hasattr(parser, "parse"):
            return parser.parse(parsed)
        return parser(*parsed.args, **parsed.kwargs)
    except DescriptionError:
        raise
    except (TypeError, ValueError, LookupError, AttributeError, ArithmeticError) as exc:
        raise DescriptionError(
            f"{parsed.prefix}: {type(exc).__name__}: {exc}", prefix=parsed.prefix
        ) from exc


def client_from_string(description: str | bytes) -> ClientEndpoint:
    """Build a client endpoint from a description such as ``"tcp:example.com:80"``.

    Does no I/O: the endpoint connects when you call ``open()`` or ``connect()``.

    Raises:
        DescriptionError: naming the prefix and the parameter at fault.
    """
    endpoint: ClientEndpoint = _build(_CLIENTS, description)  # whatever the parser built
    return endpoint


def server_from_string(description: str | bytes) -> ServerEndpoint:
    """Build a server endpoint from a description such as ``"tcp:8080"``.

    Does no I/O: the endpoint binds when you call ``bind()``, ``serve()`` or ``listen()``.

    Raises:
        DescriptionError: naming the prefix and the parameter at fault.
    """
    endpoint: ServerEndpoint = _build(_SERVERS, description)  # whatever the parser built
    return endpoint


def builtin_params(side: str, prefix: str) -> tuple[Param, ...]:
    """The ``Param`` table of a built-in ``side`` ("client"/"server") ``prefix``.

    Raises:
        NotImplementedError: no such built-in prefix (an endpoint of a plugin
            writes its own ``description_parts``).
    """
    table = _CLIENTS if side == "client" else _SERVERS
    module = table.builtin_modules.get(prefix)
    if module is None:
        raise NotImplementedError(
            f"no built-in {side} prefix {prefix!r}: its endpoints need their own "
            "description_parts()"
        )
    return tuple(parser_params(table._builtin(module, prefix)))


def parser_params(parser: Any) -> Sequence[Param]:
    """The declared parameters of a parser, or ``()`` for a plugin that declares none."""
    return tuple(getattr(parser, "params", ()))
