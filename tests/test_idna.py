"""International host names: UTS #46 + IDNA 2008 A-labels, for DNS, SNI and verification.

The end-to-end test reaches a loopback TLS server as ``bücher.example`` through a
fake resolver; the server's certificate names only the A-label, as real ones do.
"""

from __future__ import annotations

import socket

import pytest
from _tls_helpers import LOOPBACK, echo, make_certs
from cryptography import x509

from greenpoint import (
    ConnectError,
    DescriptionError,
    DNSLookupError,
    client_from_string,
    quote_string_argument,
    server_from_string,
)
from greenpoint._happy_eyeballs import open_tcp_connection
from greenpoint._hostnames import encode_hostname
from greenpoint._tls_verify import check_identity, encode_server_name
from greenpoint.errors import TLSVerificationError
from greenpoint.testing import FakeResolver
from greenpoint.tls import ClientTLSOptions

pytestmark = pytest.mark.timeout(20)

A_LABEL = "xn--bcher-kva.example"

# A zero-width joiner between two Latin letters breaks IDNA 2008's CONTEXTJ rule.
UNENCODABLE = "a\u200db.example"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bücher.example", A_LABEL),
        ("BÜCHER.example", A_LABEL),  # UTS #46 maps case first
        ("faß.de", "xn--fa-hia.de"),  # nontransitional: ß stays ß (IDNA 2003 said fass.de)
        ("ＥＸＡＭＰＬＥ.com", "example.com"),  # full-width letters map to ASCII
        ("u\u0308ber.example", "xn--ber-goa.example"),  # decomposed ü is NFC-composed
        ("example.com", "example.com"),
    ],
)
def test_names_encode_as_browsers_do(name, expected):
    assert encode_hostname(name) == expected
    assert encode_server_name(name) == expected.encode("ascii")


def test_a_trailing_dot_is_not_sent_as_sni():
    assert encode_server_name("bücher.example.") == A_LABEL.encode("ascii")


@pytest.mark.parametrize("prefix", ["tcp", "tcp4", "tcp6", "tls", "ssl"])
def test_a_name_idna_cannot_encode_is_a_description_error_naming_it(prefix):
    with pytest.raises(DescriptionError, match=r"invalid host name 'a\\u200db.example'"):
        client_from_string(f"{prefix}:{UNENCODABLE}:443")


def test_tls_over_a_nested_endpoint_checks_its_name_too():
    with pytest.raises(DescriptionError, match="invalid host name"):
        client_from_string(f"tls:{UNENCODABLE}:endpoint=tcp\\:127.0.0.1\\:443")
    with pytest.raises(ValueError, match="invalid host name"):
        ClientTLSOptions(UNENCODABLE)


def test_a_name_that_reaches_connect_unencodable_is_a_connect_error_naming_it():
    resolver = FakeResolver()
    with pytest.raises(DNSLookupError, match="invalid host name") as caught:
        open_tcp_connection(UNENCODABLE, 443, resolver=resolver, timeout=5)
    assert isinstance(caught.value, ConnectError)
    assert UNENCODABLE in str(caught.value.address)
    assert resolver.calls == []


def test_the_certificate_is_checked_against_the_a_label(tmp_path):
    certs = make_certs(tmp_path)
    cert = certs.ca.issue_cert(A_LABEL).cert_chain_pems[0].bytes()
    leaf = x509.load_pem_x509_certificate(cert)
    assert check_identity(leaf, "bücher.example") is None
    assert check_identity(leaf, "BÜCHER.example.") is None
    problem = check_identity(leaf, "bucher.example")
    assert problem is not None and A_LABEL in problem
    problem = check_identity(leaf, "faß.example")
    assert problem == (
        f"hostname mismatch: the certificate is for {A_LABEL}, "
        "not 'faß.example' (xn--fa-hia.example)"
    )


@pytest.fixture
def idn_site(tmp_path):
    """A loopback TLS echo server whose certificate names only ``xn--bcher-kva.example``."""
    certs = make_certs(tmp_path)
    pem = certs.issue("idn.pem", A_LABEL)
    seen_server_names = []

    def handler(stream, address):
        seen_server_names.append(stream.server_name)
        echo(stream, address)

    q = quote_string_argument
    endpoint = server_from_string(f"ssl:0:interface={LOOPBACK}:privateKey={q(pem)}")
    with endpoint.serve(handler) as port:
        yield certs, port.get_host().port, seen_server_names


def _through(resolver, endpoint):
    endpoint.endpoint.resolver = resolver  # the TCP half of tls:HOST:PORT
    return endpoint


def test_idn_host_end_to_end_through_a_fake_resolver(idn_site):
    certs, port, seen_server_names = idn_site
    resolver = FakeResolver()
    resolver.add(A_LABEL, socket.AF_INET, [LOOPBACK])
    q = quote_string_argument
    endpoint = client_from_string(f"tls:bücher.example:{port}:trustRoots={q(certs.ca_file)}")
    with _through(resolver, endpoint).open(timeout=5) as stream:
        stream.sendall(b"hallo")
        assert stream.recv(100) == b"hallo"
    # The resolver was asked for the A-label, and the server got it as SNI.
    assert {host for _, host, _ in resolver.calls} == {A_LABEL}
    assert seen_server_names == [A_LABEL]


def test_idn_host_with_the_wrong_certificate_is_refused_naming_both_forms(idn_site):
    certs, port, _ = idn_site
    resolver = FakeResolver()
    resolver.add("xn--fa-hia.example", socket.AF_INET, [LOOPBACK])
    q = quote_string_argument
    endpoint = client_from_string(f"tls:faß.example:{port}:trustRoots={q(certs.ca_file)}")
    with pytest.raises(TLSVerificationError) as caught:
        _through(resolver, endpoint).open(timeout=5)
    assert caught.value.reason == "hostname mismatch"
    assert "'faß.example' (xn--fa-hia.example)" in str(caught.value)
    assert A_LABEL in str(caught.value)
