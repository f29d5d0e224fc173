"""X-Forwarded-For / X-Forwarded-Proto believed only from --forwarded-allow-ips peers,
the access-log format on a served request, and https behind haproxy: (PROXY v2 SSL TLV)."""

from __future__ import annotations

import io
import os
import socket
import time

import pytest
from _haproxy_helpers import HAPROXY, haproxy_process

import greenpoint
from greenpoint import IPv4Address, wsgi
from greenpoint._forwarded import (
    ForwardedAllowList,
    apply_forwarded_headers,
    forwarded_client,
    parse_forwarded_allow_ips,
)
from greenpoint._proxy_header import ProxyTLV
from greenpoint._proxy_header_encode import encode_proxy_header
from tests.test_wsgi import EndpointHTTPConnection, environ_app, get, parse

pytestmark = pytest.mark.timeout(20)

LOCAL = parse_forwarded_allow_ips("127.0.0.1,::1")


# -- the pure part -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "host", "trusted"),
    [
        ("127.0.0.1,::1", "127.0.0.1", True),
        ("127.0.0.1,::1", "::1", True),
        ("127.0.0.1,::1", "::ffff:127.0.0.1", True),  # IPv4-mapped: the same peer
        ("127.0.0.1,::1", "10.0.0.1", False),
        ("10.0.0.0/8, 192.168.1.5", "10.200.3.4", True),
        ("10.0.0.0/8, 192.168.1.5", "192.168.1.6", False),
        ("fd00::/8", "fd12::1", True),
        ("*", "203.0.113.9", True),
        ("", "127.0.0.1", False),
        ("127.0.0.1", "not-an-ip", False),
        ("127.0.0.1", None, True),  # a UNIX socket peer, as gunicorn
    ],
)
def test_allow_list(spec, host, trusted):
    assert parse_forwarded_allow_ips(spec).trusts(host) is trusted


def test_allow_list_accepts_a_list_and_none():
    assert parse_forwarded_allow_ips(["10.0.0.1", "10.0.0.2"]).trusts("10.0.0.2")
    assert not parse_forwarded_allow_ips(None).trusts("127.0.0.1")


@pytest.mark.parametrize("bad", ["localhost", "10.0.0.0/33", "1.2.3"])
def test_allow_list_errors_name_the_item(bad):
    with pytest.raises(ValueError, match=f"forwarded-allow-ips: '{bad}' is not an IP"):
        parse_forwarded_allow_ips(f"127.0.0.1,{bad}")


@pytest.mark.parametrize(
    ("header", "allow", "client"),
    [
        ("203.0.113.9", "127.0.0.1", "203.0.113.9"),
        # The right-most entry that is not a trusted proxy: what the client put
        # before it may be forged.
        ("1.1.1.1, 203.0.113.9", "127.0.0.1", "203.0.113.9"),
        ("1.1.1.1, 203.0.113.9, 10.0.0.2", "127.0.0.1,10.0.0.0/8", "203.0.113.9"),
        ("1.1.1.1, 10.0.0.3, 10.0.0.2", "10.0.0.0/8", "1.1.1.1"),
        ("10.0.0.3, 10.0.0.2", "10.0.0.0/8", "10.0.0.3"),  # all trusted: the left-most
        ("1.1.1.1, 203.0.113.9", "*", "1.1.1.1"),
        ("[2001:db8::1]", "127.0.0.1", "2001:db8::1"),
        ("unknown", "127.0.0.1", None),
        ("", "127.0.0.1", None),
    ],
)
def test_forwarded_client(header, allow, client):
    assert forwarded_client(header, parse_forwarded_allow_ips(allow)) == client


def base_environ() -> dict:
    return {
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "5000",
        "wsgi.url_scheme": "http",
        "HTTP_X_FORWARDED_FOR": "203.0.113.9",
        "HTTP_X_FORWARDED_PROTO": "https",
    }


def test_headers_apply_from_a_trusted_peer():
    environ = base_environ()
    apply_forwarded_headers(environ, "127.0.0.1", LOCAL)
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert "REMOTE_PORT" not in environ  # the client's port is not known
    assert environ["wsgi.url_scheme"] == "https"


def test_headers_are_ignored_from_any_other_peer():
    environ = base_environ()
    apply_forwarded_headers(environ, "198.51.100.1", LOCAL)
    assert environ == base_environ()


