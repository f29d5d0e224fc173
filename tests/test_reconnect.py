"""ReconnectingClient in virtual time: a scripted endpoint over socket pairs, a FakeClock.

Each connection is a real gevent socket pair (so the real transport runs and the fd
check applies), and every wait goes through ``FakeClock``: the back-off schedule is
checked as exact values, with no real sleeping.
"""

from __future__ import annotations

import errno
import socket as stdsocket

import gevent
import pytest
from _net_helpers import read_all
from _protocol_helpers import Recorder, RecordingFactory
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint import (
    Backoff,
    ConnectCancelledError,
    ConnectionDone,
    ConnectRefusedError,
    ConnectTimeoutError,
    ReconnectingClient,
)
from greenpoint._connect import connect_factory
from greenpoint.testing import FakeClock

pytestmark = pytest.mark.timeout(10)


# -- helpers -------------------------------------------------------------------


def refused(n: int = 0) -> ConnectRefusedError:
    return ConnectRefusedError(
        f"connection refused ({n})", address="pair", errno=errno.ECONNREFUSED
    )


class ScriptedEndpoint:
    """A client endpoint whose ``open()`` follows a script, timed on a clock.

    Script items: ``"accept"`` (one end of a socket pair; the test keeps the other in
    ``peers``), ``"hang"`` (block until killed), or an exception to raise. When the
    script runs out, every attempt is refused.
    """

    def __init__(self, clock, script=()):
        self.clock = clock
        self.script = list(script)
        self.times: list[float] = []
        self.peers: list[gsocket.socket] = []
        self.cancelled = 0
        self.attempt_started = Event()

    def __str__(self):
        return "pair:"

    def open(self, timeout=None):
        self.times.append(self.clock.now())
        self.attempt_started.set()
        outcome = self.script.pop(0) if self.script else refused(len(self.times))
        if outcome == "accept":
            ours, theirs = gsocket.socketpair(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
            self.peers.append(theirs)
            return ours
        if outcome == "hang":
            try:
                Event().wait()
            except gevent.GreenletExit:
                self.cancelled += 1
                raise
        raise outcome

    def connect(self, factory, timeout=None):
        return connect_factory(self, factory, timeout)

    def close_peers(self):
        for peer in self.peers:
            peer.close()


def gaps(times):
    return [round(b - a, 9) for a, b in zip(times, times[1:], strict=False)]


@pytest.fixture
def clock():
    return FakeClock()


def make_client(clock, script=(), **options):
    endpoint = ScriptedEndpoint(clock, script)
    factory = RecordingFactory()
    if "policy" not in options:
        options.setdefault("jitter", 0)
    client = ReconnectingClient(endpoint, factory, clock=clock, **options)
    return client, endpoint, factory


# -- the delay schedule ------------------------------------------------------------


def test_retries_follow_the_backoff_schedule_exactly_and_give_up_after_max_retries(clock):
    client, endpoint, factory = make_client(clock, max_retries=9)
    client.start()
    with pytest.raises(ConnectRefusedError, match=r"refused \(10\)"):
        client.when_connected()
    # First retry after initial_delay, doubling, capped at max_delay: never above it.
    assert gaps(endpoint.times) == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert client.state == "stopped"
    assert factory.log.count(("clientConnectionFailed", "ConnectRefusedError")) == 10
    assert factory.numPorts == 0
    # Once given up, when_connected raises the same error at once.
    with pytest.raises(ConnectRefusedError, match=r"refused \(10\)"):
        client.when_connected()


def test_jittered_delays_stay_within_the_cap(clock):
    draws = iter([0.0, 1.0, 0.5] * 10)
    policy = Backoff(initial_delay=1, max_delay=5, factor=3, jitter=0.5, random=lambda: next(draws))
    client, endpoint, _ = make_client(clock, max_retries=6, policy=policy)
    client.start()
    with pytest.raises(ConnectRefusedError):
        client.when_connected()
    # base: 1, 3, 5, 5, 5, 5 ; taken off: 0, half, a quarter
    assert gaps(endpoint.times) == [1.0, 1.5, 3.75, 5.0, 2.5, 3.75]


def test_any_callable_can_be_the_policy_and_gets_the_retry_number(clock):
    seen = []

    def policy(attempt):
        seen.append(attempt)
        return attempt / 10

    client, endpoint, _ = make_client(clock, max_retries=4, policy=policy)
    client.start()
    with pytest.raises(ConnectRefusedError):
        client.when_connected()
    assert seen == [1, 2, 3, 4]
    assert gaps(endpoint.times) == [0.1, 0.2, 0.3, 0.4]


def test_a_policy_that_returns_a_negative_delay_retries_at_once(clock, caplog):
    client, endpoint, _ = make_client(clock, max_retries=2, policy=lambda attempt: -5)
    client.start()
    with pytest.raises(ConnectRefusedError):
        client.when_connected()
    assert endpoint.times == [0, 0, 0]
    assert "using 0" in caplog.text


def test_on_retry_reports_each_retry_its_delay_and_why(clock):
    events = []
    client, endpoint, _ = make_client(
        clock,
        ["accept"],
        max_retries=2,
        on_retry=lambda attempt, delay, reason: events.append((attempt, delay, reason)),
    )
    client.start()
    protocol = client.when_connected()
    endpoint.close_peers()  # the server goes away: lost, then refused twice
    protocol.closed.wait()
    with pytest.raises(ConnectRefusedError):
        client.when_connected(fail_after_failures=2)
    assert [(attempt, delay) for attempt, delay, _ in events] == [(1, 1.0), (2, 2.0)]
    assert isinstance(events[0][2], ConnectionDone)
    assert isinstance(events[1][2], ConnectRefusedError)


def test_failures_are_logged_with_their_error_and_the_next_delay(clock, caplog):
    caplog.set_level("INFO", logger="greenpoint.reconnect")
    client, _, _ = make_client(clock, max_retries=1)
    client.start()
    with pytest.raises(ConnectRefusedError):
        client.when_connected()
    text = caplog.text
    assert "connecting to pair: failed: connection refused (1)" in text
    assert "reconnecting to pair: in 1 s (retry 1)" in text
    assert "giving up on pair: after 1 retries in a row (max_retries=1)" in text


# -- reconnecting --------------------------------------------------------------------


def test_a_successful_connection_resets_the_delay(clock):
    client, endpoint, factory = make_client(
        clock, [refused(), refused(), "accept", refused(), "accept"]
    )
    client.start()
    first = client.when_connected()
    assert clock.now() == 3  # refused at 0, refused at 1, connected at 3
    assert client.protocol is first
    endpoint.close_peers()
    first.closed.wait()
    second = client.when_connected()
    assert second is not first
    # Lost at 3: the first retry waits 1 s again (refused at 4), then 2 s.
    assert endpoint.times == [0, 1, 3, 4, 6]
    client.stop()
    endpoint.close_peers()


def test_factory_is_called_as_twisted_calls_it(clock):
    client, endpoint, factory = make_client(clock, [refused(), "accept"])
    client.start()
    protocol = client.when_connected()
    endpoint.close_peers()
    protocol.closed.wait()
    client.stop()
    assert factory.log[:11] == [
        "doStart",
        "startedConnecting",
        ("clientConnectionFailed", "ConnectRefusedError"),
        "doStop",
        "doStart",
        "startedConnecting",
        "buildProtocol",
        "connectionMade",
        ("connectionLost", "ConnectionDone"),
        ("clientConnectionLost", "ConnectionDone"),
        "doStop",
    ]
    assert all(connector is client for connector in factory.connectors)
    assert client.getDestination() is endpoint
    assert protocol.factory is factory
    assert factory.numPorts == 0


def test_every_started_attempt_ends_in_failed_or_lost(clock):
    client, endpoint, factory = make_client(clock, ["accept", refused(), "hang"])
    client.start()
    client.when_connected()
    endpoint.close_peers()
    endpoint.attempt_started.clear()
    while len(endpoint.times) < 3:
        endpoint.attempt_started.wait()
        endpoint.attempt_started.clear()
    client.stop()
    started = factory.log.count("startedConnecting")
    ended = [
        entry
        for entry in factory.log
        if isinstance(entry, tuple) and entry[0].startswith("clientConnection")
    ]
    assert started == len(ended) == 3
    assert ended[-1] == ("clientConnectionFailed", "ConnectCancelledError")
    assert factory.log.count("doStart") == factory.log.count("doStop") == 3


def test_max_retries_zero_never_reconnects_after_a_lost_connection(clock):
    client, endpoint, _ = make_client(clock, ["accept", "accept"], max_retries=0)
    client.start()
    protocol = client.when_connected()
    endpoint.close_peers()
    protocol.closed.wait()
    with pytest.raises(ConnectCancelledError, match="gave up"):
        client.when_connected()
    assert len(endpoint.times) == 1


def test_reset_delay_restarts_the_schedule(clock):
    client, endpoint, _ = make_client(clock, max_retries=5)
    client.start()
    with pytest.raises(ConnectRefusedError):
        client.when_connected(fail_after_failures=3)  # refused at 0, 1, 3
    client.reset_delay()  # during the 4 s wait: the one after it is 1 s again
    with pytest.raises(ConnectRefusedError):
        client.when_connected()
    # ... and the count towards max_retries starts again too, as in Twisted.
    assert gaps(endpoint.times) == [1, 2, 4, 1, 2, 4, 8, 16]


# -- when_connected ------------------------------------------------------------------


def test_when_connected_before_start_waits_and_after_returns_the_live_protocol(clock):
    client, endpoint, _ = make_client(clock, ["accept"])
    waiter = gevent.spawn(client.when_connected)
    gevent.sleep(0)
    assert not waiter.ready()
    client.start()
    protocol = waiter.get(timeout=5)
    assert isinstance(protocol, Recorder) and protocol.transport.connected
    assert client.when_connected() is protocol
    assert client.protocol is protocol
    client.stop()
    endpoint.close_peers()


def test_the_transport_drives_the_users_protocol_itself_and_tells_how_it_ended(clock):
    # No stand-in between the transport and the user's protocol: the object the
    # factory built is the connected one, and what the user sets on it stays on it.
    class Owned(Recorder):
        def dataReceived(self, data):
            super().dataReceived(data)
            self.owned = self.transport.owns(gevent.getcurrent())
            self.got_data.set()

    class Reasons(RecordingFactory):
        def buildProtocol(self, addr):
            protocol = Owned(self.log)
            protocol.got_data = Event()
            self.built.append(protocol)
            return protocol

        def clientConnectionLost(self, connector, reason):
            super().clientConnectionLost(connector, reason)
            self.lost_reason = reason

    endpoint = ScriptedEndpoint(clock, ["accept"])
    factory = Reasons()
    client = ReconnectingClient(endpoint, factory, clock=clock, jitter=0, max_retries=0)
    client.start()
    protocol = client.when_connected(timeout=5)
    assert type(protocol) is Owned and protocol is factory.built[-1]
    assert protocol.factory is factory
    protocol.session = "mine"
    assert vars(protocol)["session"] == "mine"
    transport = protocol.transport
    assert "protocol=Owned" in repr(transport)  # it drives the user's object
    assert not transport.owns(gevent.getcurrent()) and not transport.owns(None)
    endpoint.peers[0].sendall(b"hello")
    assert protocol.got_data.wait(5) and protocol.received == b"hello"
    assert protocol.owned  # dataReceived ran in the transport's own reader
    endpoint.close_peers()  # the server goes away
    assert protocol.closed.wait(5)
    assert client.protocol is None  # no longer live, even before the loop wakes
    client.stop(timeout=5)
    # The factory got the very reason the protocol got, learned from the transport.
    assert factory.lost_reason is protocol.reason is transport.close_reason
    assert isinstance(protocol.reason, ConnectionDone)


def test_fail_after_failures_counts_failures_after_the_call(clock):
    client, endpoint, _ = make_client(clock)
    client.start()
    with pytest.raises(ConnectRefusedError, match=r"\(1\)"):
        client.when_connected(fail_after_failures=1)
    with pytest.raises(ConnectRefusedError, match=r"\(4\)"):
        client.when_connected(fail_after_failures=3)
    assert client.failures == 4
    assert client.state == "waiting"  # still retrying for others
    client.stop()


def test_when_connected_timeout_is_measured_on_the_clock(clock):
    client, endpoint, _ = make_client(clock)
    client.start()
    with pytest.raises(ConnectTimeoutError, match="within 2.5 s") as info:
        client.when_connected(timeout=2.5)
    assert clock.now() == 2.5
    assert isinstance(info.value.__cause__, ConnectRefusedError)
    client.stop()


def test_when_connected_rejects_a_bad_failure_count(clock):
    client, _, _ = make_client(clock)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="fail_after_failures"):
            client.when_connected(fail_after_failures=bad)


