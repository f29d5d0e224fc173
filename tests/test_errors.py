"""The error tree: stdlib compatibility, attached attempts, pickling, messages."""

from __future__ import annotations

import errno
import inspect
import pickle

import pytest

from greenpoint import IPv4Address, IPv6Address, errors
from greenpoint.errors import (
    AlreadyListenedError,
    Attempt,
    ConnectCancelledError,
    ConnectError,
    ConnectionClosed,
    ConnectionDone,
    ConnectionLost,
    ConnectRefusedError,
    ConnectTimeoutError,
    DescriptionError,
    DNSLookupError,
    GreenpointError,
    ListenError,
    NoProtocolError,
    ProcessTerminated,
    TLSError,
    TLSVerificationError,
)


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (DescriptionError, (GreenpointError, ValueError)),
        (ConnectError, (GreenpointError, OSError)),
        (DNSLookupError, (ConnectError, OSError)),
        (ConnectTimeoutError, (ConnectError, TimeoutError, OSError)),
        (ConnectRefusedError, (ConnectError, ConnectionRefusedError, OSError)),
        (ConnectCancelledError, (ConnectError,)),
        (NoProtocolError, (ConnectError,)),
        (TLSError, (ConnectError,)),
        (TLSVerificationError, (TLSError, ConnectError)),
        (ListenError, (GreenpointError, OSError)),
        (AlreadyListenedError, (GreenpointError, RuntimeError)),
        (ConnectionDone, (ConnectionClosed, GreenpointError)),
        (ConnectionLost, (ConnectionClosed, GreenpointError)),
        (ProcessTerminated, (ConnectionLost,)),
    ],
)
def test_error_tree(error, bases):
    for base in bases:
        assert issubclass(error, base)
    assert issubclass(error, GreenpointError)


def test_connection_done_is_not_a_connection_lost():
    # Protocols tell a clean close from a lost one by type.
    assert not issubclass(ConnectionDone, ConnectionLost)
    assert not issubclass(ConnectionLost, ConnectionDone)


def test_every_error_class_is_drawn_in_the_module_docstring():
    classes = [
        name
        for name in errors.__all__
        if inspect.isclass(getattr(errors, name))
        and issubclass(getattr(errors, name), BaseException)
    ]
    assert len(classes) >= 16  # the tree only grows
    tree = errors.__doc__
    for name in classes:
        assert f" {name} " in tree or f" {name}\n" in tree, name


def test_caught_as_the_stdlib_type():
    with pytest.raises(TimeoutError):
        raise ConnectTimeoutError("timed out connecting to 127.0.0.1:1")
    with pytest.raises(OSError):
        raise DNSLookupError("no address for example.invalid")
    with pytest.raises(ValueError):
        raise DescriptionError("bad")


def test_description_error_fields():
    error = DescriptionError(
        "'prot' is not a parameter of tcp: did you mean 'port'?",
        prefix="tcp",
        parameter="prot",
        suggestion="port",
        position=None,
    )
    assert (error.prefix, error.parameter, error.suggestion) == ("tcp", "prot", "port")
    assert str(error) == "'prot' is not a parameter of tcp: did you mean 'port'?"


def refused(host="127.0.0.1", port=1):
    return ConnectRefusedError(
        "connection refused", address=IPv4Address(host, port), errno=errno.ECONNREFUSED
    )


ATTEMPTS = (
    Attempt(IPv6Address("::1", 443), "connect", refused("::1", 443), 0.0, 0.0004),
    Attempt(
        IPv4Address("127.0.0.1", 443), "handshake", TLSVerificationError("bad cert"), 0.25, 1.5
    ),
)


def test_connect_error_carries_attempts_and_errno():
    error = ConnectError(
        "cannot connect to example.com:443", address="example.com:443", attempts=list(ATTEMPTS)
    )
    assert error.attempts == ATTEMPTS  # kept as a tuple
    assert error.address == "example.com:443"
    assert error.errno is None
    assert refused().errno == errno.ECONNREFUSED
    assert refused().strerror == "connection refused"


