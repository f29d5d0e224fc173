"""Bad arguments from Python callers are refused at the call, naming what was wrong.

Reproductions from the newcomer trial (shared/reviews/2026-12-newcomer-trial.md, B4-B6
and R6): a NaN timeout used to stall the whole gevent loop, a protocol class passed
as a factory failed with ``AttributeError: doStart``, a UNIX path over the kernel's
limit failed at bind with "(error)".
"""

from __future__ import annotations

import math
import os
import socket as stdsocket
import tempfile

import gevent
import pytest
from _tls_helpers import make_certs

import greenpoint
from greenpoint import (
    Factory,
    Protocol,
    ReconnectingClient,
    ReconnectingStream,
    SOCKS5ClientEndpoint,
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    client_from_string,
    server_from_string,
    wrap_client_tls,
    wrap_server_tls,
)
from greenpoint._checks import check_backlog, check_factory, check_timeout
from greenpoint.endpoints.unix import MAX_PATH_BYTES
from greenpoint.errors import ConnectTimeoutError, DescriptionError
from greenpoint.tls import options_for_client_tls, wrap_client_stream, wrap_server_stream

LOOPBACK = "127.0.0.1"

# (bad value, exception, words the message must contain)
BAD_TIMEOUTS = [
    (math.nan, ValueError, "nan"),
    (math.inf, ValueError, "inf"),
    (-1, ValueError, "-1"),
    ("5", TypeError, "'5'"),
    (True, TypeError, "True"),
]


def _raises_bad_timeout(call, value, error, shown, name="timeout"):
    # Bounded: before the fix a NaN stalled the hub, and no gevent.Timeout fired.
    stall = AssertionError("a bad timeout was not refused at the call")
    with gevent.Timeout(5, stall), pytest.raises(error) as caught:
        call(value)
    message = str(caught.value)
    assert name in message and shown in message, message


# -- the validator ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_check_timeout_refuses_and_names_the_parameter(value, error, shown):
    _raises_bad_timeout(lambda v: check_timeout(v, "grace"), value, error, shown, name="grace")


@pytest.mark.parametrize("value", [None, 0, 0.5, 30])
def test_check_timeout_accepts_none_zero_and_positive_numbers(value):
    assert check_timeout(value) == value


def test_check_timeout_zero_false_refuses_zero():
    with pytest.raises(ValueError, match="more than zero seconds, not 0"):
        check_timeout(0, zero=False)


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), ("50", TypeError), (1.5, TypeError)]
)
def test_check_backlog(value, error):
    with pytest.raises(error, match=f"backlog must be an int of 0 or more, not .*{value}"):
        check_backlog(value)


# -- per-call timeouts -------------------------------------------------------------------


CLIENTS = [
    "tcp:127.0.0.1:9",
    "tcp:localhost:9",
    "tcp6:[::1]:9",
    "unix:/nonexistent-greenpoint/x.sock",
    "memory:nobody-here",
    "tls:localhost:9",
    "ssl:127.0.0.1:9",
    "socks5:example.test:80:proxy=[tcp:127.0.0.1:9]",
]


@pytest.mark.parametrize("description", CLIENTS)
@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_open_refuses_a_bad_timeout(description, value, error, shown):
    endpoint = client_from_string(description)
    _raises_bad_timeout(lambda v: endpoint.open(timeout=v), value, error, shown)


@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_connect_refuses_a_bad_timeout_before_starting_the_factory(value, error, shown):
    factory = Factory.forProtocol(Protocol)
    endpoint = TCP4ClientEndpoint(LOOPBACK, 9)
    _raises_bad_timeout(lambda v: endpoint.connect(factory, v), value, error, shown)
    assert factory.numPorts == 0  # doStart never ran


