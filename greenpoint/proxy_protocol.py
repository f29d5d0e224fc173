"""The PROXY protocol (HAProxy's, versions 1 and 2): the header's types and encoder.

Serving or connecting through it is done by descriptions (``haproxy:...``) and by
:func:`greenpoint.wrap_haproxy` / :func:`greenpoint.wrap_haproxy_client`; this module
holds what a program uses to look at, parse or build a header itself:

* :class:`ProxyHeader`: what a header says (``source``, ``destination``, TLVs...);
  :class:`ProxyTLV` one type-length-value of version 2, :class:`SSLInfo` its SSL one;
* :class:`ProxyHeaderParser`: an incremental parser, pure (feed it bytes as they come);
* :func:`encode_proxy_header`: the bytes of a header, for clients and tests;
* :class:`ProxiedStream`: the stream a PROXY server gives its handler, which knows
  the header it was opened with.

These names were importable from ``greenpoint`` itself before; they still are, for
compatibility, but this module is where they live.
"""

from __future__ import annotations

from greenpoint._proxied_stream import ProxiedStream
from greenpoint._proxy_header import ProxyHeader, ProxyHeaderParser, ProxyTLV, SSLInfo
from greenpoint._proxy_header_encode import encode_proxy_header

__all__ = [
    "ProxiedStream",
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyTLV",
    "SSLInfo",
    "encode_proxy_header",
]

# Reprs, tracebacks and docs show where users import these from.
for _class in (ProxiedStream, ProxyHeader, ProxyHeaderParser, ProxyTLV, SSLInfo):
    _class.__module__ = __name__
del _class
