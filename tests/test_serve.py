"""The accept loop: handlers, pools, errors, overload and graceful stop."""

from __future__ import annotations

import errno
import logging
import os
import socket as stdsocket
import subprocess
import sys
import textwrap
import time

import gevent
import pytest
from _net_helpers import read_all
from _wait_helpers import wait_until
from gevent import socket as gsocket
from gevent.event import Event
from gevent.pool import Pool

from greenpoint import IPv4Address, ListeningPort, TCP4ServerEndpoint
from greenpoint._clock import MonotonicClock
from greenpoint._serve import MAX_ACCEPT_DELAY, MIN_ACCEPT_DELAY, next_backoff_delay
from greenpoint.errors import ConnectError, ProxyHeaderError

pytestmark = pytest.mark.timeout(20)


# -- helpers -------------------------------------------------------------------


def loopback_listener() -> gsocket.socket:
    sock = gsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(50)
    return sock


def connect(port: ListeningPort) -> gsocket.socket:
    host = port.get_host()
    return gsocket.create_connection((host.host, host.port), timeout=5)


class ScriptedListener:
    """A listener whose accept() follows a script: exceptions to raise, streams to give.

    Once the script is used up, accept() waits until close(), then fails as a closed
    gevent socket does.
    """

    family = stdsocket.AF_INET

    def __init__(self, script):
        self.script = list(script)
        self.closed = Event()
        self.accepts = 0

    def accept(self):
        self.accepts += 1
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, BaseException):
                raise step
            return step
        self.closed.wait()
        raise OSError(errno.EBADF, "closed")

    def close(self):
        self.closed.set()

    def getsockname(self):
        return ("127.0.0.1", 5555)


def pair_step(peer_port=40000):
    """A (server stream, raw address) accept result and the client end of it."""
    server_end, client_end = gsocket.socketpair()
    client_end.settimeout(5)
    return (server_end, ("127.0.0.1", peer_port)), client_end


class RecordingClock(MonotonicClock):
    """The real time, but sleeps are only noted (and yield once)."""

    def __init__(self, delays):
        self.delays = delays

    def sleep(self, seconds):
        self.delays.append(seconds)
        gevent.sleep(0)


def recording_port_class(delays):
    class RecordingPort(ListeningPort):
        _clock = RecordingClock(delays)

    return RecordingPort


# -- the back-off (pure) --------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "expected"),
    [(0.0, MIN_ACCEPT_DELAY), (0.01, 0.02), (0.02, 0.04), (0.6, MAX_ACCEPT_DELAY), (1.0, 1.0)],
)
def test_backoff_doubles_from_min_to_max(previous, expected):
    assert next_backoff_delay(previous) == pytest.approx(expected)


# -- serving ---------------------------------------------------------------------


def test_handler_gets_stream_and_greenpoint_address_and_stream_is_closed_after():
    seen = []

    def handler(stream, address):
        seen.append(address)
        stream.sendall(stream.recv(100).upper())  # never closes the stream itself

    with ListeningPort.start(loopback_listener(), handler) as port:
        assert port.get_host().port != 0
        assert port.getHost() == port.get_host()
        with connect(port) as client:
            client.sendall(b"ping")
            assert read_all(client) == b"PING"  # EOF: the server closed the stream
            assert seen == [IPv4Address("127.0.0.1", client.getsockname()[1])]


def test_handler_that_raises_is_logged_and_server_keeps_serving(caplog):
    calls = []

    def handler(stream, address):
        calls.append(address)
        if len(calls) == 1:
            raise RuntimeError("handler bug")
        stream.sendall(b"ok")

    with (
        caplog.at_level(logging.ERROR, logger="greenpoint"),
        ListeningPort.start(loopback_listener(), handler) as port,
    ):
        with connect(port) as first:
            assert read_all(first) == b""  # closed although the handler raised
        with connect(port) as second:
            assert read_all(second) == b"ok"
    failures = [r for r in caplog.records if r.name == "greenpoint" and r.exc_info]
    assert len(failures) == 1
    assert "handler bug" in str(failures[0].exc_info[1])


