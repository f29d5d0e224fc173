"""Property tests for the description language (hypothesis).

Random text never crashes the parser (only ``DescriptionError`` comes out), quoting
round-trips any text, formatting round-trips any description, and where Twisted's
grammar is defined we read text exactly as Twisted does.
"""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import endpoints as twisted_endpoints

from greenpoint import (
    Description,
    DescriptionError,
    _registry,
    client_from_string,
    parse_description,
    quote_string_argument,
    register_client_parser,
    register_server_parser,
    server_from_string,
)
from greenpoint._description import format_description
from greenpoint._params import (
    Param,
    boolean,
    choice,
    format_value,
    host,
    integer,
    ip_literal,
    number,
    octal_mode,
    port,
)

# No example database in the worktree, and no deadline on a shared, busy machine.
SETTINGS = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Text rich in the characters the grammar cares about, and text of any kind.
GRAMMAR_CHARS = list(":=\\[]@%. aZ09é\x00\udcff")
grammar_text = st.text(alphabet=st.sampled_from(GRAMMAR_CHARS), max_size=40)
any_text = st.one_of(grammar_text, st.text(max_size=40))
any_bytes = st.one_of(
    st.binary(max_size=40), grammar_text.map(lambda t: t.encode("utf-8", "surrogateescape"))
)


@SETTINGS
@given(st.one_of(any_text, any_bytes))
def test_parse_gives_a_description_or_a_description_error(text):
    try:
        parsed = parse_description(text)
    except DescriptionError:
        return
    assert isinstance(parsed, Description)
    assert parsed.prefix and parsed.prefix == parsed.prefix.lower()
    assert all(isinstance(arg, str) for arg in parsed.args)


@SETTINGS
@given(any_text)
def test_quoted_text_round_trips_as_positional_keyword_value_and_key(text):
    quoted = quote_string_argument(text)
    assert parse_description("p:" + quoted).args == (text,)
    assert parse_description("p:k=" + quoted).kwargs == {"k": text}
    assert parse_description("p:" + quoted + "=v").kwargs == {text: "v"}
    assert parse_description("p:a:" + quoted + ":b").args == ("a", text, "b")


@SETTINGS
@given(st.binary(max_size=60))
def test_quoted_bytes_round_trip(data):
    quoted = quote_string_argument(data)
    assert isinstance(quoted, bytes)
    (value,) = parse_description(b"p:" + quoted).args
    assert value.encode("utf-8", "surrogateescape") == data


prefixes = any_text.filter(lambda prefix: prefix.strip() != "")
values = st.one_of(any_text, st.integers(), st.floats(allow_nan=False, allow_infinity=False))


@SETTINGS
@given(prefixes, st.lists(values, max_size=5), st.dictionaries(any_text, values, max_size=5))
def test_format_then_parse_gives_the_same_description(prefix, args, kwargs):
    text = format_description(prefix, args, kwargs)
    # Numbers are written as descriptions write them (30.0 as 30): format_value.
    expected = Description(
        prefix, [format_value(a) for a in args], {k: format_value(v) for k, v in kwargs.items()}
    )
    assert parse_description(text) == expected
    assert parse_description(str(expected)) == expected


@SETTINGS
@given(any_text)
def test_str_of_a_parsed_description_parses_to_it(text):
    try:
        parsed = parse_description(text)
    except DescriptionError:
        return
    assert parse_description(str(parsed)) == parsed


# Twisted's grammar has no brackets, and its keywords must be ASCII (it raises
# UnicodeEncodeError otherwise); everywhere else we must read text as it does.
twisted_text = st.text(
    alphabet=st.sampled_from([c for c in GRAMMAR_CHARS if c != "[" and c.isascii()]),
    max_size=40,
)


@SETTINGS
@given(twisted_text)
def test_reads_text_as_twisted_does(text):
    description = "p:" + text
    try:
        ours = parse_description(description)
    except DescriptionError:
        # Only a trailing backslash, which crashes Twisted's tokenizer.
        with pytest.raises(RuntimeError):
            twisted_endpoints._parse(description)
        return
    twisted_args, twisted_kwargs = twisted_endpoints._parse(description)
    assert [ours.prefix, *ours.args] == twisted_args
    assert ours.kwargs == twisted_kwargs


@SETTINGS
@given(twisted_text.filter(lambda t: "=" not in t and not t.startswith("[")))
def test_twisted_reads_our_quoting(text):
    # Our extra escapes ("\=", "\[") are plain escapes to Twisted.
    assert twisted_endpoints._parse("p:" + quote_string_argument(text)) == (["p", text], {})


# Whole descriptions through the registry: a parser with every kind of coercer, and
# every built-in prefix whose module exists, must turn any junk into DescriptionError.

PROPERTY_PARSER = _registry.EndpointParser(
    "proptest",
    (
        Param("host", host, positional=True),
        Param("port", port, positional=True),
        Param("timeout", number, default=30.0),
        Param("backlog", integer(0), default=50),
        Param("mode", octal_mode, default=0o666),
        Param("lockfile", boolean, default=True),
        Param("interface", ip_literal, default=""),
        Param("domain", choice("INET", "INET6", "UNIX"), default="INET"),
    ),
    lambda **values: values,
)


def _builtin_prefixes(table):
    return sorted(
        prefix
        for prefix, module in table.builtin_modules.items()
        if importlib.util.find_spec(module) is not None
    )


KNOWN = [
    "proptest",
    *sorted(
        set(_builtin_prefixes(_registry._CLIENTS)) | set(_builtin_prefixes(_registry._SERVERS))
    ),
]
KEYS = [
    "host",
    "port",
    "timeout",
    "backlog",
    "mode",
    "lockfile",
    "interface",
    "domain",
    "index",
    "name",
    "path",
    "privateKey",
    "certKey",
    "bindAddress",
]
segment = st.one_of(
    any_text.map(quote_string_argument),
    st.tuples(st.sampled_from(KEYS), any_text).map(
        lambda kv: f"{kv[0]}={quote_string_argument(kv[1])}"
    ),
    any_text,  # raw, unquoted: may hold separators, brackets, backslashes
)


@pytest.fixture(scope="module")
def property_parser():
    register_client_parser("proptest", PROPERTY_PARSER, replace=True)
    register_server_parser("proptest", PROPERTY_PARSER, replace=True)
    yield
    del _registry._CLIENTS.registered["proptest"]
    del _registry._SERVERS.registered["proptest"]


@SETTINGS
@given(st.sampled_from(KNOWN), st.lists(segment, max_size=6), st.booleans())
def test_registry_turns_junk_into_description_errors(property_parser, prefix, segments, server):
    description = ":".join([prefix.upper() if len(segments) % 2 else prefix, *segments])
    build = server_from_string if server else client_from_string
    try:
        build(description)  # anything but DescriptionError fails the test
    except DescriptionError as error:
        assert str(error)