def test_only_http_and_https_are_taken_as_schemes():
    environ = dict(base_environ(), HTTP_X_FORWARDED_PROTO="javascript")
    apply_forwarded_headers(environ, "127.0.0.1", LOCAL)
    assert environ["wsgi.url_scheme"] == "http"
    environ = dict(base_environ(), HTTP_X_FORWARDED_PROTO="HTTPS, http")
    apply_forwarded_headers(environ, "127.0.0.1", LOCAL)
    assert environ["wsgi.url_scheme"] == "https"


def test_empty_allow_list_believes_no_one():
    environ = base_environ()
    apply_forwarded_headers(environ, "127.0.0.1", ForwardedAllowList())
    assert environ == base_environ()


# -- served requests ----------------------------------------------------------------

FORWARDED = {"X-Forwarded-For": "1.1.1.1, 203.0.113.9", "X-Forwarded-Proto": "https"}


def request_through(port, headers) -> dict[str, str]:
    connection = EndpointHTTPConnection(f"tcp:127.0.0.1:{port.get_host().port}")
    try:
        response, body = get(connection, "/", headers=headers)
    finally:
        connection.close()
    assert response.status == 200
    return parse(body)


def test_serve_believes_forwarded_headers_from_an_allowed_peer():
    with wsgi.serve(
        "tcp:0:interface=127.0.0.1", environ_app, log=None, forwarded_allow_ips="127.0.0.1"
    ) as port:
        values = request_through(port, FORWARDED)
    assert values["REMOTE_ADDR"] == "203.0.113.9"
    assert values["REMOTE_PORT"] == "None"
    assert values["wsgi.url_scheme"] == "https"
    assert values["peer"].startswith("127.0.0.1:")  # greenpoint.peer: still the real peer


@pytest.mark.parametrize("allow", [None, "10.0.0.0/8,::1"])
def test_serve_ignores_forwarded_headers_from_other_peers(allow):
    with wsgi.serve(
        "tcp:0:interface=127.0.0.1", environ_app, log=None, forwarded_allow_ips=allow
    ) as port:
        values = request_through(port, FORWARDED)
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["REMOTE_PORT"] != "None"
    assert values["wsgi.url_scheme"] == "http"


def test_serve_believes_a_unix_socket_peer(tmp_path):
    path = tmp_path / "app.sock"
    with wsgi.serve(f"unix:{path}", environ_app, log=None, forwarded_allow_ips="127.0.0.1"):
        connection = EndpointHTTPConnection(f"unix:{path}")
        try:
            _, body = get(connection, "/", headers=FORWARDED)
        finally:
            connection.close()
    values = parse(body)
    assert values["REMOTE_ADDR"] == "203.0.113.9"
    assert values["wsgi.url_scheme"] == "https"


def test_serve_rejects_a_bad_allow_list():
    with pytest.raises(ValueError, match="'nope' is not an IP"):
        wsgi.serve("tcp:0:interface=127.0.0.1", environ_app, forwarded_allow_ips="nope")


def test_serve_writes_access_lines_in_gunicorn_format():
    log = io.StringIO()
    log_format = (
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(m)s %(U)s %(q)s %(H)s'
    )
    log_format += " %(p)s %({x-trace}i)s %({content-type}o)s %(D)s"
    before = time.time()
    with wsgi.serve(
        "tcp:0:interface=127.0.0.1", environ_app, log=log, access_log_format=log_format
    ) as port:
        connection = EndpointHTTPConnection(f"tcp:127.0.0.1:{port.get_host().port}")
        try:
            _, body = get(
                connection,
                "/a%20b?x=1",
                headers={"User-Agent": "tester/1", "Referer": "http://r/", "X-Trace": "t9"},
            )
        finally:
            connection.close()
    line = log.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    stamp = line.split("[", 1)[1].split("]", 1)[0]
    logged = time.mktime(time.strptime(stamp.split(" ")[0], "%d/%b/%Y:%H:%M:%S"))
    assert before - 2 <= logged <= time.time() + 1
    fields = line.split(f"[{stamp}]")
    assert fields[0] == "127.0.0.1 - - "
    rest = fields[1].rsplit(" ", 1)
    assert int(rest[1]) >= 0  # %(D)s: microseconds
    assert rest[0] == (
        f' "GET /a%20b?x=1 HTTP/1.1" 200 {len(body)} "http://r/" "tester/1" GET /a b x=1 '
        f"HTTP/1.1 <{os.getpid()}> t9 text/plain"
    )


