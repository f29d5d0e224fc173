"""The client description that reaches a listening port (``ListeningPort.client_description``).

Twisted has no such thing (twisted/twisted#7603); tests and tools write
``f"tcp:127.0.0.1:{port}"`` by hand and get the wildcard, the IPv6 case and TLS
wrong. The rules, from the bound address and the server endpoint:

* TCP: the bound address; a wildcard interface (``0.0.0.0``, ``::``) becomes the
  loopback address of the same family, since "every interface" includes it.
* UNIX: the same path or abstract name.
* TLS (``ssl:``, ``tls:``, :func:`wrap_server_tls`): a ``tls:`` description of the
  inner one, verified against a trust root: the one given, else the server's own
  certificate file when that file holds a self-signed certificate (a self-signed
  server certificate, or a chain that ends at its root). Otherwise the client
  uses the system roots, as any ``tls:`` client does.
* ``haproxy:``: the inner description: where to connect, not what to say first. A
  client must still send a PROXY header there (``wrap_haproxy_client`` around
  ``client_from_string(...)``, or ``greenpoint relay --send-proxy-v2``); PROXY
  headers carry per-connection addresses, so no client description can say one.
"""

from __future__ import annotations

from typing import Any

from greenpoint._address import IPv4Address, IPv6Address, UNIXAddress
from greenpoint._description import Bracketed, format_description
from greenpoint._hostnames import split_ip_literal

__all__ = ["client_description_for", "loopback_host", "self_signed_pem"]

# Wildcard bind addresses -> the loopback address of the same family.
_LOOPBACK = {4: "127.0.0.1", 6: "::1"}


def loopback_host(host: str) -> str:
    """``host``, or the loopback address of its family when it is a wildcard."""
    literal = split_ip_literal(host)
    address = None if literal is None else literal.ip_address()
    if address is not None and address.is_unspecified:
        return _LOOPBACK[address.version]
    return host


def address_description(address: Any) -> str:
    """A client description for a bound TCP or UNIX address.

    Raises:
        ValueError: an address no client description can reach.
    """
    if isinstance(address, IPv4Address | IPv6Address):
        return format_description("tcp", (loopback_host(address.host), address.port), {})
    if isinstance(address, UNIXAddress) and address.name:
        from greenpoint.endpoints.unix import UNIXClientEndpoint

        return str(UNIXClientEndpoint(address.name))
    raise ValueError(f"no client description reaches {address}")


def self_signed_pem(path: str) -> bool:
    """Whether the PEM file at ``path`` holds a self-signed certificate (any in it).

    A self-signed certificate in a client's trust store is a trust anchor; so a
    file holding one can be the client's ``trustRoots``.
    """
    from cryptography import x509

    try:
        with open(path, "rb") as file:
            certificates = x509.load_pem_x509_certificates(file.read())
    except (OSError, ValueError):
        return False
    return any(cert.issuer == cert.subject for cert in certificates)


def _server_certificate_file(tls_options: Any) -> str | None:
    certificate = getattr(tls_options, "certificate", None)
    return certificate if isinstance(certificate, str) else None


def _tls_description(inner: str, address: Any, trust_root: str | None, hostname: str | None) -> str:
    keys: dict[str, Any] = {}
    if isinstance(address, IPv4Address | IPv6Address) and hostname is None:
        host: str = loopback_host(address.host)
        args: tuple[Any, ...] = (host, address.port)
    else:
        # The name to verify differs from where to connect (or it is a UNIX
        # socket): tls: says where to connect in endpoint=.
        args = (hostname or "localhost",)
        keys["endpoint"] = Bracketed(inner)
    if trust_root is not None:
        keys["trustRoots"] = trust_root
    return format_description("tls", args, keys)


def client_description_for(
    endpoint: Any,
    address: Any,
    *,
    trust_root: str | None = None,
    hostname: str | None = None,
) -> str:
    """The client description reaching ``address``, bound by server ``endpoint``.

    ``endpoint`` may be ``None`` (a listener started without one): the address
    alone then decides. ``trust_root`` and ``hostname`` apply to TLS ports only.
    """
    from greenpoint.endpoints._tls_endpoints import SSL4ServerEndpoint, TLSWrapperServerEndpoint
    from greenpoint.endpoints.adopted import SystemdServerEndpoint
    from greenpoint.endpoints.haproxy import HAProxyServerEndpoint

    if isinstance(endpoint, SystemdServerEndpoint) and endpoint.used_fallback:
        endpoint = endpoint.fallback
    if isinstance(endpoint, HAProxyServerEndpoint):
        return client_description_for(
            endpoint.endpoint, address, trust_root=trust_root, hostname=hostname
        )
    inner = address_description(address)
    if isinstance(endpoint, SSL4ServerEndpoint | TLSWrapperServerEndpoint):
        if trust_root is None:
            certificate = _server_certificate_file(endpoint.tls_options)
            if certificate is not None and self_signed_pem(certificate):
                trust_root = certificate
        return _tls_description(inner, address, trust_root, hostname)
    return inner
