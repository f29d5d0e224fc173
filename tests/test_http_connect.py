"""The HTTP CONNECT handshake as bytes (greenpoint._http_connect): no sockets."""

from __future__ import annotations

import pytest

from greenpoint import _http_connect as http
from greenpoint._negotiation import NegotiationError


def test_request_without_credentials():
    assert http.connect_request("example.com", 443) == (
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    )


def test_request_brackets_ipv6_and_encodes_idna():
    assert http.connect_request("::1", 80).startswith(b"CONNECT [::1]:80 HTTP/1.1\r\n")
    assert http.connect_request("bücher.example", 80).startswith(
        b"CONNECT xn--bcher-kva.example:80 "
    )


def test_request_with_basic_proxy_authentication():
    # RFC 7617 §2's own example: Aladdin / open sesame.
    request = http.connect_request("example.com", 443, "Aladdin", "open sesame")
    assert b"\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n" in request


@pytest.mark.parametrize(
    ("host", "user", "password", "words"),
    [
        ("example.com", "a:b", "x", "cannot contain ':'"),
        ("example.com", "a", "x\r\nX-Evil: 1", "control characters"),
        ("exa mple.com", None, None, "invalid host name"),
        ("example.com\r\nX: y", None, None, "invalid host name"),
    ],
)
def test_request_refuses_what_would_break_the_header(host, user, password, words):
    with pytest.raises(ValueError, match=words):
        http.connect_request(host, 80, user, password)


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", 19),
        (b"HTTP/1.1 200 OK\r\n\r\nSSH-2.0-server", 19),  # the rest is the tunnel's
        (b"HTTP/1.0 200 Connection established\r\nProxy-agent: x\r\n\r\n", 55),
        (b"HTTP/1.1 200 OK\n\n", 17),
        (b"HTTP/1.1 200 OK\r\n", None),
        (b"HTT", None),
    ],
)
def test_head_end_finds_the_blank_line(data, end):
    assert http.head_end(data) == end


def test_head_end_refuses_garbage_and_endless_heads():
    with pytest.raises(NegotiationError, match="not an HTTP response"):
        http.head_end(b"\x05\x00\x00\x01garbage")
    with pytest.raises(NegotiationError, match="longer than 16384 bytes"):
        http.head_end(b"HTTP/1.1 200 OK\r\nX: " + b"a" * http.MAX_HEAD_SIZE)


@pytest.mark.parametrize(
    "head", [b"HTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.0 200 Connection established\r\n\r\n",
             b"HTTP/1.1 204\r\n\r\n"],
)  # fmt: skip
def test_any_2xx_opens_the_tunnel(head):
    assert http.parse_response(head) == head.split(b"\r\n")[0].decode()


@pytest.mark.parametrize(
    ("head", "status_line", "hint"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
         "HTTP/1.1 407 Proxy Authentication Required", "give user= and password="),
        (b"HTTP/1.0 403 Access violation\r\n\r\n", "HTTP/1.0 403 Access violation", ""),
        (b"HTTP/1.1 502 Bad Gateway\r\nX: y\r\n\r\n", "HTTP/1.1 502 Bad Gateway", ""),
    ],
)  # fmt: skip
def test_a_refusal_quotes_the_status_line(head, status_line, hint):
    with pytest.raises(NegotiationError) as caught:
        http.parse_response(head)
    assert caught.value.reply == status_line
    assert repr(status_line) in caught.value.reason
    assert hint in caught.value.reason


def test_a_status_line_that_is_not_http_is_garbage():
    with pytest.raises(NegotiationError, match="not an HTTP status line"):
        http.parse_response(b"HTTP/1.1 two hundred\r\n\r\n")