def test_serve_rejects_a_bad_access_log_format():
    with pytest.raises(ValueError, match="bad access log format"):
        wsgi.serve("tcp:0:interface=127.0.0.1", environ_app, access_log_format="%(h")


# -- https behind haproxy: ----------------------------------------------------------

# The SSL TLV (PROXY v2 section 2.2.6): client flags (bit 0: the client used TLS),
# then a 32-bit verify result.
SSL_TLV_TLS = b"\x01\x00\x00\x00\x00"
SSL_TLV_PLAIN = b"\x00\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("tlvs", "scheme"),
    [
        ((), "http"),
        ([(ProxyTLV.SSL, SSL_TLV_PLAIN)], "http"),
        ([(ProxyTLV.SSL, SSL_TLV_TLS)], "https"),
    ],
)
def test_haproxy_ssl_tlv_sets_the_scheme(tlvs, scheme):
    header = encode_proxy_header(
        IPv4Address("203.0.113.7", 41000), IPv4Address("192.0.2.10", 443), tlvs=tlvs
    )
    port = wsgi.serve("haproxy:tcp:0:interface=127.0.0.1", environ_app, log=None)
    client = greenpoint.client_from_string(f"tcp:127.0.0.1:{port.get_host().port}")
    with port, client.open(timeout=5) as stream:
        stream.sendall(header + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while data := stream.recv(65536):
            raw += data
    values = parse(raw.partition(b"\r\n\r\n")[2])
    assert values["REMOTE_ADDR"] == "203.0.113.7"
    assert values["wsgi.url_scheme"] == scheme


@pytest.mark.skipif(
    HAPROXY is None, reason="HAProxy is not installed (Debian/Ubuntu: apt-get install haproxy)"
)
def test_real_haproxy_terminating_tls_gives_https(tmp_path):
    from gevent import socket as gsocket
    from gevent import ssl as gssl

    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    pem = tmp_path / "server.pem"
    authority.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    port = wsgi.serve("haproxy:tcp:0:interface=127.0.0.1", environ_app, log=None)
    fronts = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
    lines = ["global", "    nbthread 1", "defaults", "    mode tcp"]
    lines += ["    timeout connect 5s", "    timeout client 10s", "    timeout server 10s"]
    for index, (front, bind_options) in enumerate(zip(fronts, [f"ssl crt {pem}", ""], strict=True)):
        front.bind(("127.0.0.1", 0))
        front.listen(8)
        lines += [
            f"frontend fe{index}",
            f"    bind fd@{front.fileno()} {bind_options}",
            f"    default_backend be{index}",
            f"backend be{index}",
            f"    server s{index} 127.0.0.1:{port.get_host().port} send-proxy-v2-ssl",
        ]
    context = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
    authority.configure_trust(context)
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    try:
        with port, haproxy_process(tmp_path, lines, [f.fileno() for f in fronts]):
            results = []
            for index, front in enumerate(fronts):
                raw_client = gsocket.create_connection(front.getsockname(), timeout=5)
                client = (
                    context.wrap_socket(raw_client, server_hostname="localhost")
                    if index == 0
                    else raw_client
                )
                with client:
                    client.sendall(request)
                    raw = b""
                    while data := client.recv(65536):
                        raw += data
                results.append(parse(raw.partition(b"\r\n\r\n")[2]))
    finally:
        for front in fronts:
            front.close()
    assert [values["wsgi.url_scheme"] for values in results] == ["https", "http"]
    assert all(values["REMOTE_ADDR"] == "127.0.0.1" for values in results)


def test_access_line_of_a_malformed_request_names_that_request():
    log = io.StringIO()
    with wsgi.serve(
        "tcp:0:interface=127.0.0.1", environ_app, log=log, access_log_format='%(h)s "%(r)s" %(s)s'
    ) as port:
        client = greenpoint.client_from_string(f"tcp:127.0.0.1:{port.get_host().port}")
        with client.open(timeout=5) as stream:
            # A good request, then on the same connection one with a broken header.
            stream.sendall(b"GET /good HTTP/1.1\r\nHost: x\r\n\r\n")
            stream.sendall(b"GET /bad HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
            raw = b""
            while data := stream.recv(65536):
                raw += data
    assert raw.count(b"HTTP/1.1 200 ") == 1 and raw.count(b"HTTP/1.1 400 ") == 1
    assert log.getvalue().splitlines() == [
        '127.0.0.1 "GET /good HTTP/1.1" 200',
        '127.0.0.1 "GET /bad HTTP/1.1" 400',
    ]
