"""greenpoint: Twisted's endpoints on gevent.

One string says where and how to connect or listen (``tcp:example.com:80``,
``tls:example.com:443``, ``unix:/run/app.sock``, ``systemd:domain=INET:index=0``);
``open()``/``connect()`` and ``bind()``/``listen()`` block only the calling greenlet.

This module is the public surface: it re-exports names and holds no logic.

Map of the modules, by layer, bottom up; at module level a module imports only from
its own layer and those before it:

* Pure core, no I/O: ``errors``, ``_description``, ``_params``, ``_hostnames``, ``_address``,
  ``_backoff``, ``_interleave``, ``_systemd``, ``_proxy_header*``, ``_socks``, ``_limits``.
* I/O edge (sockets, pipes, TLS): ``_socket``, ``_accept``, ``_happy_eyeballs``, ``_tls_*``,
  ``tls``, ``_sni``, ``_proxied_stream``, ``_pipe_stream``, ``_process_stream``.
* Servers: ``_serve`` (``ListeningPort``: the accept loop, limits, graceful stop).
* Protocol layer (Twisted's API): ``_protocol``, ``_connect``, ``_transport``, ``_reactor_time``.
* Endpoints: ``endpoints/``, ``_registry`` (``client_from_string``), ``plugins``.
* On top of endpoints: ``wsgi``, ``reconnect``, ``testing``; and ``cli/``, the ``greenpoint``
  command line, an application that nothing in the library imports.
"""

from greenpoint import proxy_protocol
from greenpoint._address import (
    HostnameAddress,
    IPv4Address,
    IPv6Address,
    PipeAddress,
    UNIXAddress,
)
from greenpoint._backoff import Backoff
from greenpoint._connect import connect_protocol
from greenpoint._contracts import Listener, PreparingListener, Stream
from greenpoint._description import (
    Description,
    parse_description,
    quote_string_argument,
)
from greenpoint._process_stream import StandardErrorBehavior
from greenpoint._protocol import ClientFactory, Factory, Protocol
from greenpoint._reactor_time import clock
from greenpoint._registry import (
    client_from_string,
    register_client_parser,
    register_server_parser,
    server_from_string,
)
from greenpoint._serve import ListeningPort
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.endpoints.adopted import AdoptedStreamServerEndpoint
from greenpoint.endpoints.envproxy import EnvironmentProxyEndpoint, client_from_proxy_environment
from greenpoint.endpoints.haproxy import (
    HAProxyClientEndpoint,
    HAProxyServerEndpoint,
    wrap_client_haproxy,
    wrap_haproxy,
    wrap_haproxy_client,
    wrap_server_haproxy,
)
from greenpoint.endpoints.hostname import ConnectInfo, HostnameEndpoint
from greenpoint.endpoints.process import ProcessEndpoint
from greenpoint.endpoints.proxy import (
    HTTPConnectClientEndpoint,
    SOCKS4aClientEndpoint,
    SOCKS5ClientEndpoint,
)
from greenpoint.endpoints.stdio import StandardIOEndpoint
from greenpoint.endpoints.tcp import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    TCPOptions,
)
from greenpoint.endpoints.tls import (
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    wrap_client_tls,
    wrap_server_tls,
    wrapClientTLS,
    wrapServerTLS,
)
from greenpoint.endpoints.unix import UNIXClientEndpoint, UNIXServerEndpoint
from greenpoint.errors import (
    AlreadyListenedError,
    Attempt,
    ConnectCancelledError,
    ConnectError,
    ConnectionClosed,
    ConnectionDone,
    ConnectionLost,
    ConnectRefusedError,
    ConnectTimeoutError,
    DescriptionError,
    DNSLookupError,
    GreenpointError,
    IdleTimeoutError,
    ListenError,
    NoProtocolError,
    ProcessTerminated,
    ProxyError,
    ProxyHeaderError,
    TLSError,
    TLSVerificationError,
)
from greenpoint.reconnect import ReconnectingClient, ReconnectingStream

# Endpoint classes report the module users import them from, not the private one
# that defines them: it is what reprs, tracebacks and generated docs show.
for _class in (ClientEndpoint, ServerEndpoint):
    for _name, _value in list(globals().items()):
        if isinstance(_value, type) and issubclass(_value, _class) and not _name.startswith("_"):
            _value.__module__ = __name__
del _class, _name, _value

# Twisted's spellings, for porting.
clientFromString = client_from_string
connectProtocol = connect_protocol
serverFromString = server_from_string
quoteStringArgument = quote_string_argument
proxyEndpoint = wrap_haproxy

__version__ = "0.1.0"

# Moved to greenpoint.proxy_protocol; still importable from here, for compatibility.
_MOVED = {
    name: "greenpoint.proxy_protocol"
    for name in (
        "ProxiedStream",
        "ProxyHeader",
        "ProxyHeaderParser",
        "ProxyTLV",
        "SSLInfo",
        "encode_proxy_header",
    )
}


def __getattr__(name: str) -> object:
    if name in _MOVED:
        return getattr(proxy_protocol, name)
    raise AttributeError(f"module 'greenpoint' has no attribute {name!r}")


__all__ = [
    "AdoptedStreamServerEndpoint",
    "AlreadyListenedError",
    "Attempt",
    "Backoff",
    "ClientEndpoint",
    "ClientFactory",
    "ConnectCancelledError",
    "ConnectError",
    "ConnectInfo",
    "ConnectRefusedError",
    "ConnectTimeoutError",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "DNSLookupError",
    "Description",
    "DescriptionError",
    "EnvironmentProxyEndpoint",
    "Factory",
    "GreenpointError",
    "HAProxyClientEndpoint",
    "HAProxyServerEndpoint",
    "HTTPConnectClientEndpoint",
    "HostnameAddress",
    "HostnameEndpoint",
    "IPv4Address",
    "IPv6Address",
    "IdleTimeoutError",
    "ListenError",
    "Listener",
    "ListeningPort",
    "NoProtocolError",
    "PipeAddress",
    "PreparingListener",
    "ProcessEndpoint",
    "ProcessTerminated",
    "Protocol",
    "ProxyError",
    "ProxyHeaderError",
    "ReconnectingClient",
    "ReconnectingStream",
    "SOCKS4aClientEndpoint",
    "SOCKS5ClientEndpoint",
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "ServerEndpoint",
    "StandardErrorBehavior",
    "StandardIOEndpoint",
    "Stream",
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "TCPOptions",
    "TLSError",
    "TLSVerificationError",
    "UNIXAddress",
    "UNIXClientEndpoint",
    "UNIXServerEndpoint",
    "clientFromString",
    "client_from_proxy_environment",
    "client_from_string",
    "clock",
    "connectProtocol",
    "connect_protocol",
    "parse_description",
    "proxyEndpoint",
    "quoteStringArgument",
    "quote_string_argument",
    "register_client_parser",
    "register_server_parser",
    "serverFromString",
    "server_from_string",
    "wrapClientTLS",
    "wrapServerTLS",
    "wrap_client_haproxy",
    "wrap_client_tls",
    "wrap_haproxy",
    "wrap_haproxy_client",
    "wrap_server_haproxy",
    "wrap_server_tls",
]
