"""Declared parameters: binding values to names, coercion, defaults and messages."""

from __future__ import annotations

import copy
import pickle

import pytest

from greenpoint import DescriptionError
from greenpoint._params import (
    REQUIRED,
    Param,
    bind,
    boolean,
    choice,
    closest,
    describe,
    format_value,
    host,
    integer,
    ip_literal,
    number,
    octal_mode,
    port,
    register_inverse,
    text,
)

# A tcp-client-like declaration used throughout.
TCP = (
    Param("host", host, positional=True, help="a host name or IP address"),
    Param("port", port, positional=True, help="0-65535"),
    Param("timeout", number, default=30.0),
    Param("bindAddress", host, default=None, target="bind_address"),
)


@pytest.mark.parametrize(
    ("coerce", "value", "expected"),
    [
        (port, "0", 0),
        (port, "80", 80),
        (port, "65535", 65535),
        (integer(), "-3", -3),
        (integer(), "+3", 3),
        (integer(1), "1", 1),
        (number, "30", 30.0),
        (number, "2.5", 2.5),
        (number, ".5", 0.5),
        (number, "5.", 5.0),
        (number, "0", 0.0),
        (number, "1e2", 100.0),
        (boolean, "1", True),
        (boolean, "0", False),
        (boolean, "True", True),
        (boolean, "no", False),
        (boolean, " ON ", True),
        (octal_mode, "600", 0o600),
        (octal_mode, "0666", 0o666),
        (octal_mode, "0o644", 0o644),
        (octal_mode, "777", 0o777),
        (host, "example.com", "example.com"),
        (host, " ::1 ", "::1"),
        (ip_literal, "", ""),
        (ip_literal, "127.0.0.1", "127.0.0.1"),
        (ip_literal, "::1", "::1"),
        (ip_literal, "fe80::1%eth0", "fe80::1%eth0"),
        (choice("INET", "INET6", "UNIX"), "inet6", "INET6"),
        (text, " as is ", " as is "),
    ],
)
def test_coercers_accept(coerce, value, expected):
    result = coerce(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("coerce", "value", "words"),
    [
        (port, "-1", "at least 0"),
        (port, "65536", "at most 65535"),
        (port, "http", "whole number"),
        (port, "", "whole number"),
        (port, "8_0", "whole number"),  # int() would take it
        (port, "\u0668\u0660", "whole number"),  # Arabic-Indic digits: int() would take them
        (port, "80.0", "whole number"),
        (port, "9" * 5000, "too large"),  # int() would raise its own digit-limit error
        (integer(1, 5), "0", "at least 1"),
        (integer(1, 5), "6", "at most 5"),
        (number, "-1", "number of seconds"),
        (number, "nan", "number of seconds"),
        (number, "inf", "number of seconds"),
        (number, "1e999", "too large"),
        (number, "1_0", "number of seconds"),
        (number, "", "number of seconds"),
        (boolean, "maybe", "1 or 0"),
        (boolean, "", "1 or 0"),
        (octal_mode, "8", "octal"),
        (octal_mode, "-1", "octal"),
        (octal_mode, "17777", "0 to 777"),
        (octal_mode, "7777", "only permission bits"),  # setuid/setgid/sticky on a socket
        (octal_mode, " 600", "octal"),
        (port, " 80", "no spaces"),
        (port, "80\n", "no spaces"),
        (port, " 443 ", "no spaces"),
        (number, "2.5 ", "no spaces"),
        (octal_mode, "rw", "octal"),
        (host, "  ", "host name"),
        (ip_literal, "example.com", "IP address"),
        (ip_literal, "1.2.3.256", "IP address"),
        (choice("INET", "INET6"), "UNIX", "INET, INET6"),
    ],
)
def test_coercers_refuse_with_a_reason(coerce, value, words):
    with pytest.raises(ValueError, match=words):
        coerce(value)


def test_bind_positional_and_defaults():
    assert bind("tcp", ["example.com", "80"], {}, TCP) == {
        "host": "example.com",
        "port": 80,
        "timeout": 30.0,
        "bind_address": None,
    }


def test_bind_positionals_may_be_given_by_name_and_targets_rename():
    bound = bind("tcp", [], {"port": "80", "host": "h", "bindAddress": "::1"}, TCP)
    assert bound == {"host": "h", "port": 80, "timeout": 30.0, "bind_address": "::1"}


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (["80"], {"host": "example.com"}),  # Twisted's clientFromString docstring
        (["example.com"], {"port": "80"}),
        ([], {"host": "example.com", "port": "80"}),
        (["example.com", "80"], {}),
    ],
)
def test_bind_positionals_fill_the_parameters_not_named(args, kwargs):
    bound = bind("tcp", args, kwargs, TCP)
    assert (bound["host"], bound["port"]) == ("example.com", 80)


