"""IP literals, family names and bind addresses (``greenpoint._hostnames``): the one
"is this an IP literal?" test, the one ``BindAddress`` and what derives from them.
Plain values, no sockets."""

from __future__ import annotations

import socket

import pytest

from greenpoint._checks import FieldError
from greenpoint._hostnames import (
    BindAddress,
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


# -- the one bind-address type ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "port", "expected"),
    [
        (None, None, None),
        (None, 4000, BindAddress(port=4000)),  # bindPort alone: any address, both families
        ("", None, None),
        ("192.0.2.1", None, BindAddress(ipv4="192.0.2.1")),
        (b"192.0.2.1", None, BindAddress(ipv4="192.0.2.1")),
        (" [2001:db8::1] , 192.0.2.1 ", 9, BindAddress("192.0.2.1", "2001:db8::1", 9)),
        ("fe80::1%eth0", None, BindAddress(ipv6="fe80::1%eth0")),
        (("192.0.2.1", 4000), None, BindAddress(ipv4="192.0.2.1", port=4000)),
        (["::1", 0], None, BindAddress(ipv6="::1")),
        (("fe80::1", 0, 0, 2), None, BindAddress(ipv6="fe80::1%2")),  # a sockaddr, as before
        (("", 4000), None, BindAddress(port=4000)),  # the TCP endpoints' "any address"
        (("", 0), None, None),  # binds nothing: the same as no bind address
        ({AF_INET: ("0.0.0.0", 5), AF_INET6: ("::", 5)}, None, BindAddress(port=5)),
        ("0.0.0.0", None, BindAddress(ipv4="0.0.0.0")),  # IPv4 only: not a port alone
        ({AF_INET6: "::1", AF_INET: ("192.0.2.1", 0)}, None, BindAddress("192.0.2.1", "::1")),
        (BindAddress(ipv4="192.0.2.1"), None, BindAddress(ipv4="192.0.2.1")),
    ],
)
def test_bind_address_parse(given, port, expected):
    assert BindAddress.parse(given, port=port) == expected


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("localhost", "bind_address must be an IP address, not 'localhost'"),
        ("192.0.2.1,", "expected IP addresses separated by a comma"),
        (",::1", "expected IP addresses separated by a comma, not ',::1'"),
        ({AF_INET: ""}, "bind_address must be an IP address, not ''"),
        ("192.0.2.1,192.0.2.2", "two IPv4 addresses in bind_address '192.0.2.1,192.0.2.2'"),
        ({AF_INET: "::1"}, "is IPv6, but is listed under IPv4"),
        (("192.0.2.1", 70000), "bind_address port must be an int from 0 to 65535, not 70000"),
        (("192.0.2.1", "80"), "not str '80'"),
        (("192.0.2.1", 1, 2), "must be a host or \\(host, port\\)"),
        (42, "bind_address must be a host or \\(host, port\\), not 42"),
        ({AF_INET: ("192.0.2.1", 1), AF_INET6: ("::1", 2)}, "gives ports \\[1, 2\\]"),
    ],
)
def test_bind_address_parse_refuses_naming_the_field(given, words):
    with pytest.raises(FieldError, match=words) as caught:
        BindAddress.parse(given)
    assert caught.value.field == "bind_address"


def test_for_family_gives_what_bind_takes():
    both = BindAddress("192.0.2.1", "2001:db8::1", 4000)
    assert both.for_family(AF_INET) == ("192.0.2.1", 4000)
    assert both.for_family(AF_INET6) == ("2001:db8::1", 4000)
    assert BindAddress(ipv4="192.0.2.1").for_family(AF_INET6) is None  # its own family only
    alone = BindAddress(port=4000)
    assert alone.for_family(AF_INET) == ("0.0.0.0", 4000)
    assert alone.for_family(AF_INET6) == ("::", 4000)
    # bind() drops a zone given as text; the scope id keeps it.
    index = socket.if_nametoindex("lo")
    assert BindAddress(ipv6="fe80::1%lo").for_family(AF_INET6) == ("fe80::1", 0, 0, index)
    with pytest.raises(ValueError, match="no network interface named 'nope0'"):
        BindAddress(ipv6="fe80::1%nope0").for_family(AF_INET6)


def test_only_keeps_the_endpoint_family_or_says_why_not():
    both = BindAddress("192.0.2.1", "::1", 9)
    assert both.only(AF_INET, "TCP4ClientEndpoint") == BindAddress(ipv4="192.0.2.1", port=9)
    assert BindAddress(port=9).only(AF_INET6, "x") == BindAddress(port=9)
    with pytest.raises(FieldError) as caught:
        BindAddress(ipv6="::1").only(AF_INET, "TCP4ClientEndpoint")
    assert str(caught.value) == (
        "TCP4ClientEndpoint is IPv4, but bind_address '::1' is an IPv6 address "
        "(use the TCP6 endpoint)"
    )


@pytest.mark.parametrize(
    ("bind", "keys"),
    [
        (BindAddress(ipv4="192.0.2.1"), {"bindAddress": "192.0.2.1"}),
        (BindAddress("192.0.2.1", "::1", 9), {"bindAddress": "192.0.2.1,::1", "bindPort": 9}),
        (BindAddress(port=4000), {"bindPort": 4000}),
    ],
)
def test_description_keys_parse_back(bind, keys):
    assert bind.description_keys() == keys
    assert BindAddress.parse(keys.get("bindAddress"), port=keys.get("bindPort", 0)) == bind


def test_every_client_endpoint_holds_the_same_type():
    from greenpoint import HostnameEndpoint, TCP4ClientEndpoint, client_from_string

    expected = BindAddress(ipv4="127.0.0.2", port=9)
    assert TCP4ClientEndpoint("127.0.0.1", 80, bind_address=("127.0.0.2", 9)).bind_address == (
        expected
    )
    assert HostnameEndpoint("h.test", 80, bind_address=("127.0.0.2", 9)).bind_address == expected
    for text in ("tcp:127.0.0.1:80", "tcp4:h.test:80", "tcp:h.test:80"):
        parsed = client_from_string(f"{text}:bindAddress=127.0.0.2:bindPort=9")
        assert parsed.bind_address == expected, text
        assert client_from_string(str(parsed)) == parsed
