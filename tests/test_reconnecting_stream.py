"""ReconnectingStream: a stream handler kept connected over real loopback sockets."""

from __future__ import annotations

import pytest
from _wait_helpers import wait_until
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint import ReconnectingStream, server_from_string
from greenpoint.errors import ConnectCancelledError, ConnectError, ConnectionDone

pytestmark = pytest.mark.timeout(20)

FAST = {"initial_delay": 0.01, "max_delay": 0.04, "factor": 2.0, "jitter": 0.0}


def refused_description():
    """A loopback port nobody listens on (bound, then closed)."""
    with gsocket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp:127.0.0.1:{sock.getsockname()[1]}"


def test_handler_runs_on_each_connection_and_reconnects_when_it_returns():
    def greet(stream, address):
        with stream:
            stream.sendall(b"hello")

    lines, reasons, enough = [], [], Event()

    def handler(stream):
        lines.append(stream.recv(100))
        if len(lines) == 3:
            enough.set()

    with server_from_string("tcp:0:interface=127.0.0.1").serve(greet) as port:
        client = ReconnectingStream(
            port.client_description(),
            handler,
            on_retry=lambda attempt, delay, reason: reasons.append(reason),
            **FAST,
        )
        with client:
            assert enough.wait(10)
        assert client.state == "stopped"
    assert lines[:3] == [b"hello"] * 3
    assert client.connections >= 3
    assert all(isinstance(reason, ConnectionDone) for reason in reasons)


def test_when_connected_gives_the_live_stream_and_stop_interrupts_the_handler():
    closed = Event()

    def echo(stream, address):
        with stream:
            while data := stream.recv(100):
                stream.sendall(data)
        closed.set()

    replies = []

    def handler(stream):
        while data := stream.recv(100):
            replies.append(data)

    with server_from_string("tcp:0:interface=127.0.0.1").serve(echo) as port:
        client = ReconnectingStream(port.client_description(), handler, **FAST)
        client.start()
        stream = client.when_connected(timeout=10)
        assert client.stream is stream and client.state == "connected"
        stream.sendall(b"ping")
        wait_until(lambda: replies, timeout=10, what="the reply")
        assert client.stop(timeout=10) is True  # the handler was blocked in recv
        assert closed.wait(10)  # the stream was closed: the server saw EOF
        assert client.stream is None
        with pytest.raises(ConnectCancelledError):
            client.when_connected()
    assert replies == [b"ping"]


def test_dropped_connection_is_reconnected():
    connections = []

    def drop_first(stream, address):
        connections.append(address)
        with stream:
            if len(connections) == 1:
                stream.sendall(b"bye")  # then closed: the handler sees EOF
            else:
                stream.sendall(b"again")
                stream.recv(100)

    got = []

    def handler(stream):
        while data := stream.recv(100):
            got.append(data)
            if data == b"again":
                return

    port = server_from_string("tcp:0:interface=127.0.0.1").serve(drop_first)
    client = ReconnectingStream(port.client_description(), handler, **FAST)
    with port, client:
        wait_until(lambda: b"again" in got, timeout=10, what="the second connection's data")
    assert got[:2] == [b"bye", b"again"]


def test_refused_attempts_back_off_then_give_up_after_max_retries():
    delays = []
    client = ReconnectingStream(
        refused_description(),
        lambda stream: None,
        max_retries=3,
        on_retry=lambda attempt, delay, reason: delays.append((attempt, delay)),
        **FAST,
    )
    client.start()
    with pytest.raises(ConnectError):
        client.when_connected(timeout=10)
    wait_until(lambda: client.state == "stopped", timeout=10)
    assert delays == [(1, 0.01), (2, 0.02), (3, 0.04)]  # capped at max_delay
    assert client.failures == 4
    with pytest.raises(ConnectError):  # the reason it gave up, again
        client.when_connected()


def test_fail_after_failures_raises_the_attempt_error():
    client = ReconnectingStream(refused_description(), lambda stream: None, **FAST)
    with client:
        with pytest.raises(ConnectError) as info:
            client.when_connected(timeout=10, fail_after_failures=2)
        assert "refused" in str(info.value)
        assert client.failures >= 2


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="handler"):
        ReconnectingStream("tcp:127.0.0.1:1", None)
    with pytest.raises(ValueError, match="max_retries"):
        ReconnectingStream("tcp:127.0.0.1:1", print, max_retries=-1)


def test_shares_the_clients_loop_a_bad_policy_delay_is_logged_and_waits_zero(caplog):
    # One retry loop for both classes (greenpoint._retry_loop): the stream sibling
    # gets the client's handling of a policy that returns nonsense, and its log.
    delays = []
    client = ReconnectingStream(
        refused_description(),
        lambda stream: None,
        policy=lambda attempt: float("nan"),
        max_retries=2,
        on_retry=lambda attempt, delay, reason: delays.append(delay),
    )
    with caplog.at_level("WARNING", logger="greenpoint.reconnect"):
        client.start()
        with pytest.raises(ConnectError):
            client.when_connected(timeout=10)
    assert delays == [0.0, 0.0]
    assert client.state == "stopped" and client.failures == 3
    assert caplog.text.count("gave nan for retry") == 2
    assert "after 2 retries in a row (max_retries=2)" in caplog.text
