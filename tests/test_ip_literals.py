"""The one "is this an IP literal?" test (``_hostnames.split_ip_literal``) and what is
derived from it: plain values, no sockets."""

from __future__ import annotations

import socket

import pytest

from greenpoint._hostnames import (
    IPLiteral,
    family_name,
    is_ip_literal,
    literal_family,
    parse_ip_literal,
    split_ip_literal,
)
from greenpoint._params import ip_literal
from greenpoint._tls_verify import is_ip_literal as tls_is_ip_literal
from greenpoint.endpoints.tcp import TCP6ClientEndpoint
from greenpoint.endpoints.tcp import literal_family as tcp_literal_family

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("192.0.2.1", IPLiteral(AF_INET, "192.0.2.1")),
        ("::1", IPLiteral(AF_INET6, "::1")),
        ("[::1]", IPLiteral(AF_INET6, "::1")),
        ("fe80::1%eth0", IPLiteral(AF_INET6, "fe80::1", "eth0")),
        ("[fe80::1%2]", IPLiteral(AF_INET6, "fe80::1", "2")),
        ("::ffff:192.0.2.1", IPLiteral(AF_INET6, "::ffff:192.0.2.1")),
        # Names, not literals: what a resolver (not inet_pton) would take.
        ("127.1", None),
        ("010.0.0.1", None),
        ("192.0.2.1%eth0", None),  # IPv4 has no zones
        ("[192.0.2.1]", None),  # brackets hold IPv6 only
        ("[nope]", None),
        ("example.com", None),
        ("", None),
        ("1.2.3.4\0", None),
    ],
)
def test_split_ip_literal(host, expected):
    assert split_ip_literal(host) == expected
    family = None if expected is None else expected.family
    # Everything else asks the same question the same way.
    assert literal_family(host) == tcp_literal_family(host) == family
    assert is_ip_literal(host) is tls_is_ip_literal(host) is (family is not None)


def test_the_text_form_drops_brackets_and_keeps_the_zone():
    assert split_ip_literal("[fe80::1%eth0]").text == "fe80::1%eth0"
    assert split_ip_literal("192.0.2.1").text == "192.0.2.1"


def test_parse_ip_literal_turns_the_zone_into_a_scope_id():
    assert parse_ip_literal("192.0.2.1", 80) == (AF_INET, ("192.0.2.1", 80))
    assert parse_ip_literal("[fe80::1%7]", 80) == (AF_INET6, ("fe80::1", 80, 0, 7))
    index = socket.if_nametoindex("lo")
    assert parse_ip_literal("fe80::1%lo", 80) == (AF_INET6, ("fe80::1", 80, 0, index))
    assert parse_ip_literal("example.com", 80) is None


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("[nope]", "brackets hold an IPv6 address, not 'nope'"),
        ("[192.0.2.1]", "brackets hold an IPv6 address"),
        ("fe80::1%no-such-if0", "no network interface named 'no-such-if0'"),
    ],
)
def test_parse_ip_literal_says_what_is_wrong(host, words):
    with pytest.raises(ValueError, match=words):
        parse_ip_literal(host, 80)


def test_the_description_coercer_uses_the_same_test():
    assert ip_literal(" 192.0.2.1 ") == "192.0.2.1"
    assert ip_literal("") == ""  # every interface
    for bad in ("127.1", "192.0.2.1%eth0", "eth0"):
        with pytest.raises(ValueError, match="expected an IP address"):
            ip_literal(bad)


def test_a_bracketed_literal_is_a_literal_for_the_tcp_endpoints_too():
    endpoint = TCP6ClientEndpoint("[::1]", 80)
    assert endpoint.host == "::1"
    assert endpoint == TCP6ClientEndpoint("::1", 80)


@pytest.mark.parametrize(
    ("family", "name", "with_constant"),
    [
        (AF_INET, "IPv4", "IPv4 (AF_INET)"),
        (AF_INET6, "IPv6", "IPv6 (AF_INET6)"),
        (socket.AF_UNIX, "UNIX", "UNIX (AF_UNIX)"),
        (999, "address family 999", "address family 999"),
    ],
)
def test_family_name(family, name, with_constant):
    assert family_name(family) == name
    assert family_name(family, constant=True) == with_constant