def test_pool_caps_concurrent_handlers():
    release = Event()
    running = []
    peak = []

    def handler(stream, address):
        running.append(address)
        peak.append(len(running))
        release.wait()
        running.remove(address)
        stream.sendall(b"done")

    pool = Pool(2)
    with ListeningPort.start(loopback_listener(), handler, pool=pool) as port:
        clients = [connect(port) for _ in range(5)]
        try:
            # The other three wait in the backlog (the peak checked below: never more).
            wait_until(lambda: len(running) == 2)
            release.set()
            assert [read_all(c) for c in clients] == [b"done"] * 5
            assert max(peak) == 2
        finally:
            for client in clients:
                client.close()


def test_serve_forever_blocks_until_stopped():
    port = ListeningPort.start(loopback_listener(), lambda s, a: None)
    waiter = gevent.spawn(port.serve_forever)
    gevent.idle()  # every greenlet has run: the waiter is blocked, not finished
    assert not waiter.ready()
    port.stop_listening()
    waiter.join(timeout=5)
    assert waiter.successful()


def test_listener_with_prepare_runs_it_in_the_connection_greenlet():
    slow_prepare = Event()
    prepared_in = []
    handled_in = []

    class PreparingListener:
        def __init__(self, sock):
            self.sock = sock
            self.family = sock.family

        def accept_unprepared(self):
            return self.sock.accept()

        def prepare(self, stream, address):
            prepared_in.append((gevent.getcurrent(), address))
            if len(prepared_in) == 1:
                slow_prepare.wait()  # e.g. a TLS handshake that takes its time
            if stream.recv(1) != b"+":
                raise ValueError("bad preamble")
            return stream, address

        def close(self):
            self.sock.close()

        def getsockname(self):
            return self.sock.getsockname()

    def handler(stream, address):
        handled_in.append(gevent.getcurrent())
        stream.sendall(b"hello")

    with (
        ListeningPort.start(PreparingListener(loopback_listener()), handler) as port,
        connect(port) as slow,
        connect(port) as fast,
        connect(port) as bad,
    ):
        slow.sendall(b"+")
        fast.sendall(b"+")
        assert read_all(fast) == b"hello"  # not held up by the slow prepare
        bad.sendall(b"x")
        assert read_all(bad) == b""  # prepare failed: closed, handler not called
        slow_prepare.set()
        assert read_all(slow) == b"hello"
    assert len(handled_in) == 2
    greenlets = {g for g, _ in prepared_in}
    assert set(handled_in) <= greenlets
    assert port._accept_greenlet not in greenlets
    assert all(isinstance(address, IPv4Address) for _, address in prepared_in)


class CountingStream:
    """An accepted socket that counts its close() calls."""

    def __init__(self, sock):
        self.sock = sock
        self.family = sock.family
        self.closes = 0

    def close(self):
        self.closes += 1
        self.sock.close()

    def __getattr__(self, name):
        return getattr(self.sock, name)


class OwningWrapper:
    """What a TLS or PROXY prepare() returns: a stream that owns the accepted one."""

    def __init__(self, inner):
        self.inner = inner

    def sendall(self, data):
        self.inner.sendall(data)

    def close(self):
        self.inner.close()


class WrappingListener:
    def __init__(self, sock, fail=False):
        self.sock = sock
        self.family = sock.family
        self.fail = fail
        self.accepted = []

    def accept_unprepared(self):
        sock, address = self.sock.accept()
        self.accepted.append(CountingStream(sock))
        return self.accepted[-1], address

    def prepare(self, stream, address):
        if self.fail:
            raise ConnectError("handshake failed")  # leaves the closing to the port
        return OwningWrapper(stream), address

    def close(self):
        self.sock.close()

    def getsockname(self):
        return self.sock.getsockname()