def test_bind_fractional_timeout():
    assert bind("tcp", ["h", "1"], {"timeout": "2.5"}, TCP)["timeout"] == 2.5


@pytest.mark.parametrize(
    ("args", "kwargs", "parameter", "message"),
    [
        (["h"], {}, "port", "tcp: missing port (0-65535)"),
        ([], {"port": "80"}, "host", "tcp: missing host (a host name or IP address)"),
        (["h", "65536"], {}, "port", "tcp: bad port='65536': must be at most 65535"),
        (["h", "-1"], {}, "port", "tcp: bad port='-1': must be at least 0"),
        (["h", "http"], {}, "port", "tcp: bad port='http': expected a whole number"),
        (["h", "1"], {"timeout": "soon"}, "timeout", "tcp: bad timeout='soon'"),
        (
            ["h", "1"],
            {"port": "2"},
            "port",
            "tcp: too many positional values ['1'] (expected: host, as port= was given by keyword)",
        ),
        (
            ["h", "1"],
            {"prot": "2"},
            "prot",
            "'prot' is not a parameter of tcp: did you mean 'port'? "
            "(parameters: host, port, timeout, bindAddress)",
        ),
        (
            ["h", "1"],
            {"bindaddress": "x"},
            "bindaddress",
            "'bindaddress' is not a parameter of tcp: did you mean 'bindAddress'?",
        ),
        (
            ["h", "1"],
            {"bind_address": "x"},  # the Python spelling is a near miss, too
            "bind_address",
            "did you mean 'bindAddress'?",
        ),
        (["h", "1"], {"zzzzzz": "x"}, "zzzzzz", "'zzzzzz' is not a parameter of tcp (parameters"),
    ],
)
def test_bind_errors_name_prefix_and_parameter(args, kwargs, parameter, message):
    with pytest.raises(DescriptionError) as info:
        bind("tcp", args, kwargs, TCP)
    assert message in str(info.value)
    assert info.value.prefix == "tcp"
    assert info.value.parameter == parameter


def test_bind_too_many_positionals_lists_what_is_expected():
    with pytest.raises(DescriptionError) as info:
        bind("tcp", ["h", "1", "extra"], {}, TCP)
    assert "too many positional values ['extra']" in str(info.value)
    assert "expected: host, port" in str(info.value)
    assert info.value.prefix == "tcp"


def test_bind_with_no_positional_params():
    keyword_only = (Param("mode", str, default="a"),)
    with pytest.raises(DescriptionError, match="no positional values"):
        bind("thing", ["x"], {}, keyword_only)


def test_bind_for_a_prefix_without_parameters_says_so():
    with pytest.raises(DescriptionError) as info:
        bind("bare", ["x"], {}, ())
    assert str(info.value) == "bare: too many positional values ['x'] (it takes no parameters)"
    with pytest.raises(DescriptionError) as info:
        bind("bare", [], {"x": "1"}, ())
    assert str(info.value) == "'x' is not a parameter of bare (it takes no parameters)"
    assert info.value.parameter == "x"


def test_bind_suggestion_attribute():
    with pytest.raises(DescriptionError) as info:
        bind("tcp", ["h", "1"], {"timout": "1"}, TCP)
    assert info.value.suggestion == "timeout"


@pytest.mark.parametrize(
    "error", [TypeError, KeyError, IndexError, ZeroDivisionError, OverflowError]
)
def test_any_coercer_failure_becomes_a_description_error(error):
    def broken(value):
        raise error("boom")

    with pytest.raises(DescriptionError) as info:
        bind("x", ["v"], {}, (Param("value", broken, positional=True),))
    assert info.value.parameter == "value"
    assert isinstance(info.value.__cause__, error)


def test_a_coercer_may_raise_its_own_description_error():
    def picky(value):
        raise DescriptionError("x: value must be odd", prefix="x", parameter="value")

    with pytest.raises(DescriptionError, match="must be odd"):
        bind("x", ["2"], {}, (Param("value", picky, positional=True),))


@pytest.mark.parametrize(
    ("name", "known", "expected"),
    [
        ("prot", ["host", "port"], "port"),
        ("PORT", ["host", "port"], "port"),
        ("bind_address", ["bindAddress", "timeout"], "bindAddress"),
        ("privatekey", ["privateKey", "certKey"], "privateKey"),
        ("timout", ["timeout"], "timeout"),
        ("tpc", ["tcp", "unix"], "tcp"),
        ("xyzzy", ["tcp", "unix"], None),
        ("anything", [], None),
    ],
)
def test_closest(name, known, expected):
    assert closest(name, known) == expected


