"""Where public names live: greenpoint.proxy_protocol, Twisted's TLS wrapper names,
and the module each endpoint class reports."""

from __future__ import annotations

import pickle

import greenpoint
import greenpoint.endpoints.tls
from greenpoint import proxy_protocol
from greenpoint._proxied_stream import ProxiedStream
from greenpoint._proxy_header import ProxyHeader, ProxyHeaderParser, ProxyTLV, SSLInfo
from greenpoint._proxy_header_encode import encode_proxy_header
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint

MOVED = {
    "ProxiedStream": ProxiedStream,
    "ProxyHeader": ProxyHeader,
    "ProxyHeaderParser": ProxyHeaderParser,
    "ProxyTLV": ProxyTLV,
    "SSLInfo": SSLInfo,
    "encode_proxy_header": encode_proxy_header,
}


def test_proxy_protocol_module_holds_the_header_types_and_encoder():
    assert sorted(proxy_protocol.__all__) == sorted(MOVED)
    for name, value in MOVED.items():
        assert getattr(proxy_protocol, name) is value
        if isinstance(value, type):
            assert value.__module__ == "greenpoint.proxy_protocol", name


def test_moved_names_are_still_importable_from_greenpoint_but_not_exported():
    from greenpoint import ProxyHeader as old_spelling

    assert old_spelling is ProxyHeader
    for name, value in MOVED.items():
        assert getattr(greenpoint, name) is value
        assert name not in greenpoint.__all__
    assert "wrap_haproxy" in greenpoint.__all__  # the endpoint side stays at the top


def test_proxy_header_round_trips_through_the_public_module():
    header = proxy_protocol.encode_proxy_header(
        greenpoint.IPv4Address("192.0.2.1", 5000),
        greenpoint.IPv4Address("192.0.2.2", 443),
        version=2,
    )
    parser = proxy_protocol.ProxyHeaderParser()
    parsed = parser.feed(header)
    assert isinstance(parsed, proxy_protocol.ProxyHeader)
    assert parsed.source.host == "192.0.2.1"
    assert pickle.loads(pickle.dumps(proxy_protocol.ProxyTLV.SSL)) is proxy_protocol.ProxyTLV.SSL


def test_wrap_server_tls_has_twisteds_name_next_to_wrap_client_tls():
    assert greenpoint.wrapServerTLS is greenpoint.wrap_server_tls
    assert greenpoint.wrapClientTLS is greenpoint.wrap_client_tls
    assert greenpoint.endpoints.tls.wrapServerTLS is greenpoint.wrap_server_tls
    assert "wrapServerTLS" in greenpoint.endpoints.tls.__all__


def test_endpoint_classes_report_the_module_they_are_imported_from():
    classes = [
        value
        for name, value in vars(greenpoint).items()
        if name in greenpoint.__all__
        and isinstance(value, type)
        and issubclass(value, ClientEndpoint | ServerEndpoint)
    ]
    assert len(classes) > 15
    for cls in classes:
        assert cls.__module__ == "greenpoint", cls
        assert getattr(greenpoint, cls.__qualname__) is cls
    for cls in (greenpoint.endpoints.tls.TLSWrapperClientEndpoint,):
        assert cls.__module__ == "greenpoint.endpoints.tls"
    assert repr(greenpoint.TCP4ClientEndpoint).startswith("<class 'greenpoint.TCP4ClientEndpoint'")


def test_endpoints_still_pickle_by_their_public_name():
    for text in ("tcp:127.0.0.1:80", "tls:localhost:443", "unix:/run/app.sock"):
        endpoint = greenpoint.client_from_string(text)
        assert pickle.loads(pickle.dumps(endpoint)) == endpoint