@pytest.mark.parametrize("handler_closes", [False, True], ids=["serve", "closing-handler"])
def test_a_prepared_wrapper_is_closed_once_and_closes_the_accepted_stream(handler_closes):
    def handler(stream, address):
        stream.sendall(b"hello")
        if handler_closes:
            stream.close()

    if handler_closes:
        handler.closes_stream = True
    listener = WrappingListener(loopback_listener())
    with ListeningPort.start(listener, handler) as port, connect(port) as client:
        assert read_all(client) == b"hello"
        (accepted,) = listener.accepted
        assert accepted.closes == 1  # not closed again under the wrapper that owns it


def test_the_accepted_stream_is_closed_when_prepare_fails():
    listener = WrappingListener(loopback_listener(), fail=True)
    with ListeningPort.start(listener, None) as port, connect(port) as client:
        assert read_all(client) == b""
        (accepted,) = listener.accepted
        assert accepted.closes == 1


def test_the_address_is_converted_once_per_prepared_connection(monkeypatch):
    import greenpoint._serve

    calls = []

    def counting(convert):
        def wrapper(*args):
            calls.append(args)
            return convert(*args)

        return wrapper

    # The port converts an IPv4 pair itself (inline) and anything else with as_address.
    for name in ("as_address", "IPv4Address"):
        monkeypatch.setattr(greenpoint._serve, name, counting(getattr(greenpoint._serve, name)))
    seen = []

    def handler(stream, address):
        seen.append(address)
        stream.sendall(b"hello")

    with (
        ListeningPort.start(WrappingListener(loopback_listener()), handler) as port,
        connect(port) as client,
    ):
        assert read_all(client) == b"hello"
        local = client.getsockname()
    assert seen == [IPv4Address(*local)]
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("error", "level", "traceback"),
    [
        (ProxyHeaderError("not a PROXY header"), logging.DEBUG, False),  # haproxy logged it
        (ConnectionResetError(errno.ECONNRESET, "reset"), logging.INFO, False),
        (ConnectError("handshake failed"), logging.INFO, False),
        (RuntimeError("a bug in prepare"), logging.ERROR, True),
    ],
    ids=["proxy-header", "os-error", "greenpoint-error", "bug"],
)
def test_prepare_failures_are_logged_once_at_their_level(caplog, error, level, traceback):
    class FailingListener:
        def __init__(self, sock):
            self.sock = sock  # no family: a wrapper, like haproxy's listener

        def accept_unprepared(self):
            return self.sock.accept()

        def prepare(self, stream, address):
            raise error

        def close(self):
            self.sock.close()

        def get_host(self):
            return IPv4Address(*self.sock.getsockname())

    caplog.set_level(logging.DEBUG, logger="greenpoint")
    port = ListeningPort.start(FailingListener(loopback_listener()), None)
    with port, connect(port) as client:
        assert read_all(client) == b""
        local = client.getsockname()
    (record,) = [r for r in caplog.records if r.name == "greenpoint"]
    assert record.levelno == level
    assert (record.exc_info is not None) == traceback
    assert str(IPv4Address(*local)) in record.getMessage()  # an address, not a tuple


# -- accept errors -----------------------------------------------------------------


