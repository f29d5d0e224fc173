"""greenpoint: Twisted's endpoints on gevent.

One string says where and how to connect or listen (``tcp:example.com:80``,
``tls:example.com:443``, ``unix:/run/app.sock``, ``systemd:domain=INET:index=0``);
``open()``/``connect()`` and ``bind()``/``listen()`` block only the calling greenlet.

This module is the public surface: it re-exports names and holds no logic.
"""

from greenpoint._address import (
    HostnameAddress,
    IPv4Address,
    IPv6Address,
    PipeAddress,
    UNIXAddress,
)
from greenpoint._description import (
    Description,
    parse_description,
    quote_string_argument,
)
from greenpoint._registry import (
    client_from_string,
    register_client_parser,
    register_server_parser,
    server_from_string,
)
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.endpoints.tls import (
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    wrap_client_tls,
    wrap_server_tls,
    wrapClientTLS,
)
from greenpoint.errors import (
    ConnectError,
    ConnectionDone,
    ConnectionLost,
    ConnectTimeoutError,
    DescriptionError,
    DNSLookupError,
    GreenpointError,
)

# Twisted's spellings, for porting.
clientFromString = client_from_string
serverFromString = server_from_string
quoteStringArgument = quote_string_argument

__version__ = "0.1.0"

__all__ = [
    "ClientEndpoint",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionDone",
    "ConnectionLost",
    "DNSLookupError",
    "Description",
    "DescriptionError",
    "GreenpointError",
    "HostnameAddress",
    "IPv4Address",
    "IPv6Address",
    "PipeAddress",
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "ServerEndpoint",
    "UNIXAddress",
    "clientFromString",
    "client_from_string",
    "parse_description",
    "quoteStringArgument",
    "quote_string_argument",
    "register_client_parser",
    "register_server_parser",
    "serverFromString",
    "server_from_string",
    "wrapClientTLS",
    "wrap_client_tls",
    "wrap_server_tls",
]
