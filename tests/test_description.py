"""The description language: tokenizing, parsing, quoting and formatting."""

from __future__ import annotations

import pytest
from twisted.internet import endpoints as twisted_endpoints

from greenpoint import (
    Description,
    DescriptionError,
    parse_description,
    quote_string_argument,
    quoteStringArgument,
)
from greenpoint._description import format_description, split_leading_keywords

# (description, prefix, args, kwargs)
PARSES = [
    # Twisted's own rules and examples (ANCHORS §1.2, Twisted's endpoint docs).
    ("a:b=c=d", "a", (), {"b": "c=d"}),  # later "=" are literal
    ("a:b:c=d:e", "a", ("b", "e"), {"c": "d"}),  # positional order kept around keywords
    ("a::b", "a", ("", "b"), {}),  # empty segments survive
    ("a:", "a", ("",), {}),
    ("a:=v", "a", (), {"": "v"}),  # a leading "=" gives the empty key
    ("a:k=1:k=2", "a", (), {"k": "2"}),  # the last duplicate wins
    ("tcp6:80:interface=\\:\\:1", "tcp6", ("80",), {"interface": "::1"}),
    ("a:x\\:y", "a", ("x:y",), {}),
    ("a:x\\=y", "a", ("x=y",), {}),
    ("a:x\\\\y", "a", ("x\\y",), {}),
    ("a:\\q", "a", ("q",), {}),  # "\" escapes any character
    ("a:k\\=ey=v", "a", (), {"k=ey": "v"}),
    ("tcp:80", "tcp", ("80",), {}),
    ("tcp:80:interface=127.0.0.1", "tcp", ("80",), {"interface": "127.0.0.1"}),
    ("tcp:host=www.example.com:port=80", "tcp", (), {"host": "www.example.com", "port": "80"}),
    (
        "ssl:443:privateKey=key.pem:certKey=crt.pem",
        "ssl",
        ("443",),
        {"privateKey": "key.pem", "certKey": "crt.pem"},
    ),
    ("unix:/var/run/finger", "unix", ("/var/run/finger",), {}),
    ("unix:path=/var/run/x:timeout=5", "unix", (), {"path": "/var/run/x", "timeout": "5"}),
    ("tls:example.com:443:timeout=2.5", "tls", ("example.com", "443"), {"timeout": "2.5"}),
    ("systemd:domain=INET:index=0", "systemd", (), {"domain": "INET", "index": "0"}),
    ("stdio", "stdio", (), {}),
    # Prefixes are case-insensitive; keys and values are not touched.
    ("TCP:80", "tcp", ("80",), {}),
    ("Tcp:80:bindAddress=X", "tcp", ("80",), {"bindAddress": "X"}),
    # Bracketed IPv6 literals.
    ("tcp:[::1]:443", "tcp", ("::1", "443"), {}),
    ("tcp:80:interface=[::1]", "tcp", ("80",), {"interface": "::1"}),
    ("tcp:[fe80::1%eth0]:80", "tcp", ("fe80::1%eth0", "80"), {}),
    (
        "tcp:[2001:db8::1]:443:bindAddress=[::1]",
        "tcp",
        ("2001:db8::1", "443"),
        {"bindAddress": "::1"},
    ),
    ("a:[]", "a", ("",), {}),
    ("a:[x=y]", "a", ("x=y",), {}),  # "=" inside brackets is literal too
    # "[" opens a bracket only at the start of a value; "]" alone is literal.
    ("unix:/tmp/a[b", "unix", ("/tmp/a[b",), {}),
    ("unix:/tmp/a]b", "unix", ("/tmp/a]b",), {}),
    ("unix:\\[x", "unix", ("[x",), {}),
    # Abstract sockets: the parser keeps "@", the unix parser interprets it.
    ("unix:@name", "unix", ("@name",), {}),
    # Bytes are text too.
    (b"tcp:80:interface=[::1]", "tcp", ("80",), {"interface": "::1"}),
    (b"unix:/tmp/\xff", "unix", ("/tmp/\udcff",), {}),  # undecodable bytes survive
    (bytearray(b"TCP:80"), "tcp", ("80",), {}),
]


@pytest.mark.parametrize(("description", "prefix", "args", "kwargs"), PARSES)
def test_parse_description(description, prefix, args, kwargs):
    parsed = parse_description(description)
    assert (parsed.prefix, parsed.args, parsed.kwargs) == (prefix, args, kwargs)