def test_stop_fails_waiters_and_later_calls_with_a_clear_error(clock):
    client, endpoint, _ = make_client(clock, ["hang"])
    client.start()
    waiter = gevent.spawn(client.when_connected)
    endpoint.attempt_started.wait()
    assert client.stop() is True
    with pytest.raises(ConnectCancelledError, match="was stopped; start"):
        waiter.get(timeout=5)
    with pytest.raises(ConnectCancelledError, match="was stopped"):
        client.when_connected()


def test_a_stopped_client_can_be_started_again(clock):
    client, endpoint, _ = make_client(clock, [refused(), "accept"])
    client.start()
    with pytest.raises(ConnectRefusedError):
        client.when_connected(fail_after_failures=1)
    client.stop()
    client.start()
    protocol = client.when_connected()
    assert protocol.transport.connected
    client.stop()
    endpoint.close_peers()


def test_start_twice_is_an_error(clock):
    client, _, _ = make_client(clock, ["hang"])
    client.start()
    with pytest.raises(RuntimeError, match="already running"):
        client.start()
    client.stop()


# -- stopping -------------------------------------------------------------------------


def test_stop_during_the_backoff_wait_returns_at_once(clock):
    client, endpoint, _ = make_client(clock, initial_delay=30)
    client.start()
    with pytest.raises(ConnectRefusedError):
        client.when_connected(fail_after_failures=1)
    assert client.state == "waiting"
    assert client.stop() is True
    assert clock.now() == 0  # the 30 s wait was abandoned, not waited out
    assert client.state == "stopped"
    assert len(endpoint.times) == 1