def test_open_with_zero_timeout_on_a_literal_is_a_timeout():
    # Before: "ConnectError: ... Operation now in progress" (settimeout(0) means
    # non-blocking). A listening server makes sure it is not a refusal.
    with stdsocket.socket() as server:
        server.bind((LOOPBACK, 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(ConnectTimeoutError, match=r"timed out after 0 s connecting to"):
            TCP4ClientEndpoint(LOOPBACK, port).open(timeout=0)
        # The endpoint itself still works with a real deadline.
        TCP4ClientEndpoint(LOOPBACK, port).open(timeout=5).close()


def _echo(stream, address):
    while data := stream.recv(1024):
        stream.sendall(data)


@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_stop_listening_refuses_a_bad_timeout_and_keeps_serving(value, error, shown):
    port = TCP4ServerEndpoint(0, interface=LOOPBACK).serve(_echo)
    try:
        with greenpoint.client_from_string(f"tcp:{LOOPBACK}:{port.get_host().port}").open() as c:
            _raises_bad_timeout(port.stop_listening, value, error, shown)
            # Refused before anything stopped: the open connection is still served.
            c.sendall(b"still here")
            assert c.recv(100) == b"still here"
    finally:
        port.stop_listening(timeout=5)


@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_wsgi_stop_listening_refuses_a_bad_timeout(value, error, shown):
    from greenpoint import wsgi

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    port = wsgi.serve(f"tcp:0:interface={LOOPBACK}", app)
    try:
        _raises_bad_timeout(port.stop_listening, value, error, shown)
    finally:
        port.stop_listening(timeout=5)


@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_reconnecting_client_refuses_bad_timeouts(value, error, shown):
    client = ReconnectingClient(
        f"tcp:{LOOPBACK}:9", Factory.forProtocol(Protocol), initial_delay=0.01
    )
    client.start()
    try:
        _raises_bad_timeout(lambda v: client.when_connected(timeout=v), value, error, shown)
        _raises_bad_timeout(client.stop, value, error, shown)
    finally:
        assert client.stop(timeout=5)


@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_reconnecting_stream_refuses_bad_timeouts(value, error, shown):
    _raises_bad_timeout(
        lambda v: ReconnectingStream(f"tcp:{LOOPBACK}:9", lambda s: None, timeout=v),
        value,
        error,
        shown,
    )
    looping = ReconnectingStream(f"tcp:{LOOPBACK}:9", lambda s: None, initial_delay=0.01)
    looping.start()
    try:
        _raises_bad_timeout(lambda v: looping.when_connected(timeout=v), value, error, shown)
        _raises_bad_timeout(looping.stop, value, error, shown)
    finally:
        assert looping.stop(timeout=5)


@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_wrap_stream_refuses_a_bad_timeout(tmp_path, value, error, shown):
    certs = make_certs(tmp_path)
    client_options = options_for_client_tls("localhost", certs.ca_file)
    server_options = greenpoint.tls.options_for_server_tls(certs.server_pem)
    left, right = stdsocket.socketpair()
    with left, right:
        _raises_bad_timeout(
            lambda v: wrap_client_stream(left, client_options, timeout=v), value, error, shown
        )
        _raises_bad_timeout(
            lambda v: wrap_server_stream(right, server_options, timeout=v), value, error, shown
        )


@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_tls_constructors_refuse_a_bad_timeout(tmp_path, value, error, shown):
    certs = make_certs(tmp_path)
    client_options = options_for_client_tls("localhost", certs.ca_file)
    server_options = greenpoint.tls.options_for_server_tls(certs.server_pem)
    _raises_bad_timeout(
        lambda v: SSL4ClientEndpoint("localhost", 443, client_options, timeout=v),
        value,
        error,
        shown,
    )
    _raises_bad_timeout(
        lambda v: SSL4ServerEndpoint(0, server_options, handshake_timeout=v),
        value,
        error,
        shown,
        name="handshake_timeout",
    )
    inner = TCP4ServerEndpoint(0, interface=LOOPBACK)
    _raises_bad_timeout(
        lambda v: wrap_server_tls(server_options, inner, v),
        value,
        error,
        shown,
        name="handshake_timeout",
    )


def test_proxy_and_memory_constructors_refuse_a_nan_timeout():
    for make in (
        lambda: client_from_string("memory:x").__class__("x", timeout=math.nan),
        lambda: greenpoint.wrap_haproxy(TCP4ServerEndpoint(0), timeout=math.nan),
        lambda: greenpoint.wrap_haproxy(TCP4ServerEndpoint(0), timeout="5"),
        lambda: SOCKS5ClientEndpoint("h", 80, TCP4ClientEndpoint(LOOPBACK, 9), timeout=math.nan),
    ):
        with pytest.raises((ValueError, TypeError), match="timeout"):
            make()


# -- factories and handlers ---------------------------------------------------------------


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


NOT_FACTORIES = [
    (None, "not None"),
    (Echo, "not a class Echo; for a Protocol subclass P pass Factory.forProtocol(P)"),
    (Factory, "not the factory class Factory"),
    (Factory(), "has no protocol; use Factory.forProtocol(P)"),
    (lambda addr: Echo(), "has no buildProtocol(), doStart(), doStop()"),
]


@pytest.mark.parametrize(("factory", "words"), NOT_FACTORIES)
def test_connect_refuses_what_is_not_a_factory(factory, words):
    with pytest.raises(TypeError) as caught:
        TCP4ClientEndpoint(LOOPBACK, 9).connect(factory)
    assert str(caught.value).startswith("connect()")
    assert words in str(caught.value)


@pytest.mark.parametrize(("factory", "words"), NOT_FACTORIES)
def test_listen_refuses_what_is_not_a_factory_before_binding(factory, words):
    endpoint = UNIXServerEndpoint(os.path.join(tempfile.mkdtemp(), "s.sock"))
    with pytest.raises(TypeError) as caught:
        endpoint.listen(factory)
    assert str(caught.value).startswith("listen()")
    assert words in str(caught.value)
    assert not os.path.exists(endpoint.path)  # nothing was bound
    os.rmdir(os.path.dirname(endpoint.path))


def test_check_factory_accepts_a_real_factory_and_a_per_instance_build():
    check_factory(Factory.forProtocol(Echo), "connect")
    custom = Factory()
    custom.buildProtocol = lambda addr: Echo()
    check_factory(custom, "connect")


@pytest.mark.parametrize("handler", [None, "x", 3])
def test_serve_refuses_a_handler_that_is_not_callable(handler):
    with pytest.raises(TypeError, match="handler must be callable"):
        TCP4ServerEndpoint(0, interface=LOOPBACK).serve(handler)


def test_options_for_client_tls_names_a_hostname_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"hostname must be a str \(or None\), not int 123"):
        options_for_client_tls(123)


def test_wrap_client_tls_refuses_a_description_string_at_the_call():
    options = options_for_client_tls("localhost")
    with pytest.raises(TypeError) as caught:
        wrap_client_tls(options, "tcp:localhost:443")
    message = str(caught.value)
    assert "wrap_client_tls() needs an endpoint object with open()" in message
    assert "client_from_string('tcp:localhost:443')" in message


def test_wrap_server_tls_refuses_a_description_string_at_the_call(tmp_path):
    options = greenpoint.tls.options_for_server_tls(make_certs(tmp_path).server_pem)
    with pytest.raises(TypeError, match=r"needs an endpoint object with bind\(\).*server_from_"):
        wrap_server_tls(options, "tcp:0")


# -- UNIX endpoints -----------------------------------------------------------------------


def test_unix_mode_must_be_an_int():
    with pytest.raises(
        TypeError, match="mode must be an int file mode such as 0o600, not str '600'"
    ):
        UNIXServerEndpoint("/tmp/x.sock", mode="600")


def test_unix_backlog_and_timeout_must_not_be_negative():
    with pytest.raises(ValueError, match="backlog must be an int of 0 or more, not -1"):
        UNIXServerEndpoint("/tmp/x.sock", backlog=-1)
    with pytest.raises(TypeError, match="backlog"):
        UNIXServerEndpoint("/tmp/x.sock", backlog="50")
    for value in (-1, math.nan):
        with pytest.raises(ValueError, match=f"timeout must .*{value}"):
            UNIXClientEndpoint("/tmp/x.sock", timeout=value)


def test_unix_path_must_be_a_path():
    with pytest.raises(TypeError, match="str, bytes or os.PathLike, not int 123"):
        UNIXClientEndpoint(123)


def _path_of_length(directory: str, size: int) -> str:
    path = os.path.join(directory, "s")
    return path + "x" * (size - len(os.fsencode(path)))


def test_unix_path_over_the_limit_is_refused_at_construction():
    directory = tempfile.mkdtemp(dir="/tmp")
    try:
        too_long = _path_of_length(directory, MAX_PATH_BYTES + 1)
        expected = f"is {MAX_PATH_BYTES + 1} bytes, over the {MAX_PATH_BYTES}-byte limit"
        for make in (UNIXServerEndpoint, UNIXClientEndpoint):
            with pytest.raises(ValueError, match=expected) as caught:
                make(too_long)
            assert too_long in str(caught.value)
        with pytest.raises(DescriptionError, match=expected):
            server_from_string(f"unix:{too_long}")
        # Exactly at the limit binds: the check is not stricter than the kernel.
        with UNIXServerEndpoint(_path_of_length(directory, MAX_PATH_BYTES)).bind() as listener:
            assert len(os.fsencode(listener.path)) == MAX_PATH_BYTES
    finally:
        os.rmdir(directory)


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="abstract sockets are Linux-only")
def test_unix_abstract_name_over_the_limit_is_refused():
    with pytest.raises(ValueError, match=f"over the {MAX_PATH_BYTES}-byte limit"):
        UNIXServerEndpoint("@" + "a" * (MAX_PATH_BYTES + 1))
    name = "@greenpoint-test-" + "a" * (MAX_PATH_BYTES - len("greenpoint-test-"))
    with UNIXServerEndpoint(name).bind():
        pass


@pytest.mark.parametrize(("value", "error", "shown"), BAD_TIMEOUTS)
def test_transport_and_process_waits_refuse_a_bad_timeout(value, error, shown):
    port = TCP4ServerEndpoint(0, interface=LOOPBACK).serve(_echo)
    try:
        address = f"tcp:{LOOPBACK}:{port.get_host().port}"
        protocol = client_from_string(address).connect(Factory.forProtocol(Echo))
        _raises_bad_timeout(protocol.transport.wait_closed, value, error, shown)
        protocol.transport.loseConnection()
        assert protocol.transport.wait_closed(5)
    finally:
        port.stop_listening(timeout=5)
    stream = greenpoint.ProcessEndpoint("true").open()
    try:
        _raises_bad_timeout(stream.wait, value, error, shown)
        assert stream.wait(5) == 0
    finally:
        stream.close()
