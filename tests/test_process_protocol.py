"""A child process under the protocol layer: its exit status reaches connectionLost."""

from __future__ import annotations

import signal
import time

import gevent
import pytest
from _protocol_helpers import Recorder

from greenpoint import (
    ConnectionDone,
    ConnectionLost,
    Factory,
    PipeAddress,
    ProcessEndpoint,
    ProcessTerminated,
    StandardErrorBehavior,
)
from greenpoint._transport import Transport

pytestmark = pytest.mark.timeout(15)


class Scripted(Recorder):
    """Writes ``greeting`` and then half-closes (or calls ``then``); records the rest."""

    greeting = b""
    then = "loseWriteConnection"

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.greeting:
            self.transport.write(self.greeting)
        if self.then:
            getattr(self.transport, self.then)()


def sh(script: str) -> ProcessEndpoint:
    return ProcessEndpoint("sh", ("sh", "-c", script), err_flag=StandardErrorBehavior.DROP)


def connect(endpoint: ProcessEndpoint, **attributes) -> Scripted:
    factory = Factory.forProtocol(type("Scripted", (Scripted,), attributes))
    protocol = endpoint.connect(factory)
    assert protocol.transport.wait_closed(timeout=10)
    return protocol


def test_non_zero_exit_status_reaches_connection_lost():
    protocol = connect(sh("cat; exit 3"), greeting=b"echo me")
    assert protocol.received == b"echo me"
    (reason,) = protocol.reasons
    assert isinstance(reason, ProcessTerminated) and isinstance(reason, ConnectionLost)
    assert reason.exit_code == 3 and "exited with status 3" in str(reason)
    assert protocol.transport.getPeer() == protocol.transport.getHandle().getPeer()
    assert isinstance(protocol.transport.getPeer(), PipeAddress)


def test_status_zero_is_connection_done():
    protocol = connect(sh("cat"), greeting=b"x")
    (reason,) = protocol.reasons
    assert type(reason) is ConnectionDone and "status 0" in str(reason)


def test_lose_connection_flushes_closes_then_waits_for_the_exit():
    # The child reads everything we wrote before loseConnection, and exits with
    # the number of bytes it got, which only the exit status can tell us.
    script = "n=$(wc -c); exit $((n % 256 + 1))"
    protocol = connect(sh(script), greeting=b"a" * 300_001, then="loseConnection")
    (reason,) = protocol.reasons
    assert isinstance(reason, ProcessTerminated)
    assert reason.exit_code == 300_001 % 256 + 1


def test_killed_by_a_signal():
    protocol = connect(sh("kill -TERM $$"), then="")
    (reason,) = protocol.reasons
    assert isinstance(reason, ProcessTerminated) and reason.signal == signal.SIGTERM
    assert "SIGTERM" in str(reason)


def test_a_write_to_a_dead_child_reports_its_status_not_the_broken_pipe():
    class WritesAfterEOF(Scripted):
        then = ""

        def readConnectionLost(self) -> None:  # stdout ended; the child has exited
            self.transport.getHandle().wait(5)
            self.transport.write(b"x" * 100_000)  # EPIPE: nobody reads stdin

    factory = Factory.forProtocol(WritesAfterEOF)
    protocol = sh("exec 0<&-; exit 4").connect(factory)
    assert protocol.transport.wait_closed(timeout=10)
    (reason,) = protocol.reasons
    assert isinstance(reason, ProcessTerminated) and reason.exit_code == 4
    assert isinstance(reason.__context__, ConnectionLost)  # how it ended, for debugging
    assert isinstance(reason.__context__.__cause__, BrokenPipeError)


def test_abort_does_not_wait_for_the_child():
    protocol = sh("sleep 30").connect(Factory.forProtocol(type("Idle", (Scripted,), {"then": ""})))
    stream = protocol.transport.getHandle()
    try:
        began = time.monotonic()
        protocol.transport.abortConnection()
        assert protocol.transport.wait_closed(timeout=10)
        assert time.monotonic() - began < 10  # not the child's 30 s
        (reason,) = protocol.reasons
        assert type(reason) is ConnectionLost
    finally:
        stream.kill()
        stream.wait(5)


def test_killing_the_reader_while_it_waits_for_the_child():
    # The child closes its stdout but lives on: the reader waits for its exit.
    stream = sh("exec 1>&-; sleep 30").open()
    protocol = Recorder()
    transport = Transport(stream, protocol)
    transport.start()
    reader = transport.spawn()
    try:
        gevent.sleep(0.2)  # the sleep is the check: the reader does not end while the child lives
        assert not reader.dead and not protocol.reasons  # waiting for the exit
        reader.kill(block=True, timeout=5)
        assert reader.dead
        (reason,) = protocol.reasons
        assert type(reason) is ConnectionLost
        assert isinstance(reason.__cause__, gevent.GreenletExit)
    finally:
        stream.kill()
        stream.wait(5)


def test_socket_streams_have_no_exit_wait():
    # Decided once at construction: only streams with final_reason() pay for it.
    class Plain:
        def recv(self, size):
            return b""

        def close(self):
            pass

    assert Transport(Plain(), Recorder())._final_reason is None