def test_stop_during_a_connect_attempt_cancels_it(clock):
    client, endpoint, factory = make_client(clock, ["hang"])
    client.start()
    endpoint.attempt_started.wait()
    assert client.state == "connecting"
    assert client.stop() is True
    assert endpoint.cancelled == 1
    assert factory.log[-2:] == [("clientConnectionFailed", "ConnectCancelledError"), "doStop"]
    assert factory.numPorts == 0


def test_stop_flushes_what_the_live_connection_wrote(clock):
    payload = b"x" * 2_000_000  # more than the socket buffers take at once
    client, endpoint, factory = make_client(clock, ["accept"])
    client.start()
    protocol = client.when_connected()
    protocol.transport.write(payload)
    reader = gevent.spawn(read_all, endpoint.peers[0])
    assert client.stop(timeout=5) is True
    assert reader.get(timeout=5) == payload
    assert protocol.closed.is_set() and isinstance(protocol.reason, ConnectionDone)
    assert client.protocol is None
    assert factory.log[-2:] == [("clientConnectionLost", "ConnectionDone"), "doStop"]
    endpoint.close_peers()


def test_stop_aborts_a_connection_that_cannot_flush_within_the_timeout(clock):
    client, endpoint, factory = make_client(clock, ["accept"])
    client.start()
    protocol = client.when_connected()
    protocol.transport.write(b"x" * 5_000_000)  # the peer never reads
    assert client.stop(timeout=0.2) is False
    assert protocol.closed.is_set()
    assert client.state == "stopped"
    assert factory.numPorts == 0
    endpoint.close_peers()