@pytest.mark.parametrize(
    ("description", "rest"),
    [
        ("haproxy:tcp:80:interface=[::1]", "tcp:80:interface=[::1]"),
        ("haproxy:tcp\\:x:80", "tcp\\:x:80"),  # rest is raw: escapes are kept
        ("a\\:b:c", "c"),  # the first *unescaped* separator ends the prefix
        ("[a:b]:c", "c"),  # ... and a bracketed one does not count
        ("stdio", ""),
        ("a:", ""),
    ],
)
def test_rest_is_the_raw_text_after_the_prefix(description, rest):
    assert parse_description(description).rest == rest


def test_rest_lets_a_parser_reparse_a_nested_description():
    outer = parse_description("haproxy:tcp:80:interface=[::1]:backlog=5")
    inner = parse_description(outer.rest)
    assert inner == Description("tcp", ("80",), {"interface": "::1", "backlog": "5"})


# (description, words the message must contain, position or None)
BAD = [
    ("", ["empty"], None),
    ("   ", ["empty"], None),
    (b"", ["empty"], None),
    ("tcp:80\\", ["trailing backslash", "position 6"], 6),
    ("\\", ["trailing backslash", "position 0"], 0),
    ("tcp:[::1:80", ["unclosed '['", "position 4"], 4),
    ("tcp:80:interface=[::1", ["unclosed '['", "position 17"], 17),
    ("tcp:[::1]x:80", ["after ']'", "position 9"], 9),
    ("tcp:[::1]=x", ["after ']'", "position 9"], 9),
    ("=tcp:80", ["must start with a type"], 0),
    ("port=80", ["must start with a type", "'port=80'"], 0),
    (":80", ["empty type"], 0),
    (" :80", ["empty type"], 0),
]


@pytest.mark.parametrize(("description", "words", "position"), BAD)
def test_bad_descriptions_say_what_and_where(description, words, position):
    with pytest.raises(DescriptionError) as info:
        parse_description(description)
    for word in words:
        assert word in str(info.value)
    assert info.value.position == position


@pytest.mark.parametrize("value", [None, 80, 1.5, ["tcp", "80"], object()])
def test_a_description_that_is_not_text_is_a_description_error(value):
    with pytest.raises(DescriptionError, match="must be str or bytes"):
        parse_description(value)


def test_description_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_description("tcp:\\")


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", "plain"),
        ("a:b", "a\\:b"),
        ("a=b", "a\\=b"),  # Twisted leaves "=", which then parses as a keyword
        ("a\\b", "a\\\\b"),
        ("[::1]", "\\[::1]".replace("::", "\\:\\:")),
        ("", ""),
        (b"/tmp/a:b", b"/tmp/a\\:b"),  # bytes in, bytes out
        (b"\xff:", b"\xff\\:"),
    ],
)
def test_quote_string_argument(text, quoted):
    assert quote_string_argument(text) == quoted
    assert quoteStringArgument is quote_string_argument


@pytest.mark.parametrize("text", ["a=b", "x:y=z", "[::1]", "\\", "=", ":", "[", "@abstract"])
def test_quoted_text_comes_back_as_one_positional(text):
    parsed = parse_description("unix:" + quote_string_argument(text))
    assert parsed.args == (text,)
    assert parsed.kwargs == {}


def test_quoted_bytes_come_back_unchanged():
    path = b"/tmp/\xff=:\\["
    parsed = parse_description(b"unix:" + quote_string_argument(path))
    assert parsed.args[0].encode("utf-8", "surrogateescape") == path


@pytest.mark.parametrize(
    ("prefix", "args", "kwargs", "text"),
    [
        ("tcp", ("80",), {}, "tcp:80"),
        ("tcp", (80,), {"interface": "::1"}, "tcp:80:interface=[::1]"),
        ("tcp", ("example.com", 443), {"timeout": 2.5}, "tcp:example.com:443:timeout=2.5"),
        ("tcp", ("fe80::1%eth0", 80), {}, "tcp:[fe80::1%eth0]:80"),
        ("unix", ("/tmp/a=b:c",), {}, "unix:/tmp/a\\=b\\:c"),
        ("unix", ("@name",), {"lockfile": 0}, "unix:@name:lockfile=0"),
        ("unix", (b"/tmp/x",), {}, "unix:/tmp/x"),
        ("stdio", (), {}, "stdio"),
        ("a", ("",), {}, "a:"),
        ("a", ("", ""), {}, "a::"),
        ("a", (), {"": "v"}, "a:=v"),
        ("a", (), {"k=ey": "v=w"}, "a:k\\=ey=v\\=w"),
        ("a:b", ("c",), {}, "a\\:b:c"),
    ],
)
def test_format_description(prefix, args, kwargs, text):
    assert format_description(prefix, args, kwargs) == text
    as_text = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
    expected = Description(prefix, as_text, {k: str(v) for k, v in kwargs.items()})
    assert parse_description(text) == expected


