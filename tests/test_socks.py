"""The SOCKS5 and SOCKS4a handshakes as bytes (greenpoint._socks): no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenpoint import _http_connect as http
from greenpoint import _socks as socks
from greenpoint._address import IPv4Address, IPv6Address
from greenpoint._negotiation import NegotiationError


def test_greeting_offers_user_password_only_with_credentials():
    assert socks.greeting(False) == b"\x05\x01\x00"
    assert socks.greeting(True) == b"\x05\x02\x00\x02"


@pytest.mark.parametrize(
    ("reply", "with_password", "method"),
    [(b"\x05\x00", False, 0), (b"\x05\x00", True, 0), (b"\x05\x02", True, 2)],
)
def test_method_choice_accepts_what_was_offered(reply, with_password, method):
    assert socks.parse_method_choice(reply, with_password) == method


@pytest.mark.parametrize(
    ("reply", "with_password", "words"),
    [
        (b"\x05\xff", False, "requires authentication (give user= and password=)"),
        (b"\x05\xff", True, "no acceptable authentication method"),
        (b"\x05\x02", False, "method 0x02, not offered"),
        (b"\x04\x00", False, "not a SOCKS5 reply"),
        (b"HT", False, "not a SOCKS5 reply"),
    ],
)
def test_method_choice_refusals_say_why(reply, with_password, words):
    with pytest.raises(NegotiationError, match="greeting") as caught:
        socks.parse_method_choice(reply, with_password)
    assert words in caught.value.reason


def test_auth_request_is_rfc_1929():
    assert socks.auth_request("bob", "pässword") == (b"\x01\x03bob\x09p\xc3\xa4ssword")


@pytest.mark.parametrize(("user", "password"), [("", "x"), ("x", ""), ("x" * 256, "y")])
def test_auth_request_refuses_lengths_rfc_1929_cannot_carry(user, password):
    with pytest.raises(ValueError, match="1 to 255 bytes"):
        socks.auth_request(user, password)


def test_auth_reply_status_zero_is_success_and_anything_else_a_failure():
    socks.parse_auth_reply(b"\x01\x00")
    socks.parse_auth_reply(b"\x05\x00")  # some servers answer with version 5
    with pytest.raises(NegotiationError, match=r"user or password refused \(status 1\)") as caught:
        socks.parse_auth_reply(b"\x01\x01")
    assert caught.value.reply == 1
    with pytest.raises(NegotiationError, match="not a SOCKS5 reply"):
        socks.parse_auth_reply(b"\x00")


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("192.0.2.1", 80, b"\x05\x01\x00\x01\xc0\x00\x02\x01\x00\x50"),
        ("2001:db8::1", 443, b"\x05\x01\x00\x04" + bytes.fromhex("20010db8" + "0" * 22 + "01")
         + b"\x01\xbb"),
        ("example.com", 8080, b"\x05\x01\x00\x03\x0bexample.com\x1f\x90"),
        ("bücher.example", 1, b"\x05\x01\x00\x03\x15xn--bcher-kva.example\x00\x01"),
    ],
)  # fmt: skip
def test_connect_request_sends_addresses_as_addresses_and_names_as_names(host, port, expected):
    assert socks.connect_request(host, port) == expected


def test_connect_request_refuses_a_name_too_long_for_one_length_byte():
    with pytest.raises(ValueError):
        socks.connect_request(".".join(["a" * 60] * 5), 80)


@pytest.mark.parametrize(
    ("reply", "address"),
    [
        (b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38", IPv4Address("127.0.0.1", 1080)),
        (b"\x05\x00\x00\x04" + b"\x00" * 15 + b"\x01\x00\x50", IPv6Address("::1", 80)),
        (b"\x05\x00\x00\x03\x04host\x00\x50", ("host", 80)),
    ],
)
def test_connect_reply_lengths_and_bound_address(reply, address):
    assert socks.reply_length(reply[: socks.REPLY_HEAD_SIZE]) == len(reply)
    assert socks.parse_connect_reply(reply) == address


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (1, "general SOCKS server failure"),
        (2, "connection not allowed by ruleset"),
        (3, "network unreachable"),
        (4, "host unreachable"),
        (5, "connection refused"),
        (6, "TTL expired"),
        (7, "command not supported"),
        (8, "address type not supported"),
        (42, "unknown reply code"),
    ],
)
def test_connect_refusal_is_reported_in_words_from_the_first_bytes(code, words):
    # A refusing proxy may send only the head and close: the head is enough.
    with pytest.raises(NegotiationError) as caught:
        socks.reply_length(bytes([5, code, 0, 1, 0]))
    assert caught.value.reason == f"{words} (reply {code})"
    assert caught.value.reply == code


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"HTTP/", "not a SOCKS5 reply"),
        (b"\x05\x00\x00\x09\x00", "unknown address type 9"),
    ],
)
def test_garbage_connect_replies_are_refused(head, words):
    with pytest.raises(NegotiationError, match=words):
        socks.reply_length(head)


def test_socks4_request_for_an_ipv4_address_and_socks4a_for_a_name():
    assert socks.socks4_connect_request("192.0.2.1", 80, "me") == (
        b"\x04\x01\x00\x50\xc0\x00\x02\x01me\x00"
    )
    assert socks.socks4_connect_request("example.com", 80) == (
        b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.com\x00"
    )


def test_socks4_cannot_carry_ipv6_or_a_nul_in_the_user_id():
    with pytest.raises(ValueError, match="IPv6"):
        socks.socks4_connect_request("::1", 80)
    with pytest.raises(ValueError, match="NUL"):
        socks.socks4_connect_request("example.com", 80, "a\0b")


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (b"\x00\x5b\x00\x00\x00\x00\x00\x00", "request rejected or failed (reply 91)"),
        (b"\x00\x5c\x00\x00\x00\x00\x00\x00", "cannot reach identd"),
        (b"\x00\x5d\x00\x00\x00\x00\x00\x00", "identd reports a different user id"),
        (b"\x05\x00\x00\x00\x00\x00\x00\x00", "not a SOCKS4 reply"),
    ],
)
def test_socks4_reply_codes_in_words(reply, words):
    socks.parse_socks4_reply(b"\x00\x5a\x00\x00\x00\x00\x00\x00")  # granted
    with pytest.raises(NegotiationError, match="CONNECT") as caught:
        socks.parse_socks4_reply(reply)
    assert words in caught.value.reason


# -- whatever a proxy sends, the parsers answer with a NegotiationError or a value --


@given(st.binary(max_size=64))
def test_socks_parsers_never_crash_on_garbage(data):
    for parse in (
        lambda: socks.parse_method_choice(data[:2], True),
        lambda: socks.parse_auth_reply(data[:2]),
        lambda: socks.reply_length(data),
        lambda: socks.parse_connect_reply(data),
        lambda: socks.parse_socks4_reply(data[:8]),
    ):
        try:
            parse()
        except NegotiationError:
            pass


@given(st.binary(max_size=256))
def test_http_parsers_never_crash_on_garbage(data):
    try:
        end = http.head_end(data)
        if end is not None:
            http.parse_response(data[:end])
    except NegotiationError:
        pass


@given(st.text(max_size=40), st.integers(1, 65535))
def test_requests_are_built_or_refused_with_a_value_error(host, port):
    for build in (
        lambda: socks.connect_request(host, port),
        lambda: socks.socks4_connect_request(host, port),
    ):
        try:
            build()
        except ValueError:
            pass
    try:
        request = http.connect_request(host, port)
    except ValueError:
        return
    # No name can smuggle a header or end the request early.
    assert request.count(b"\r\n") == 3 and request.endswith(b"\r\n\r\n")