def test_connect_error_message_lists_every_attempt():
    error = ConnectError("cannot connect to example.com:443", attempts=ATTEMPTS)
    assert str(error).splitlines() == [
        "cannot connect to example.com:443",
        "  [::1]:443 [connect] ConnectRefusedError: connection refused "
        "(started +0.0 ms, took 0.4 ms)",
        "  127.0.0.1:443 [handshake] TLSVerificationError: bad cert "
        "(started +250 ms, took 1500 ms)",
    ]


def test_connect_error_with_one_attempt_is_just_the_message():
    error = ConnectRefusedError("connection refused by 127.0.0.1:1", attempts=ATTEMPTS[:1])
    assert str(error) == "connection refused by 127.0.0.1:1"


@pytest.mark.parametrize(
    ("attempt", "text"),
    [
        (
            Attempt(IPv4Address("127.0.0.1", 80), "connect", None, 0.0123, 0.0456),
            "127.0.0.1:80 [connect] connected (started +12 ms, took 46 ms)",
        ),
        (
            Attempt("example.com", "resolve", OSError("Name or service not known"), 0, 2.0),
            "example.com [resolve] OSError: Name or service not known (started +0.0 ms, took 2000 ms)",
        ),
        (
            Attempt(IPv4Address("10.0.0.1", 80), "connect", TimeoutError(), 0.25, 30),
            "10.0.0.1:80 [connect] TimeoutError (started +250 ms, took 30000 ms)",
        ),
        (
            # the type is not repeated when the message already names it
            Attempt("h", "connect", ValueError("ValueError: odd"), 0, 0.001),
            "h [connect] ValueError: odd (started +0.0 ms, took 1.0 ms)",
        ),
    ],
)
def test_attempt_describe(attempt, text):
    assert attempt.describe() == text


@pytest.mark.parametrize(
    "error_type",
    [
        ConnectError,
        DNSLookupError,
        ConnectTimeoutError,
        ConnectRefusedError,
        ConnectCancelledError,
        NoProtocolError,
        TLSError,
        TLSVerificationError,
    ],
)
def test_connect_errors_pickle(error_type):
    attempts = (Attempt(IPv4Address("127.0.0.1", 1), "connect", None, 0.0, 0.1),)
    error = error_type(
        "it failed", address=IPv4Address("127.0.0.1", 1), attempts=attempts, errno=errno.ETIMEDOUT
    )
    error.note = "added later"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is error_type
    assert str(copy) == "it failed"
    assert copy.errno == errno.ETIMEDOUT
    assert copy.address == IPv4Address("127.0.0.1", 1)
    assert copy.attempts == attempts
    assert copy.note == "added later"


def test_connect_error_with_failed_attempts_pickles():
    error = ConnectError("all failed", attempts=ATTEMPTS)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert [type(a.error) for a in copy.attempts] == [ConnectRefusedError, TLSVerificationError]


def test_other_errors_pickle_with_their_fields():
    description = pickle.loads(
        pickle.dumps(
            DescriptionError("m", prefix="tcp", parameter="port", suggestion="port", position=3)
        )
    )
    assert (
        description.prefix,
        description.parameter,
        description.suggestion,
        description.position,
    ) == (
        "tcp",
        "port",
        "port",
        3,
    )
    terminated = pickle.loads(pickle.dumps(ProcessTerminated("exit 3", exit_code=3, signal=None)))
    assert (str(terminated), terminated.exit_code, terminated.signal) == ("exit 3", 3, None)


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (ConnectionDone(), "the connection was closed cleanly"),
        (ConnectionLost(), "the connection was lost"),
        (ConnectionLost("reset by peer"), "reset by peer"),
        (ProcessTerminated(exit_code=1), "the process ended with an error"),
    ],
)
def test_connection_reasons_have_readable_messages(error, text):
    assert str(error) == text