def test_format_description_takes_any_iterable_of_args():
    assert format_description("a", iter(())) == "a"
    assert format_description("a", iter(["x", "y"])) == "a:x:y"


@pytest.mark.parametrize(
    "text",
    [
        "tcp:80",
        "tcp:[::1]:443:timeout=2.5",
        "tcp6:80:interface=\\:\\:1",
        "a:b=c=d",
        "a::b:=v",
        "unix:/tmp/x\\:y:mode=600",
        "haproxy:tcp\\:80",
    ],
)
def test_str_of_a_description_parses_back_to_it(text):
    parsed = parse_description(text)
    assert parse_description(str(parsed)) == parsed


def test_description_normalises_what_it_is_given():
    made = Description("TCP", ["80"], {"interface": "::1"})
    assert made.prefix == "tcp"
    assert made.args == ("80",)
    assert made == parse_description("tcp:80:interface=[::1]")
    # rest is derived when not given, and is not part of equality
    assert made.rest == "80:interface=[::1]"
    assert made == Description("tcp", ("80",), {"interface": "::1"}, rest="80:interface=\\:\\:1")


def test_description_is_hashable_and_frozen():
    one = parse_description("tcp:80:a=1:b=2")
    two = parse_description("tcp:80:b=2:a=1")
    assert one == two
    assert hash(one) == hash(two)
    assert len({one, two}) == 1
    with pytest.raises(AttributeError):
        one.prefix = "udp"  # type: ignore[misc]


def test_description_kwargs_are_a_private_copy():
    kwargs = {"a": "1"}
    made = Description("x", (), kwargs)
    kwargs["a"] = "2"
    assert made.kwargs == {"a": "1"}


# What Twisted itself does with the same text: our parser must agree everywhere its
# grammar is defined (no brackets, no trailing backslash), apart from the prefix case.


@pytest.mark.parametrize(
    "text",
    [
        "a:b=c=d",
        "a:b:c=d:e",
        "a::b",
        "a:=v",
        "a:k=1:k=2",
        "tcp6:80:interface=\\:\\:1",
        "a:x\\=y:z\\\\w",
        "unix:/tmp/a]b",
        "unix:/tmp/a[b",
        "ssl:443:privateKey=key.pem:certKey=crt.pem",
    ],
)
def test_agrees_with_twisted(text):
    twisted_args, twisted_kwargs = twisted_endpoints._parse(text)
    parsed = parse_description(text)
    assert [parsed.prefix, *parsed.args] == twisted_args
    assert parsed.kwargs == twisted_kwargs


# -- a wrapper's own keywords before a nested description (haproxy:) ----------------


@pytest.mark.parametrize(
    ("rest", "keywords", "tail"),
    [
        ("tcp:8080", {}, "tcp:8080"),
        ("timeout=2:tcp:8080", {"timeout": "2"}, "tcp:8080"),
        # A bracketed or escaped ":" never ends a segment; the tail stays raw.
        (
            "allow=[10.0.0.0/8,fd00::/8]:tcp:8080:interface=[::1]",
            {"allow": "10.0.0.0/8,fd00::/8"},
            "tcp:8080:interface=[::1]",
        ),
        ("a=x\\:y:unix:/p\\:q", {"a": "x:y"}, "unix:/p\\:q"),
        ("a=[x:[y]]:tcp:80", {"a": "x:[y]"}, "tcp:80"),  # brackets nest, as in the parser
        ("a=1:a=2:tcp:80", {"a": "2"}, "tcp:80"),  # the last duplicate wins
        ("timeout=2", {"timeout": "2"}, ""),  # nothing wrapped: the caller says so
        ("", {}, ""),
    ],
)
def test_split_leading_keywords(rest, keywords, tail):
    assert split_leading_keywords(rest) == (keywords, tail)


def test_split_leading_keywords_reports_what_the_parser_reports():
    with pytest.raises(DescriptionError, match="unclosed"):
        split_leading_keywords("allow=[10.0.0.0/8:tcp:80")


def test_format_description_appends_a_raw_tail_after_the_keys():
    text = format_description("haproxy", (), {"timeout": 2.5}, tail="tcp:[::1]:80")
    assert text == "haproxy:timeout=2.5:tcp:[::1]:80"
    assert format_description("haproxy", tail="unix:/p\\:q") == "haproxy:unix:/p\\:q"