def test_stop_from_a_factory_callback_stops_retrying(clock):
    client, endpoint, factory = make_client(clock)
    factory.clientConnectionFailed = lambda connector, reason: connector.stop()
    client.start()
    with pytest.raises(ConnectCancelledError, match="was stopped"):
        client.when_connected()
    assert len(endpoint.times) == 1
    assert factory.numPorts == 0


def test_stop_connecting_from_started_connecting_counts_as_a_failure(clock):
    client, endpoint, factory = make_client(clock, ["accept"], max_retries=1)
    factory.startedConnecting = lambda connector: connector.stopConnecting()
    client.start()
    with pytest.raises(ConnectCancelledError, match="stopped"):
        client.when_connected()
    assert len(endpoint.times) == 0  # stopped before open() was called
    assert factory.numPorts == 0


def test_disconnect_drops_the_connection_and_reconnects(clock):
    client, endpoint, _ = make_client(clock, ["accept", "accept"])
    client.start()
    first = client.when_connected()
    client.disconnect()
    first.closed.wait()
    second = client.when_connected()
    assert second is not first and clock.now() == 1
    client.stop()
    endpoint.close_peers()


def test_context_manager_starts_and_stops(clock):
    client, endpoint, _ = make_client(clock, ["accept"])
    with client as running:
        protocol = running.when_connected()
    assert protocol.closed.is_set()
    assert client.state == "stopped"
    endpoint.close_peers()


def test_stopping_a_client_never_started_fails_its_waiters(clock):
    client, _, _ = make_client(clock)
    waiter = gevent.spawn(client.when_connected)
    gevent.sleep(0)
    client.stop()
    with pytest.raises(ConnectCancelledError):
        waiter.get(timeout=5)


# -- arguments -------------------------------------------------------------------------


