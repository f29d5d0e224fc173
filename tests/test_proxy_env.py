"""Proxies from the environment, opt-in only, by curl's rules."""

from __future__ import annotations

import pytest
from _proxy_helpers import microsocks
from _tls_helpers import echo

from greenpoint import client_from_string, server_from_string
from greenpoint._proxy_env import ProxyURL, no_proxy_matches, parse_proxy_url, proxy_for, proxy_url
from greenpoint.endpoints.envproxy import client_from_proxy_environment
from greenpoint.endpoints.hostname import HostnameEndpoint
from greenpoint.endpoints.proxy import HTTPConnectClientEndpoint, SOCKS5ClientEndpoint


@pytest.mark.parametrize(
    ("environ", "scheme", "expected"),
    [
        ({"https_proxy": "a", "HTTPS_PROXY": "b", "ALL_PROXY": "c"}, "https", "a"),
        ({"HTTPS_PROXY": "b", "ALL_PROXY": "c"}, "https", "b"),
        ({"ALL_PROXY": "c"}, "https", "c"),
        ({"all_proxy": "d", "ALL_PROXY": "c"}, "ssh", "d"),
        ({"http_proxy": "e"}, "http", "e"),
        ({"HTTP_PROXY": "httpoxy", "ALL_PROXY": "c"}, "http", "c"),  # as curl: ignored
        ({"HTTPS_PROXY": " "}, "https", None),
        ({}, "https", None),
    ],
)
def test_which_variable_names_the_proxy(environ, scheme, expected):
    assert proxy_url(environ, scheme) == expected


@pytest.mark.parametrize(
    ("host", "no_proxy", "matches"),
    [
        ("example.com", "example.com", True),
        ("www.example.com", "example.com", True),
        ("www.example.com", ".example.com", True),
        ("badexample.com", "example.com", False),
        ("anything", "*", True),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("10.1.2.3", "10.1.2.3", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("::1", "::1", True),
        ("[::1]", "::1", True),
        ("example.com", "other.com, example.com ", True),
        ("example.com", "", False),
    ],
)
def test_no_proxy(host, no_proxy, matches):
    assert no_proxy_matches(host, no_proxy) is matches


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("proxy.example:3128", ProxyURL("http", "proxy.example", 3128)),
        ("http://proxy.example", ProxyURL("http", "proxy.example", 1080)),
        ("https://proxy.example", ProxyURL("https", "proxy.example", 443)),
        ("socks5h://u:p%40ss@[::1]:1080", ProxyURL("socks5h", "::1", 1080, "u", "p@ss")),
        ("SOCKS4A://127.0.0.1:9050", ProxyURL("socks4a", "127.0.0.1", 9050)),
    ],
)
def test_proxy_urls(url, expected):
    parsed = parse_proxy_url(url)
    assert parsed == expected
    assert parsed.password == expected.password


@pytest.mark.parametrize(
    ("url", "words"),
    [("ftp://proxy", "unknown scheme 'ftp'"), ("http://u:secret@:80", "no host"),
     ("http://u:secret@proxy:99999", "bad port")],
)  # fmt: skip
def test_bad_proxy_urls_do_not_show_the_password(url, words):
    with pytest.raises(ValueError, match=words) as caught:
        parse_proxy_url(url)
    assert "secret" not in str(caught.value)


def test_proxy_for_honours_no_proxy():
    environ = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "localhost,.internal"}
    assert proxy_for("db.internal", "https", environ) is None
    assert proxy_for("example.com", "https", environ) == ProxyURL("http", "proxy", 3128)


def test_the_endpoint_for_each_proxy_kind():
    def via(url, scheme="https"):
        return client_from_proxy_environment("example.com", 443, environ={"ALL_PROXY": url})

    http = via("http://u:pw@proxy:3128")
    assert isinstance(http, HTTPConnectClientEndpoint)
    assert (http.user, http.password, str(http.proxy)) == ("u", "pw", "tcp:proxy:3128")
    assert str(via("https://proxy")) == "httpconnect:example.com:443:proxy=[tls:proxy:443]"
    socks = via("socks5://proxy")
    assert isinstance(socks, SOCKS5ClientEndpoint) and socks.resolve == "local"
    assert via("socks5h://proxy").resolve == "proxy"
    assert via("socks4a://proxy").prefix == "socks4a"
    direct = client_from_proxy_environment("example.com", 443, environ={})
    assert isinstance(direct, HostnameEndpoint)


def test_nothing_reads_the_environment_unless_asked(monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "socks5h://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "socks5h://127.0.0.1:9")
    assert isinstance(client_from_string("tcp:example.com:443"), HostnameEndpoint)
    assert str(client_from_string("tls:example.com:443")) == "tls:example.com:443"


def test_envproxy_description_goes_through_the_proxy_named_at_open(tmp_path, monkeypatch):
    echo_port = server_from_string("tcp:0:interface=127.0.0.1").serve(echo)
    try:
        target = echo_port.get_host().port
        endpoint = client_from_string(f"envproxy:127.0.0.1:{target}:scheme=ssh")
        assert str(endpoint) == f"envproxy:127.0.0.1:{target}:scheme=ssh"
        with microsocks(tmp_path, "bob", "pw") as proxy:
            monkeypatch.setenv("ALL_PROXY", f"socks5h://bob:pw@127.0.0.1:{proxy}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            assert str(endpoint.resolved()).startswith(f"socks5:127.0.0.1:{target}:")
            with endpoint.open(timeout=10) as stream:
                stream.sendall(b"via env")
                assert stream.recv(100) == b"via env"
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            assert isinstance(endpoint.resolved(), HostnameEndpoint)
    finally:
        echo_port.stop_listening(timeout=1)