def test_accept_survives_emfile_with_doubling_backoff(caplog):
    step, client = pair_step()
    emfile = OSError(errno.EMFILE, "Too many open files")
    listener = ScriptedListener([emfile, emfile, emfile, step])
    delays = []
    handled = Event()
    seen = []

    def handler(stream, address):
        seen.append(address)
        stream.sendall(b"served")
        handled.set()

    with (
        caplog.at_level(logging.WARNING, logger="greenpoint"),
        recording_port_class(delays).start(listener, handler) as port,
    ):
        assert handled.wait(5)
        assert client.recv(100) == b"served"
        assert port.get_host() == IPv4Address("127.0.0.1", 5555)
    client.close()
    assert delays == pytest.approx([0.01, 0.02, 0.04])
    assert seen == [IPv4Address("127.0.0.1", 40000)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all("Too many open files" in w for w in warnings)


def test_backoff_resets_after_a_successful_accept():
    first, client1 = pair_step(1)
    second, client2 = pair_step(2)
    enfile = OSError(errno.ENFILE, "Too many open files in system")
    listener = ScriptedListener([enfile, enfile, first, enfile, second])
    delays = []
    with recording_port_class(delays).start(listener, lambda s, a: s.sendall(b"x")):
        assert client1.recv(1) == b"x"
        assert client2.recv(1) == b"x"
    client1.close()
    client2.close()
    assert delays == pytest.approx([0.01, 0.02, 0.01])


@pytest.mark.parametrize("code", [errno.ECONNABORTED, errno.EPROTO, errno.EPERM])
def test_per_connection_accept_errors_are_retried_at_once(code):
    step, client = pair_step()
    listener = ScriptedListener([OSError(code, os.strerror(code)), step])
    delays = []
    with recording_port_class(delays).start(listener, lambda s, a: s.sendall(b"x")):
        assert client.recv(1) == b"x"
    client.close()
    assert delays == []


def test_unexpected_exception_from_accept_is_survived(caplog):
    step, client = pair_step()
    listener = ScriptedListener([RuntimeError("listener bug"), step])
    delays = []
    with (
        caplog.at_level(logging.WARNING, logger="greenpoint"),
        recording_port_class(delays).start(listener, lambda s, a: s.sendall(b"x")),
    ):
        assert client.recv(1) == b"x"
    client.close()
    assert delays == [MIN_ACCEPT_DELAY]
    assert any(r.exc_info and "listener bug" in str(r.exc_info[1]) for r in caplog.records)


def test_fatal_accept_error_stops_the_port_and_serve_forever_raises_it():
    stopped = []
    listener = ScriptedListener([OSError(errno.EINVAL, "Invalid argument")])
    port = ListeningPort.start(listener, lambda s, a: None, on_stop=lambda: stopped.append(1))
    with pytest.raises(OSError) as info:
        port.serve_forever()
    assert info.value.errno == errno.EINVAL
    assert port.closing
    assert listener.closed.is_set()
    assert stopped == [1]


@pytest.mark.timeout(40)
def test_real_emfile_in_a_low_rlimit_process():
    # A child server that can hold only three more descriptors: the fourth client's
    # accept() fails with EMFILE until earlier clients leave; nothing is lost.
    child_code = textwrap.dedent(
        """
        import logging, os, resource, sys
        import gevent, gevent.socket
        from greenpoint import TCP4ServerEndpoint

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

        def handler(stream, address):
            stream.sendall(stream.recv(100))
            while stream.recv(100):
                pass

        port = TCP4ServerEndpoint(0, interface="127.0.0.1").serve(handler)
        gevent.idle()  # the accept loop has started and holds what it needs
        # New descriptors take the lowest free numbers: leave exactly three below the limit.
        probes = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]
        for fd in probes:
            os.close(fd)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(probes) + 1, hard))
        print(port.get_host().port, flush=True)
        gevent.socket.wait_read(sys.stdin.fileno())  # the test closes stdin when done
        port.stop_listening(timeout=0)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    child = subprocess.Popen(
        [sys.executable, "-c", child_code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    clients = []
    try:
        port_number = int(child.stdout.readline())
        for i in range(6):
            client = stdsocket.create_connection(("127.0.0.1", port_number), timeout=10)
            clients.append(client)
            client.sendall(b"%d" % i)
        for client in clients[:3]:
            assert client.recv(100)  # served
        clients[3].settimeout(0.5)
        with pytest.raises(TimeoutError):
            clients[3].recv(100)  # out of descriptors: not accepted yet
        for client in clients[:3]:
            client.close()
        for i, client in enumerate(clients[3:], start=3):
            client.settimeout(10)
            assert client.recv(100) == b"%d" % i  # accepted once descriptors freed
    finally:
        for client in clients:
            client.close()
        _, stderr = child.communicate(b"", timeout=20)
    assert child.returncode == 0, stderr.decode()
    assert "Too many open files" in stderr.decode()


# -- stopping --------------------------------------------------------------------


@pytest.mark.timeout(15)
def test_stop_refuses_new_clients_lets_handlers_finish_then_kills_the_rest():
    events = []
    stopped = []
    started = []

    def handler(stream, address):
        kind = stream.recv(10)
        started.append(kind)
        try:
            if kind == b"quick":
                gevent.sleep(0.3)  # the sleep is the behaviour: a handler that takes a while
                stream.sendall(b"finished")
            else:
                gevent.sleep(30)
                stream.sendall(b"never")
        except gevent.GreenletExit:
            events.append(("killed", kind))
            raise
        finally:
            events.append(("closing seen", port.closing))

    port = ListeningPort.start(loopback_listener(), handler, on_stop=lambda: stopped.append(1))
    address = port.get_host()
    quick = connect(port)
    slow = connect(port)
    try:
        quick.sendall(b"quick")
        slow.sendall(b"slow")
        wait_until(lambda: len(started) == 2, what="both handlers to read their kind")
        began = time.monotonic()
        stopper = gevent.spawn(port.stop_listening, timeout=1.0)
        wait_until(lambda: port.closing)  # set as the listener is closed, with no switch
        with pytest.raises(ConnectionRefusedError):
            gsocket.create_connection((address.host, address.port), timeout=2)
        assert read_all(quick) == b"finished"  # finished within the timeout
        assert stopped == []  # on_stop waits for everything to close
        assert read_all(slow) == b""  # killed at the timeout, its socket closed
        stopper.join(timeout=5)
        took = time.monotonic() - began
        assert stopper.successful()
        assert 0.9 <= took < 3.0
        assert ("killed", b"slow") in events
        assert ("closing seen", True) in events
        assert stopped == [1]
        assert port.handler_count == 0
    finally:
        quick.close()
        slow.close()


def test_stop_without_timeout_waits_for_handlers():
    def handler(stream, address):
        gevent.sleep(0.3)  # the sleep is the behaviour: a handler that takes a while
        stream.sendall(b"complete")

    port = ListeningPort.start(loopback_listener(), handler)
    with connect(port) as client:
        wait_until(lambda: port.handler_count == 1)
        port.stop_listening()
        assert read_all(client) == b"complete"


def test_context_manager_exit_aborts_running_handlers():
    receiving = Event()
    killed = Event()

    def handler(stream, address):
        try:
            receiving.set()
            stream.recv(100)  # the client never sends
        except gevent.GreenletExit:
            killed.set()
            raise

    with connect_after_start(handler) as (port, client):
        assert receiving.wait(5)
    assert killed.is_set()
    assert read_all(client) == b""
    client.close()
    with pytest.raises(OSError):
        port.listener.accept()  # the listener is closed


class connect_after_start:
    def __init__(self, handler):
        self.handler = handler

    def __enter__(self):
        self.port = ListeningPort.start(loopback_listener(), self.handler)
        self.port.__enter__()
        self.client = connect(self.port)
        return self.port, self.client

    def __exit__(self, *exc_info):
        self.port.__exit__(*exc_info)


def test_stop_closes_streams_of_handlers_that_never_started():
    steps, clients = zip(*(pair_step(i) for i in range(3)), strict=True)
    listener = ScriptedListener(steps)
    calls = []
    port = ListeningPort.start(listener, lambda s, a: calls.append(a))
    gevent.sleep(0)  # the accept loop takes all three; their handlers are not run yet
    assert listener.accepts >= 3
    port.stop_listening(timeout=0)
    for client in clients:
        assert client.recv(10) == b""
        client.close()
    assert calls == []  # killed before they ran
    assert port.handler_count == 0


def test_second_stop_waits_for_the_first_and_on_stop_runs_once():
    stopped = []

    def handler(stream, address):
        gevent.sleep(0.2)  # the sleep is the behaviour: the first stop waits for it

    port = ListeningPort.start(loopback_listener(), handler, on_stop=lambda: stopped.append(1))
    with connect(port):
        wait_until(lambda: port.handler_count == 1)
        first = gevent.spawn(port.stop_listening)
        wait_until(lambda: port.closing, what="the first stop to begin")
        port.stop_listening(timeout=0)  # returns only when the first stop is done
        assert first.dead
        assert stopped == [1]
    port.stop_listening()
    assert stopped == [1]


def test_handler_may_stop_the_port_it_runs_under():
    def handler(stream, address):
        port.stop_listening(timeout=0)
        stream.sendall(b"bye")  # its own connection is left alone

    port = ListeningPort.start(loopback_listener(), handler)
    with connect(port) as client:
        assert read_all(client) == b"bye"
    port.serve_forever()  # already stopped: returns at once
    assert port.closing


def test_on_stop_failure_is_logged_not_raised(caplog):
    def on_stop():
        raise RuntimeError("doStop bug")

    port = ListeningPort.start(loopback_listener(), lambda s, a: None, on_stop=on_stop)
    with caplog.at_level(logging.ERROR, logger="greenpoint"):
        port.stop_listening()
    assert any("doStop bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_serve_from_an_endpoint_returns_a_listening_port():
    port = TCP4ServerEndpoint(0, interface="127.0.0.1").serve(lambda s, a: s.sendall(b"hi"))
    with port, connect(port) as client:
        assert isinstance(port, ListeningPort)
        assert read_all(client) == b"hi"


def test_stop_interrupted_by_a_timeout_still_closes_everything():
    def handler(stream, address):
        gevent.sleep(30)

    port = ListeningPort.start(loopback_listener(), handler)
    with connect(port) as client:
        wait_until(lambda: port.handler_count == 1)
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.2):
            port.stop_listening()  # would wait for the handler forever
        assert port.handler_count == 0
        assert read_all(client) == b""


def test_handler_calling_stop_while_a_stop_is_draining_does_not_deadlock():
    entered = Event()
    finished = []

    running = Event()

    def handler(stream, address):
        running.set()
        entered.wait()
        port.stop_listening()  # a stop is already waiting for this handler
        finished.append(True)

    port = ListeningPort.start(loopback_listener(), handler)
    with connect(port):
        assert running.wait(5)
        stopper = gevent.spawn(port.stop_listening)
        wait_until(lambda: port.closing, what="the stop to begin")
        entered.set()
        stopper.join(timeout=5)
        assert stopper.successful()
    assert finished == [True]


def test_a_gevent_listener_closed_under_the_port_stops_it():
    # A plain gevent listener is accepted from in the hub (AcceptWatcher); closing
    # it from outside must still end the port with the error, as a waiting accept would.
    listener = loopback_listener()
    port = ListeningPort.start(listener, lambda s, a: None)
    gevent.sleep(0.01)
    gevent.spawn_later(0.02, listener.close)
    with gevent.Timeout(5), pytest.raises(OSError) as info:
        port.serve_forever()
    assert info.value.errno == errno.EBADF
    assert port.closing


def test_hub_accepting_serves_many_connections_at_once_and_counts_them():
    listener = loopback_listener()

    def echo_once(stream, _address):
        stream.sendall(stream.recv(100))

    with ListeningPort.start(listener, echo_once) as port:
        clients = [connect(port) for _ in range(30)]
        for i, client in enumerate(clients):
            client.sendall(b"%d" % i)
        for i, client in enumerate(clients):
            assert client.recv(100) == b"%d" % i
            client.close()
        assert port.stats.accepted == 30


def test_handlers_spawned_by_the_hub_keep_no_spawning_stack():
    # gevent keeps each greenlet's spawning stack; from the hub's accept callback it
    # would be several frames deeper than from an accept greenlet (~200 bytes more per
    # idle connection), and always the same. None is kept.
    depths = []

    def handler(stream, _address):
        frame, depth = gevent.getcurrent().spawning_stack, 0
        while frame is not None:
            depth, frame = depth + 1, frame.f_back
        depths.append(depth)

    listener = loopback_listener()
    with ListeningPort.start(listener, handler) as port:
        client = connect(port)
        assert client.recv(1) == b""  # the handler ran and the port closed the stream
        client.close()
    assert depths == [0]
