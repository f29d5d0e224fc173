"""What a description plugin needs, in one public place.

A plugin adds a prefix (``socks:``, ``myproxy:``) to :func:`~greenpoint.client_from_string`
and :func:`~greenpoint.server_from_string`. It declares its parameters with
:class:`Param` and the coercers below, wraps them with the function that builds its
endpoint in an :class:`EndpointParser`, and either registers it in the process
(:func:`register_client_parser` / :func:`register_server_parser`) or publishes it
through the ``greenpoint.endpoints`` entry-point group (:data:`ENTRY_POINT_GROUP`).
Endpoint classes subclass :class:`ClientEndpoint` (``open(timeout)``) or
:class:`ServerEndpoint` (``bind()``). docs/descriptions.md shows a whole plugin.

These names are re-exports of greenpoint's own (private) modules and stay here when
those move: import them from ``greenpoint.plugins``, never from ``greenpoint._params``
or ``greenpoint._registry``.

Coercers turn the text of one value into what ``build`` gets, and raise
``ValueError`` with a short sentence saying what was expected; greenpoint turns it
into a :class:`DescriptionError` naming the prefix and the parameter:

* :func:`text` (non-empty text), :func:`port` (0-65535), :func:`integer` ``(min, max)``,
  :func:`number` (seconds, fractions allowed), :func:`boolean` (``1/0``, ``yes/no``,
  ``true/false``, ``on/off``), :func:`octal_mode` (``660``), :func:`host` (a name or
  an address, IPv6 in brackets or not), :func:`ip_literal` (an address only) and
  :func:`choice` ``(*options)`` (one of some words, case-insensitive).

An endpoint class refuses a bad argument with :class:`FieldError` (a ``ValueError``
whose ``field`` is the argument's name) or :class:`FieldTypeError` (also a
``TypeError``); built from a description, the :class:`EndpointParser` reports it as a
``DescriptionError`` naming the key whose ``target`` is that field.
"""

from __future__ import annotations

from greenpoint._checks import FieldError, FieldTypeError
from greenpoint._description import Bracketed, Description, quote_string_argument
from greenpoint._params import (
    REQUIRED,
    Param,
    boolean,
    choice,
    host,
    integer,
    ip_literal,
    number,
    octal_mode,
    port,
    text,
)
from greenpoint._registry import (
    ENTRY_POINT_GROUP,
    EndpointParser,
    client_parsers,
    register_client_parser,
    register_server_parser,
    reset_plugin_cache,
    server_parsers,
)
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.errors import DescriptionError

__all__ = [
    "ENTRY_POINT_GROUP",
    "REQUIRED",
    "Bracketed",
    "ClientEndpoint",
    "Description",
    "DescriptionError",
    "EndpointParser",
    "FieldError",
    "FieldTypeError",
    "Param",
    "ServerEndpoint",
    "boolean",
    "choice",
    "client_parsers",
    "host",
    "integer",
    "ip_literal",
    "number",
    "octal_mode",
    "port",
    "quote_string_argument",
    "register_client_parser",
    "register_server_parser",
    "reset_plugin_cache",
    "server_parsers",
    "text",
]