def test_policy_and_numeric_knobs_are_exclusive(clock):
    endpoint = ScriptedEndpoint(clock)
    with pytest.raises(ValueError, match="either policy"):
        ReconnectingClient(endpoint, RecordingFactory(), initial_delay=2, policy=lambda n: 1)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_max_retries_is_refused(clock, bad):
    with pytest.raises(ValueError, match="max_retries"):
        ReconnectingClient(ScriptedEndpoint(clock), RecordingFactory(), max_retries=bad)


def test_bad_backoff_knobs_are_refused_when_made(clock):
    with pytest.raises(ValueError, match="jitter"):
        ReconnectingClient(ScriptedEndpoint(clock), RecordingFactory(), jitter=2)


def test_endpoint_and_factory_are_checked():
    with pytest.raises(TypeError, match="client endpoint"):
        ReconnectingClient(object(), RecordingFactory())
    with pytest.raises(TypeError, match="buildProtocol"):
        ReconnectingClient("tcp:127.0.0.1:1", object())


def test_a_description_string_is_parsed():
    client = ReconnectingClient("tcp:127.0.0.1:7", RecordingFactory())
    assert str(client.endpoint) == "tcp4:127.0.0.1:7"
    assert client.state == "idle" and client.protocol is None


def test_a_gevent_timeout_around_when_connected_leaves_the_client_running(clock):
    client, endpoint, _ = make_client(clock, ["hang"])
    client.start()
    endpoint.attempt_started.wait()
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
        client.when_connected()
    assert client.state == "connecting"
    waiter = gevent.spawn(client.when_connected)
    gevent.sleep(0)
    client.stop()
    with pytest.raises(ConnectCancelledError):
        waiter.get(timeout=5)


def test_no_protocol_and_a_raising_connection_made_count_as_failed_attempts(clock, caplog):
    client, endpoint, factory = make_client(clock, ["accept", "accept", "accept"])
    built = iter([None, "boom", "ok"])

    class Boom(Recorder):
        def connectionMade(self):
            raise ValueError("connectionMade failed")

    def build(addr):
        kind = next(built)
        if kind is None:
            return None
        protocol = Boom() if kind == "boom" else Recorder()
        factory.built.append(protocol)
        return protocol

    factory.buildProtocol = build
    client.start()
    protocol = client.when_connected()
    assert protocol is factory.built[-1] and not isinstance(protocol, Boom)
    failed = [entry for entry in factory.log if entry[0] == "clientConnectionFailed"]
    assert failed == [
        ("clientConnectionFailed", "NoProtocolError"),
        ("clientConnectionFailed", "ValueError"),
    ]
    assert isinstance(factory.built[0].reason, ValueError)  # connectionLost got it first
    assert endpoint.times == [0, 1, 3]
    client.stop()
    endpoint.close_peers()


def test_a_callback_that_raises_is_logged_and_the_client_goes_on(clock, caplog):
    client, endpoint, factory = make_client(clock, [refused(), "accept"])

    def broken(connector, reason):
        raise RuntimeError("callback bug")

    factory.clientConnectionFailed = broken
    client.on_retry = lambda *args: 1 / 0
    client.start()
    protocol = client.when_connected()
    assert protocol.transport.connected
    assert "callback bug" in caplog.text and "ZeroDivisionError" in caplog.text
    client.stop()
    endpoint.close_peers()


def test_stop_from_the_protocol_closes_the_connection_and_stops(clock):
    client, endpoint, factory = make_client(clock, ["accept"])

    class Quitter(Recorder):
        def dataReceived(self, data):
            self.transport.write(b"bye")
            self.stopped_with = client.stop()
            self.connected_check = client.when_connected()

    factory.buildProtocol = lambda addr: Quitter()
    client.start()
    protocol = client.when_connected()
    peer = endpoint.peers[0]
    peer.sendall(b"quit")
    assert read_all(peer) == b"bye"  # flushed, then closed
    assert protocol.closed.wait(5)
    assert protocol.stopped_with is True and protocol.connected_check is protocol
    with pytest.raises(ConnectCancelledError):
        client.when_connected()
    assert client.state == "stopped"
    assert len(endpoint.times) == 1
    endpoint.close_peers()


def test_when_connected_from_connection_lost_is_refused(clock):
    client, endpoint, factory = make_client(clock, ["accept"])
    errors = []

    class Impatient(Recorder):
        def connectionLost(self, reason):
            try:
                client.when_connected()
            except RuntimeError as exc:
                errors.append(exc)
            super().connectionLost(reason)

    factory.buildProtocol = lambda addr: Impatient()
    client.start()
    protocol = client.when_connected()
    endpoint.close_peers()
    assert protocol.closed.wait(5)
    assert "would wait for itself" in str(errors[0])
    client.stop()
