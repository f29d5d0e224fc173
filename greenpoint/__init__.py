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
from greenpoint._proxied_stream import ProxiedStream
from greenpoint._proxy_header import (
    ProxyHeader,
    ProxyHeaderParser,
    ProxyTLV,
    SSLInfo,
)
from greenpoint._proxy_header_encode import encode_proxy_header
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
    wrap_haproxy,
    wrap_haproxy_client,
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

# Twisted's spellings, for porting.
clientFromString = client_from_string
connectProtocol = connect_protocol
serverFromString = server_from_string
quoteStringArgument = quote_string_argument
proxyEndpoint = wrap_haproxy

__version__ = "0.1.0"

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
    "ProxiedStream",
    "ProxyError",
    "ProxyHeader",
    "ProxyHeaderError",
    "ProxyHeaderParser",
    "ProxyTLV",
    "ReconnectingClient",
    "ReconnectingStream",
    "SOCKS4aClientEndpoint",
    "SOCKS5ClientEndpoint",
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "SSLInfo",
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
    "encode_proxy_header",
    "parse_description",
    "proxyEndpoint",
    "quoteStringArgument",
    "quote_string_argument",
    "register_client_parser",
    "register_server_parser",
    "serverFromString",
    "server_from_string",
    "wrapClientTLS",
    "wrap_client_tls",
    "wrap_haproxy",
    "wrap_haproxy_client",
    "wrap_server_tls",
]
