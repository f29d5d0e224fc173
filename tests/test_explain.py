"""What ``greenpoint check`` says about a description, and the README's prefix table."""

from __future__ import annotations

import pathlib
import sys

import pytest

from greenpoint._params import REQUIRED, Param, boolean, number, octal_mode
from greenpoint.cli._explain import explain, explain_either, format_value, prefix_table
from greenpoint.errors import DescriptionError

ROOT = pathlib.Path(__file__).resolve().parent.parent


def keys(explanation):
    return {key.name: (key.value, key.default, key.given) for key in explanation.keys}


def test_explain_lists_every_key_with_value_default_and_whether_given():
    explanation = explain("tcp:0:interface=127.0.0.1:backlog=5", "server")
    assert type(explanation.endpoint).__name__ == "TCP4ServerEndpoint"
    # keys in the order the table declares them, the order check lists them
    assert explanation.canonical == "tcp4:0:interface=127.0.0.1:backlog=5"
    assert keys(explanation) == {
        "port": ("0", "required", True),
        "backlog": ("5", "50", True),
        "interface": ("127.0.0.1", '""', True),
        "reusePort": ("0", "0", False),
        "nodelay": ("1", "1", False),
        "keepAlive": ("none", "none", False),
        "keepAliveIdle": ("none", "none", False),
        "keepAliveInterval": ("none", "none", False),
        "keepAliveCount": ("none", "none", False),
        "userTimeout": ("none", "none", False),
        "bindToDevice": ("none", "none", False),
        "ipv6only": ("0", "0", False),
    }


def test_explain_a_wrapper_explains_what_it_wraps():
    explanation = explain("haproxy:allow=10.0.0.0/8:unix:/run/app.sock:mode=600", "server")
    assert keys(explanation)["allow"] == ("10.0.0.0/8", "none", True)
    assert keys(explanation)["timeout"] == ("5", "5", False)
    inner = explanation.wrapped
    assert type(inner.endpoint).__name__ == "UNIXServerEndpoint"
    assert keys(inner)["mode"] == ("600", "666", True)


def test_explain_either_side():
    assert [e.side for e in explain_either("unix:/run/app.sock")] == ["client", "server"]
    assert [e.side for e in explain_either("tcp:8080")] == ["server"]
    assert [e.side for e in explain_either("tcp:127.0.0.1:8080")] == ["client"]


@pytest.mark.parametrize(
    ("text", "sides", "message"),
    [
        ("tcp:8080", ["client"], "tcp: missing port"),
        ("stdio:", ["client"], "'stdio' is a server type, not a client one"),
        ("tpc:80", ["client", "server"], "unknown server endpoint type 'tpc': did you mean 'tcp'?"),
        ("systemd:index=0", ["client", "server"], "systemd: missing domain"),
        (
            "tcp:80:timout=1",
            ["client", "server"],
            "as a client: 'timout' is not a parameter of tcp: did you mean 'timeout'?",
        ),
    ],
)
def test_explain_either_reports_the_error_that_helps(text, sides, message):
    with pytest.raises(DescriptionError) as info:
        explain_either(text, sides)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("param", "value", "text"),
    [
        (Param("x"), REQUIRED, "required"),
        (Param("x"), None, "none"),
        (Param("x", boolean), True, "1"),
        (Param("x", boolean), False, "0"),
        (Param("x", octal_mode), 0o640, "640"),
        (Param("x", number), 30.0, "30"),
        (Param("x", number), 2.5, "2.5"),
        (Param("x"), ("h2", "http/1.1"), "h2,http/1.1"),
        (Param("x"), "", '""'),
        (Param("x"), "::", "[::]"),  # a bare :: would split into three values
        (Param("x"), "fe80::1%eth0", "[fe80::1%eth0]"),
    ],
)
def test_format_value(param, value, text):
    assert format_value(param, value) == text


def test_prefix_table_has_every_builtin_prefix_and_its_defaults():
    table = prefix_table()
    for form in ("`tcp:HOST:PORT`", "`unix:PATH`", "`tls:HOST[:PORT]`", "`ssl:HOST:PORT`"):
        assert form in table.split("| Server description")[0]
    server_rows = table.split("| Server description")[1]
    for form in ("`tcp:PORT`", "`fd:FILENO:domain=DOMAIN`", "`stdio`", "`tls:PATH[:PORT]`"):
        assert form in server_rows
    assert "| `unix:ADDRESS` | `mode=666`, `backlog=50`, `lockfile=0` |" in server_rows
    assert "`haproxy:[KEY=VALUE:]...SERVER` | `timeout=5`" in server_rows


def test_readme_table_is_the_generated_one():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_prefix_table
    finally:
        sys.path.remove(str(ROOT / "docs"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert gen_prefix_table.updated(readme) == readme, (
        "README.md's prefix table is out of date: run python docs/gen_prefix_table.py"
    )


def test_every_default_shown_parses_back_to_itself():
    # What check and the README print as a default can be pasted into a description.
    from greenpoint._description import parse_description
    from greenpoint._registry import parser_params
    from greenpoint.cli._explain import _builtin_parsers

    checked = 0
    for side in ("client", "server"):
        for parser in _builtin_parsers(side).values():
            for param in parser_params(parser):
                if param.default in (REQUIRED, None, ""):  # "" is shown as `""`: empty
                    continue
                shown = format_value(param, param.default)
                given = parse_description(f"x:{param.name}={shown}").kwargs[param.name]
                assert param.coerce(given) == param.default or (
                    isinstance(param.default, tuple | list | frozenset)
                ), (side, param.name, shown)
                checked += 1
    assert checked > 50


def test_check_shows_the_ipv6_default_bracketed_and_it_parses():
    explanation = explain("tcp6:443", "server")
    assert keys(explanation)["interface"][1] == "[::]"
    assert explain("tcp6:443:interface=[::]", "server").canonical == "tcp6:443"


def test_the_defaults_check_shows_for_tls_are_the_ones_used(monkeypatch, tmp_path):
    # Issue 19: the README and check said timeout=none and minimumVersion=none where
    # the endpoints use 30 s and TLSv1.2.
    from greenpoint.endpoints import _tls_endpoints

    client = explain("tls:example.com:443", "client")
    assert keys(client)["timeout"] == ("30", "30", False)
    used = []
    monkeypatch.setattr(
        _tls_endpoints,
        "_open_then_handshake",
        lambda inner, options, timeout, address: used.append(timeout),
    )
    client.endpoint.open()
    assert used == [30.0]

    import trustme

    pem = tmp_path / "server.pem"
    trustme.CA().issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = explain(f"ssl:0:privateKey={pem}", "server")
    assert keys(server)["minimumVersion"] == ("TLSv1.2", "TLSv1.2", False)
    assert server.endpoint.tls_options.minimum_version == "TLSv1.2"
    assert "`minimumVersion=TLSv1.2`" in prefix_table().split("| `ssl:PORT`")[1].split("\n")[0]
