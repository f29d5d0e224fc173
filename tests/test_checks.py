"""The one constructor validator (``greenpoint._checks``): plain values, no I/O.

Every endpoint constructor raises ``FieldError`` (a ``ValueError``) or
``FieldTypeError`` (also a ``TypeError``) naming the argument and the value; only the
description parser turns one into a ``DescriptionError``, naming the key.
"""

from __future__ import annotations

import math

import pytest

from greenpoint import (
    HostnameEndpoint,
    SOCKS5ClientEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    client_from_string,
    server_from_string,
)
from greenpoint._checks import (
    FieldError,
    FieldTypeError,
    finite_number,
    port,
    seconds,
    whole_number,
)
from greenpoint._params import Param, integer
from greenpoint._registry import EndpointParser
from greenpoint.endpoints.adopted import AdoptedStreamServerEndpoint
from greenpoint.errors import DescriptionError


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: whole_number("backlog", -1), FieldError, "backlog must be an int of 0 or more, not -1"),
        (lambda: whole_number("n", 5, 1, 4), FieldError, "n must be an int from 1 to 4, not 5"),
        (lambda: whole_number("n", True), FieldTypeError, "n must be an int of 0 or more, not bool True"),
        (lambda: whole_number("n", 1.0), FieldTypeError, "n must be an int of 0 or more, not float 1.0"),
        (lambda: port("port", 0), FieldError, "port must be an int from 1 to 65535, not 0"),
        (lambda: port("port", 65536, zero=True), FieldError, "port must be an int from 0 to 65535, not 65536"),
        (lambda: port("port", "80"), FieldTypeError, "port must be an int from 1 to 65535, not str '80'"),
        (lambda: finite_number("factor", math.nan), FieldError, "factor must be a finite number, not nan"),
        (lambda: finite_number("factor", "2"), FieldTypeError, "factor must be a number, not str '2'"),
        (lambda: seconds("timeout", -1), FieldError, "timeout must be zero or more seconds, not -1"),
        (lambda: seconds("t", 0, zero=False), FieldError, "t must be more than zero seconds, not 0"),
        (lambda: seconds("t", None, allow_none=False), FieldTypeError, "t must be a number of seconds, not NoneType None"),
        (lambda: seconds("t", math.inf), FieldError, r"t must be a finite number of seconds \(None: no limit\), not inf"),
    ],
)  # fmt: skip
def test_one_message_style_naming_the_argument_and_the_value(call, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        call()


def test_the_values_that_pass_come_back():
    assert whole_number("n", 0) == 0
    assert port("port", 0, zero=True) == 0
    assert port("port", 65535) == 65535
    assert seconds("t", None) is None
    assert seconds("t", 0.5) == 0.5
    assert finite_number("f", 2) == 2


def test_the_error_names_the_field_and_is_a_plain_value_or_type_error():
    with pytest.raises(FieldError) as caught:
        port("bind_address port", 70000, zero=True, field="bind_address")
    assert caught.value.field == "bind_address"
    wrong_type = FieldTypeError("port", "port must be ...")
    # A TypeError, as Python says for a wrong type; still a ValueError for old catchers.
    assert isinstance(wrong_type, TypeError) and isinstance(wrong_type, ValueError)
    assert not isinstance(wrong_type, DescriptionError)


@pytest.mark.parametrize(
    ("make", "field", "words"),
    [
        (lambda: TCP4ClientEndpoint("127.0.0.1", "80"), "port", "not str '80'"),
        (lambda: TCP4ServerEndpoint(70000), "port", "from 0 to 65535, not 70000"),
        (lambda: TCP4ServerEndpoint(80, backlog=-1), "backlog", "of 0 or more, not -1"),
        (lambda: HostnameEndpoint("example.com", 0), "port", "from 1 to 65535, not 0"),
        (lambda: HostnameEndpoint("example.com", 80, timeout="5"), "timeout", "not str '5'"),
        (lambda: AdoptedStreamServerEndpoint(-1, 2), "fileno", "of 0 or more, not -1"),
        (
            lambda: SOCKS5ClientEndpoint("h", 70000, TCP4ClientEndpoint("127.0.0.1", 9)),
            "port",
            "from 1 to 65535, not 70000",
        ),
    ],
)
def test_constructors_share_the_validator(make, field, words):
    with pytest.raises(FieldError, match=words) as caught:
        make()
    assert caught.value.field == field
    assert not isinstance(caught.value, DescriptionError)


def test_the_parser_names_the_description_key_of_a_refused_field():
    from greenpoint import plugins

    # What a plugin's endpoint class raises: public in greenpoint.plugins.
    assert plugins.FieldError is FieldError and plugins.FieldTypeError is FieldTypeError

    def build(count: int, bind_address: str | None = None) -> None:
        raise FieldError("bind_address", "bind_address must be an IP address, not 'x'")

    parser = EndpointParser(
        "gpcheck",
        (
            Param("count", integer(0), positional=True),
            Param("bindAddress", str, None, target="bind_address"),
        ),
        build,
    )
    with pytest.raises(DescriptionError) as caught:
        parser("1", bindAddress="x")
    assert caught.value.prefix == "gpcheck"
    assert caught.value.parameter == "bindAddress"
    assert str(caught.value) == (
        "gpcheck: bad bindAddress: bind_address must be an IP address, not 'x'"
    )
    assert parser.key_for("count") == "count"
    assert parser.key_for("unknown_field") == "unknown_field"


@pytest.mark.parametrize(
    ("description", "client", "parameter"),
    [
        ("tcp4:127.0.0.1:80:bindAddress=[::1]", True, "bindAddress"),
        ("ssl:127.0.0.1:443:bindAddress=[::1]", True, "bindAddress"),
        ("ssl:127.0.0.1:443:bindAddress=somewhere", True, "bindAddress"),
        # The HostnameEndpoint under tls: used to say prefix "tcp" and no key.
        ("tls:example.com:443:bindAddress=somewhere", True, "bindAddress"),
        ("tls:example.com:443:bindAddress=127.0.0.1,127.0.0.2", True, "bindAddress"),
        ("socks5:h:80:proxy=[tcp:127.0.0.1:9]:user=u", True, "password"),
        ("tcp:80:backlog=-1", False, "backlog"),
    ],
)
def test_descriptions_report_constructor_errors_under_their_key(description, client, parameter):
    parse = client_from_string if client else server_from_string
    with pytest.raises(DescriptionError) as caught:
        parse(description)
    assert caught.value.parameter == parameter
    assert str(caught.value).startswith(f"{description.split(':')[0]}: bad {parameter}")


def test_tcp_options_use_the_same_checks_under_their_keys():
    from greenpoint import TCPOptions
    from greenpoint._sockopts import TCPOptionError

    with pytest.raises(
        TCPOptionError, match=r"^keepAliveIdle must be an int from 1 to \d+, not 0$"
    ):
        TCPOptions(keep_alive_idle=0)
    with pytest.raises(TCPOptionError, match=r"^userTimeout must be a number of seconds, not str"):
        TCPOptions(user_timeout="5")
    with pytest.raises(FieldError) as caught:  # a TCPOptionError is a FieldError
        TCPOptions(keep_alive_count=True)
    assert caught.value.field == "keepAliveCount"
