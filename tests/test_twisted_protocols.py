"""Twisted's own protocol classes, unchanged, over greenpoint connections."""

from __future__ import annotations

import struct
import time

import gevent
import pytest
from _protocol_helpers import LOOPBACK
from _wait_helpers import wait_until
from gevent.event import AsyncResult
from twisted.internet import defer
from twisted.internet import error as tw_error
from twisted.internet import protocol as tw_protocol
from twisted.protocols import amp, basic, policies

import greenpoint
import greenpoint._callback_transport


def _read_until_closed(sock, limit=5.0):
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"still open after {limit} s; got {data!r}")


def _serve(protocol_class, **attributes):
    factory = tw_protocol.Factory.forProtocol(protocol_class)
    for name, value in attributes.items():
        setattr(factory, name, value)
    return greenpoint.server_from_string(f"tcp:0:interface={LOOPBACK}").listen(factory)


def _client(port):
    return greenpoint.client_from_string(f"tcp:{LOOPBACK}:{port.get_host().port}").open(5)


# -- TimeoutMixin ------------------------------------------------------------------


class IdleLines(basic.LineReceiver, policies.TimeoutMixin):
    timeOut = 0.3

    def connectionMade(self):
        self.setTimeout(self.timeOut)

    def lineReceived(self, line):
        self.resetTimeout()
        self.sendLine(b"echo " + line)

    def connectionLost(self, reason):
        self.setTimeout(None)
        self.factory.lost.append(time.monotonic())


def test_timeout_mixin_closes_an_idle_connection():
    with _serve(IdleLines, lost=[]) as port:
        started = time.monotonic()
        with _client(port) as sock:
            assert _read_until_closed(sock) == b""
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 3.0  # generous: the machine is shared
        wait_until(lambda: port.handler.factory.lost, what="connectionLost")
        assert len(port.handler.factory.lost) == 1


def test_timeout_mixin_is_reset_by_traffic():
    with _serve(IdleLines, lost=[]) as port, _client(port) as sock:
        started = time.monotonic()
        for n in range(6):  # 0.6 s of traffic, twice the timeout
            sock.sendall(b"line %d\r\n" % n)
            gevent.sleep(0.1)  # the behaviour: traffic, paced
        busy_for = time.monotonic() - started
        data = _read_until_closed(sock)
        assert data == b"".join(b"echo line %d\r\n" % n for n in range(6))
        assert time.monotonic() - started > busy_for


def test_timeout_call_is_routed_to_the_connection_not_the_reactor():
    made = []

    class Spy(IdleLines):
        def connectionMade(self):
            made.append(self.callLater.__self__)
            super().connectionMade()

    with _serve(Spy, lost=[]) as port, _client(port) as sock:
        _read_until_closed(sock)
    # The connection's transport (greenlet or loop-dispatched), not the reactor.
    transports = (greenpoint._transport.Transport, greenpoint._callback_transport.CallbackTransport)
    assert isinstance(made[0], transports)


def test_a_protocols_own_call_later_is_left_alone():
    class OwnClock(tw_protocol.Protocol):
        def callLater(self, delay, func):
            return "mine"

        def connectionMade(self):
            self.factory.got.append(self.callLater(1, None))
            self.transport.loseConnection()

    with _serve(OwnClock, got=[]) as port, _client(port) as sock:
        _read_until_closed(sock)
        assert port.handler.factory.got == ["mine"]


# -- timers never run during dataReceived ------------------------------------------


class SlowReceiver(greenpoint.Protocol):
    """dataReceived blocks (gevent I/O would); a timer due meanwhile must wait."""

    def connectionMade(self):
        self.in_data = False
        self.events = self.factory.events
        # Both ways of scheduling belong to this connection.
        self.transport.callLater(0.05, self.tick, "transport")
        greenpoint.clock.callLater(0.05, self.tick, "clock")

    def dataReceived(self, data):
        self.in_data = True
        self.events.append("data start")
        gevent.sleep(0.3)  # the behaviour: a dataReceived that blocks past the timers
        self.events.append("data end")
        self.in_data = False

    def tick(self, source):
        self.events.append(("tick", source, self.in_data, gevent.getcurrent()))


def test_timer_waits_for_the_running_data_received():
    factory = greenpoint.Factory.forProtocol(SlowReceiver)
    factory.events = []
    server = greenpoint.server_from_string(f"tcp:0:interface={LOOPBACK}")
    with server.listen(factory) as port, _client(port) as sock:
        sock.sendall(b"x")  # dataReceived starts before the timers are due
        wait_until(
            lambda: len([e for e in factory.events if isinstance(e, tuple)]) == 2, what="both ticks"
        )
    events = factory.events
    assert events[:2] == ["data start", "data end"]
    ticks = [event for event in events if isinstance(event, tuple)]
    assert sorted(source for _, source, _, _ in ticks) == ["clock", "transport"]
    assert not any(in_data for _, _, in_data, _ in ticks)
    # Both ran in the connection's own greenlet, the one that ran dataReceived.
    assert len({greenlet for _, _, _, greenlet in ticks}) == 1


def test_timer_set_outside_any_connection_runs_in_its_own_greenlet():
    where = []
    greenpoint.clock.callLater(0, lambda: where.append(gevent.getcurrent()))
    wait_until(lambda: where, what="the call")
    assert where[0] is not gevent.getcurrent()


def test_timer_of_a_closed_connection_still_runs():
    fired = []

    class Later(greenpoint.Protocol):
        def connectionMade(self):
            self.transport.callLater(0.2, fired.append, "late")
            self.transport.loseConnection()

    server = greenpoint.server_from_string(f"tcp:0:interface={LOOPBACK}")
    with server.listen(greenpoint.Factory.forProtocol(Later)) as port, _client(port) as sock:
        _read_until_closed(sock)
        wait_until(lambda: fired, what="the timer, 0.2 s after the close")
    assert fired == ["late"]


