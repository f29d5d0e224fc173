"""greenpoint.testing.StringTransport and ManualClock: a protocol with no connection."""

from __future__ import annotations

import pytest
from twisted.protocols import basic, policies

from greenpoint.testing import ManualClock, StringTransport


class Greeter(basic.LineReceiver, policies.TimeoutMixin):
    def connectionMade(self):
        self.setTimeout(30)
        self.sendLine(b"220 hello")

    def lineReceived(self, line):
        self.resetTimeout()
        if line == b"STARTTLS":
            self.sendLine(b"220 go ahead")
            self.transport.startTLS("options")
        else:
            self.sendLine(b"250 " + line)


def test_writes_are_recorded_and_cleared():
    transport = StringTransport()
    protocol = transport.connect(Greeter())
    assert transport.value() == b"220 hello\r\n"
    transport.clear()
    protocol.dataReceived(b"ab\r\ncd")
    protocol.dataReceived(b"\r\n")
    assert transport.value() == b"250 ab\r\n250 cd\r\n"
    protocol.setTimeout(None)


def test_timeout_mixin_fires_when_the_manual_clock_moves():
    clock = ManualClock()
    transport = StringTransport(clock=clock)
    protocol = transport.connect(Greeter())
    clock.advance(29)
    protocol.dataReceived(b"still here\r\n")  # resets the 30 s timeout
    clock.advance(29)
    assert not transport.disconnecting
    clock.advance(1.5)
    assert transport.disconnecting
    assert clock.getDelayedCalls() == []


def test_start_tls_is_recorded():
    transport = StringTransport(clock=ManualClock())
    protocol = transport.connect(Greeter())
    protocol.dataReceived(b"STARTTLS\r\n")
    assert transport.tls_options == "options"
    assert transport.value().endswith(b"220 go ahead\r\n")


def test_manual_clock_runs_calls_in_time_order_and_honours_cancel():
    clock = ManualClock(start=100)
    seen = []
    clock.callLater(2, seen.append, "b")
    clock.callLater(1, seen.append, "a")
    cancelled = clock.callLater(1.5, seen.append, "never")
    moved = clock.callLater(0.5, seen.append, "c")
    moved.reset(3)
    cancelled.cancel()
    clock.advance(2.5)
    assert seen == ["a", "b"]
    assert clock.seconds() == 102.5
    clock.advance(1)
    assert seen == ["a", "b", "c"]
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_write_refuses_text():
    with pytest.raises(TypeError, match="bytes"):
        StringTransport().write("text")