def test_param_properties():
    assert Param("port").required
    assert not Param("timeout", default=None).required
    assert Param("bindAddress", target="bind_address").keyword == "bind_address"
    assert Param("port").keyword == "port"


def test_required_marker_survives_copy_and_pickle():
    assert copy.deepcopy(Param("port")).required
    assert pickle.loads(pickle.dumps(REQUIRED)) is REQUIRED


@pytest.mark.parametrize(
    ("side", "text", "words"),
    [
        ("server", "tcp6:0:interface=::", r"must be bracketed, \[::\], or its colons escaped"),
        ("client", "tcp:127.0.0.1:80:bindAddress=::1", "must be bracketed"),
        ("client", "tcp:localhost: 80", r"bad port=' 80': expected a whole number, with no spaces"),
        ("client", "tcp:localhost:80\n", r"bad port='80\\n'"),
        ("server", "unix:/tmp/x.sock:mode=7777", r"bad mode='7777': only permission bits"),
    ],
)
def test_descriptions_refuse_with_a_hint(side, text, words):
    from greenpoint import client_from_string, server_from_string
    from greenpoint.errors import DescriptionError

    parse = client_from_string if side == "client" else server_from_string
    with pytest.raises(DescriptionError, match=words):
        parse(text)


def test_bracketed_ipv6_values_are_accepted():
    from greenpoint import client_from_string, server_from_string

    assert server_from_string("tcp6:0:interface=[::]")
    assert server_from_string("tcp6:0:interface=\\:\\:")
    assert client_from_string("tcp:[::1]:80:bindAddress=[::1]")


# -- the way back: Param.format and describe --------------------------------------


@pytest.mark.parametrize(
    ("value", "text_"),
    [
        (True, "1"),
        (False, "0"),
        (30.0, "30"),
        (2.5, "2.5"),
        (10.46875, "10.46875"),  # exact, not %g's 10.4688
        (1e-05, "1e-05"),
        (7, "7"),
        (("h2", "http/1.1"), "h2,http/1.1"),
        (None, "none"),
        ("a:b", "a:b"),  # quoting is format_description's job
    ],
)
def test_format_value(value, text_):
    assert format_value(value) == text_


def test_param_format_is_the_coercers_inverse():
    assert Param("mode", octal_mode).format(0o640) == "640"
    assert octal_mode(Param("mode", octal_mode).format(0o640)) == 0o640
    assert Param("timeout", number).format(2.0) == "2"


def _none_or_seconds(value: str) -> float | None:
    return None if value == "0" else number(value)


register_inverse(_none_or_seconds, lambda value: "0" if value is None else format_value(value))


def test_describe_writes_required_by_position_and_only_non_default_keys():
    values = {"host": "example.com", "port": 80, "timeout": 30.0}
    assert describe(TCP, values) == (("example.com", "80"), {})
    values["timeout"] = 2.5
    assert describe(TCP, values) == (("example.com", "80"), {"timeout": "2.5"})


def test_describe_writes_an_optional_positional_by_position_while_the_form_does():
    params = (
        Param("path", text, positional=True),
        Param("port", port, 443, positional=True),
        Param("backlog", integer(0), 50, positional=True, in_form=False),
        Param("interface", text, "", positional=True, in_form=False),
    )
    assert describe(params, {"path": "/p", "port": 8443, "backlog": 7}) == (
        ("/p", "8443"),
        {"backlog": "7"},
    )
    # port at its default: the positional run stops there, so backlog is a keyword
    assert describe(params, {"path": "/p", "port": 443, "interface": "::1"}) == (
        ("/p",),
        {"interface": "::1"},
    )


def test_describe_leaves_out_what_reads_back_as_the_default():
    params = (
        Param("timeout", number, 30.0),
        Param("limit", _none_or_seconds, 5.0),
        Param("label", text, None),
    )
    # None with no word for it (number), and a keyword absent from the values
    assert describe(params, {"timeout": None}) == ((), {})
    # None that the key can say
    assert describe(params, {"limit": None}) == ((), {"limit": "0"})


def test_describe_never_writes_a_secret():
    params = (Param("user", text, None), Param("password", text, None, secret=True))
    assert describe(params, {"user": "u", "password": "hunter2"}) == (
        (),
        {"user": "u", "password": "***"},
    )