# -- Twisted's framing receivers ---------------------------------------------------


class LineEcho(basic.LineReceiver):
    def lineReceived(self, line):
        self.sendLine(line.upper())
        if line == b"bye":
            self.transport.loseConnection()


class LineOnlyEcho(basic.LineOnlyReceiver):
    def lineReceived(self, line):
        self.sendLine(line.upper())
        if line == b"bye":
            self.transport.loseConnection()


class NetstringEcho(basic.NetstringReceiver):
    def stringReceived(self, string):
        self.sendString(string.upper())
        if string == b"bye":
            self.transport.loseConnection()


class Int32Echo(basic.Int32StringReceiver):
    def stringReceived(self, string):
        self.sendString(string.upper())
        if string == b"bye":
            self.transport.loseConnection()


class Int16Echo(basic.Int16StringReceiver):  # IntNStringReceiver with N = 16
    def stringReceived(self, string):
        self.sendString(string.upper())
        if string == b"bye":
            self.transport.loseConnection()


def _int32(payload):
    return struct.pack("!I", len(payload)) + payload


def _int16(payload):
    return struct.pack("!H", len(payload)) + payload


def _netstring(payload):
    return b"%d:%s," % (len(payload), payload)


def _lines(payload):
    return payload + b"\r\n"


@pytest.mark.parametrize(
    ("protocol_class", "frame"),
    [
        (LineEcho, _lines),
        (LineOnlyEcho, _lines),
        (NetstringEcho, _netstring),
        (Int32Echo, _int32),
        (Int16Echo, _int16),
    ],
    ids=[
        "LineReceiver",
        "LineOnlyReceiver",
        "NetstringReceiver",
        "Int32StringReceiver",
        "Int16StringReceiver",
    ],
)
def test_twisted_framing_receiver_echoes(protocol_class, frame):
    with _serve(protocol_class) as port, _client(port) as sock:
        messages = [b"hello", b"x" * 10000, b"", b"bye"]  # under every MAX_LENGTH
        wire = b"".join(frame(m) for m in messages)
        # Sent one byte at a time for the first frames: framing must span reads.
        for byte in wire[:12]:
            sock.sendall(bytes([byte]))
            gevent.sleep(0)
        sock.sendall(wire[12:])
        assert _read_until_closed(sock) == b"".join(frame(m.upper()) for m in messages)


def test_twisted_length_limit_drops_the_connection():
    class Small(NetstringEcho):
        MAX_LENGTH = 10

    with _serve(Small) as port, _client(port) as sock:
        sock.sendall(_netstring(b"y" * 11))
        assert _read_until_closed(sock) == b""


def test_twisted_client_factory_over_connect():
    replies = []

    class Asker(basic.LineReceiver):
        def connectionMade(self):
            self.sendLine(b"ping")

        def lineReceived(self, line):
            replies.append(line)
            self.sendLine(b"bye")

    with _serve(LineEcho) as port:
        client = greenpoint.client_from_string(f"tcp:{LOOPBACK}:{port.get_host().port}")
        protocol = client.connect(tw_protocol.ClientFactory.forProtocol(Asker))
        assert protocol.transport.wait_closed(5)
    assert replies == [b"PING", b"BYE"]


# -- amp.AMP, with Deferred results -------------------------------------------------


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Later(amp.Command):
    arguments = [(b"n", amp.Integer())]
    response = [(b"n", amp.Integer())]


class Math(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Later.responder
    def later(self, n):
        answer = defer.Deferred()  # fired by a timer of this connection
        greenpoint.clock.callLater(0.05, answer.callback, {"n": n * 2})
        return answer


def wait_for(deferred, timeout=5):
    """Block this greenlet until ``deferred`` fires (the porting guide's helper)."""
    result = AsyncResult()
    deferred.addCallbacks(result.set, lambda failure: result.set_exception(failure.value))
    return result.get(timeout=timeout)


def test_amp_calls_and_deferred_responders():
    lost = []

    class Client(amp.AMP):
        def connectionLost(self, reason):
            lost.append(reason.check(tw_error.ConnectionDone))
            super().connectionLost(reason)

    with greenpoint.server_from_string("memory:amp").listen(tw_protocol.Factory.forProtocol(Math)):
        client = greenpoint.client_from_string("memory:amp").connect(
            tw_protocol.Factory.forProtocol(Client)
        )
        assert wait_for(client.callRemote(Sum, a=2, b=3)) == {"total": 5}
        assert wait_for(client.callRemote(Later, n=21)) == {"n": 42}
        pending = client.callRemote(Later, n=1)
        transport = client.transport  # AMP drops it in connectionLost
        transport.abortConnection()
        with pytest.raises(greenpoint.ConnectionLost):
            wait_for(pending)  # AMP fails what was in flight with the reason
        assert transport.wait_closed(5)
    assert lost == [None]  # aborted: not a clean ConnectionDone


def test_reason_answers_failure_questions():
    done = greenpoint.ConnectionDone()
    assert done.check(tw_error.ConnectionLost, tw_error.ConnectionDone) is tw_error.ConnectionDone
    assert done.check(tw_error.ConnectionClosed) is tw_error.ConnectionClosed
    assert done.check(greenpoint.ConnectionLost) is None
    assert done.value is done and done.type is greenpoint.ConnectionDone
    assert done.getErrorMessage() == "the connection was closed cleanly"
    with pytest.raises(greenpoint.ConnectionDone):
        done.trap(KeyError)
