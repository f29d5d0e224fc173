"""ReconnectingClient(prepare=): Twisted's ClientService(prepareConnection=), over memory:."""

from __future__ import annotations

import pytest
from _wait_helpers import wait_until
from gevent.event import Event
from twisted.protocols import basic, policies

import greenpoint
from greenpoint import ReconnectingClient, server_from_string


class Upper(basic.LineReceiver):
    def lineReceived(self, line):
        self.sendLine(line.upper())


class Session(basic.LineReceiver):
    def connectionMade(self):
        self.events = ["connectionMade"]
        self.reply = Event()
        self.lines = []

    def lineReceived(self, line):
        self.lines.append(line)
        self.reply.set()

    def ask(self, line, timeout=5):
        self.reply.clear()
        self.sendLine(line)
        assert self.reply.wait(timeout), "no reply"
        return self.lines[-1]


class Recording(greenpoint.ClientFactory):
    protocol = Session

    def __init__(self):
        self.lost = []

    def clientConnectionLost(self, connector, reason):
        self.lost.append(reason)


def _upper_server():
    return server_from_string("memory:upper").listen(greenpoint.Factory.forProtocol(Upper))


def test_prepare_runs_after_connection_made_and_before_when_connected_returns():
    def login(protocol):
        protocol.events.append("prepare")
        assert protocol.ask(b"login") == b"LOGIN"  # blocks: the reader runs meanwhile
        protocol.events.append("prepared")

    with _upper_server():
        client = ReconnectingClient("memory:upper", Recording(), prepare=login)
        with client:
            protocol = client.when_connected(timeout=5)
            assert protocol.events == ["connectionMade", "prepare", "prepared"]
            assert client.protocol is protocol and client.state == "connected"


def test_a_failing_prepare_drops_the_connection_and_retries_with_back_off():
    attempts = []

    def flaky(protocol):
        attempts.append(protocol)
        if len(attempts) < 3:
            raise RuntimeError(f"login refused ({len(attempts)})")

    factory = Recording()
    retries = []
    with _upper_server():
        client = ReconnectingClient(
            "memory:upper",
            factory,
            initial_delay=0.01,
            jitter=0,
            prepare=flaky,
            on_retry=lambda attempt, delay, reason: retries.append((attempt, str(reason))),
        )
        with client:
            protocol = client.when_connected(timeout=5)
            assert protocol is attempts[2]
            assert client.failures == 0
    assert [attempt for attempt, _ in retries] == [1, 2]
    assert [r for _, r in retries] == ["login refused (1)", "login refused (2)"]
    # Each dropped connection is reported, with the error as its reason, then closed.
    assert [str(reason) for reason in factory.lost[:2]] == [
        "login refused (1)",
        "login refused (2)",
    ]
    assert all(p.transport.disconnected for p in attempts[:2])


def test_when_connected_fails_after_failures_counts_prepare_failures():
    def never(protocol):
        raise RuntimeError("no")

    with _upper_server():
        client = ReconnectingClient("memory:upper", Recording(), initial_delay=0.01, prepare=never)
        with client, pytest.raises(RuntimeError, match="no"):
            client.when_connected(timeout=5, fail_after_failures=2)


def test_prepare_must_be_callable():
    with pytest.raises(TypeError, match="prepare"):
        ReconnectingClient("memory:x", Recording(), prepare="login")


def test_timeout_mixin_under_a_reconnecting_client_times_out_and_reconnects():
    class Idle(Session, policies.TimeoutMixin):
        def connectionMade(self):
            super().connectionMade()
            self.setTimeout(0.2)

        def connectionLost(self, reason):
            self.setTimeout(None)

    factory = Recording()
    factory.protocol = Idle
    with _upper_server():
        client = ReconnectingClient("memory:upper", factory, initial_delay=0.01, jitter=0)
        with client:
            first = client.when_connected(timeout=5)
            wait_until(lambda: client.protocol not in (None, first), what="a new connection")
            assert first.transport.disconnected  # timed out, by TimeoutMixin
            assert client.protocol is not first
