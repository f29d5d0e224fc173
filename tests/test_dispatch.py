"""listen(dispatch="loop"): protocol callbacks from the event loop, one dispatcher greenlet.

What loop dispatch promises beyond the transport contract (which test_transport.py
and test_protocol.py check in both modes): one read watcher per connection started
once, no greenlet per connection, one switch per loop turn for all ready
connections, a protocol that blocks never stalls the others and keeps its order,
kills and errors stay inside, and no protocol callback recurses into another.
"""

from __future__ import annotations

import gc
import logging
import socket
import weakref

import gevent
import greenlet
import pytest
from _protocol_helpers import LOOPBACK, BuildingFactory, echoed, raw_client, tcp_server
from gevent import socket as gsocket
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore

from greenpoint import ConnectionDone, ConnectionLost, IdleTimeoutError, Protocol
from greenpoint._callback_transport import CallbackTransport
from greenpoint._transport import Transport
from greenpoint.endpoints.unix import UNIXServerEndpoint

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(params=["tcp", "unix"])
def server_endpoint(request, tmp_path):
    if request.param == "tcp":
        return tcp_server()
    return UNIXServerEndpoint(str(tmp_path / "d.sock"))


def wait_for(predicate, timeout=5.0, what="condition"):
    with gevent.Timeout(timeout, AssertionError(f"timed out waiting for {what}")):
        while not predicate():
            gevent.sleep(0.002)


class Recorder(Protocol):
    """Records data, the greenlet each callback ran in, and every connectionLost."""

    def __init__(self):
        self.received = b""
        self.greenlets = []
        self.reasons = []
        self.closed = Event()

    def dataReceived(self, data):
        self.greenlets.append(gevent.getcurrent())
        self.received += data

    def connectionLost(self, reason):
        self.greenlets.append(gevent.getcurrent())
        self.reasons.append(reason)
        self.closed.set()


class Echo(Recorder):
    def dataReceived(self, data):
        super().dataReceived(data)
        self.transport.write(data)


# -- the mode and its argument -------------------------------------------------------


def test_loop_dispatch_uses_the_callback_transport_and_greenlet_mode_the_greenlet_one(
    server_endpoint,
):
    for dispatch, kind in (("loop", CallbackTransport), ("greenlet", Transport)):
        factory = BuildingFactory(Echo)
        with server_endpoint.listen(factory, dispatch=dispatch) as port:
            sock = raw_client(port, server_endpoint)
            try:
                assert echoed(sock, b"ping") == b"ping"
            finally:
                sock.close()
            protocol = factory.built[0]
            assert protocol.closed.wait(5)
        assert type(protocol.transport) is kind, dispatch


def test_a_bad_dispatch_is_refused_before_binding_and_names_the_choices():
    factory = BuildingFactory(Echo)
    with pytest.raises(ValueError, match="dispatch must be 'loop'.*'greenlet'.*'callbacks'"):
        tcp_server().listen(factory, dispatch="callbacks")
    assert factory.numPorts == 0  # doStart never ran: nothing was bound


# -- reading: one watcher, started once; no greenlet per connection ----------------------


def test_one_read_watcher_per_connection_stays_started_across_messages(monkeypatch):
    starts = []
    original = CallbackTransport._update_reading

    def counting(self):
        was = self._reading
        original(self)
        if self._reading and not was:
            starts.append(self)

    monkeypatch.setattr(CallbackTransport, "_update_reading", counting)

    class Watching(Echo):
        def dataReceived(self, data):
            watcher = self.transport.getHandle()._read_event
            self.seen = (watcher.active, watcher.callback == self.transport._readable)
            super().dataReceived(data)

    factory = BuildingFactory(Watching)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        sock = raw_client(port, endpoint)
        try:
            for n in range(30):
                assert echoed(sock, b"request %d" % n) == b"request %d" % n
                assert factory.built[0].seen == (True, True)  # not stopped around the call
        finally:
            sock.close()
        assert factory.built[0].closed.wait(5)
    assert starts == [factory.built[0].transport]  # started once, for 30 messages


def test_idle_connections_have_no_greenlet_each(server_endpoint):
    def greenlets():
        return sum(isinstance(o, greenlet.greenlet) and not o.dead for o in gc.get_objects())

    factory = BuildingFactory(Echo)
    with server_endpoint.listen(factory, dispatch="loop") as port:
        socks = [raw_client(port, server_endpoint) for _ in range(5)]
        try:
            assert echoed(socks[0], b"warm") == b"warm"  # the dispatcher exists now
            before = greenlets()
            socks += [raw_client(port, server_endpoint) for _ in range(40)]
            for sock in socks:
                assert echoed(sock, b"x") == b"x"
            assert greenlets() - before <= 2  # not one per connection
        finally:
            for sock in socks:
                sock.close()
        wait_for(lambda: port.handler_count == 0, what="every connection closed")


def test_a_closed_loop_dispatched_connection_is_freed_without_the_garbage_collector():
    factory = BuildingFactory(Echo)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        gc.disable()
        try:
            sock = raw_client(port, endpoint)
            try:
                assert echoed(sock, b"ping") == b"ping"
                sock.shutdown(socket.SHUT_WR)
                assert sock.recv(10) == b""
            finally:
                sock.close()
            protocol = factory.built.pop()
            assert protocol.closed.wait(5)
            wait_for(lambda: port.handler_count == 0, what="the port to forget it")
            gevent.sleep(0.01)  # the dispatcher goes idle
            refs = weakref.ref(protocol), weakref.ref(protocol.transport)
            del protocol
            # The accept loop's locals hold the latest connection until the next.
            with raw_client(port, endpoint) as following:
                assert echoed(following, b"next") == b"next"
            assert [ref() for ref in refs] == [None, None]
        finally:
            gc.enable()


def test_no_dispatcher_greenlet_outlives_the_last_connection():
    factory = BuildingFactory(Echo)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock:
            assert echoed(sock, b"ping") == b"ping"
        dispatcher = factory.built[0].greenlets[0]
        assert factory.built[0].closed.wait(5)
        wait_for(lambda: dispatcher.dead, what="the idle dispatcher to end")
        with raw_client(port, endpoint) as sock:  # the next connection gets a fresh one
            assert echoed(sock, b"again") == b"again"
        assert factory.built[1].greenlets[0] is not dispatcher


def test_data_received_runs_in_one_dispatcher_with_one_switch_per_loop_turn():
    """All connections ready in one loop turn are served by one switch into the dispatcher."""
    factory = BuildingFactory(Echo)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        socks = [raw_client(port, endpoint) for _ in range(20)]
        try:
            for sock in socks:
                assert echoed(sock, b"warm") == b"warm"
            dispatcher = factory.built[0].greenlets[0]
            switches = []

            def trace(event, args):
                if event == "switch" and args[1] is dispatcher:
                    switches.append(args)

            previous = greenlet.settrace(trace)
            try:
                for sock in socks:  # all 20 requests land before the server's loop runs
                    sock.send(b"burst")
                for sock in socks:
                    assert sock.recv(100) == b"burst"
            finally:
                greenlet.settrace(previous)
            hub = gevent.get_hub()
            for protocol in factory.built:
                assert all(g is dispatcher for g in protocol.greenlets)
                assert dispatcher is not hub
            assert 1 <= len(switches) <= 4, len(switches)  # not 20: one per loop turn
        finally:
            for sock in socks:
                sock.close()


# -- protocols that block ---------------------------------------------------------------


def _blockers():
    """Ways protocol code blocks: each returns (block(), release())."""

    def sleep():
        done = Event()
        return (lambda: done.wait(10)), done.set

    def socket_call():
        ours, theirs = gsocket.socketpair()

        def block():
            try:
                assert ours.recv(10) == b"go"
            finally:
                ours.close()

        def release():
            theirs.sendall(b"go")
            theirs.close()

        return block, release

    def db_style_wait():
        result = AsyncResult()
        return (lambda: result.get(timeout=10)), (lambda: result.set("row"))

    def lock():
        semaphore = Semaphore(1)
        semaphore.acquire()

        def block():
            with semaphore:
                pass

        return block, semaphore.release

    def timed_sleep():
        return (lambda: gevent.sleep(0.3)), (lambda: None)

    return {
        "event": sleep,
        "socket": socket_call,
        "db-wait": db_style_wait,
        "lock": lock,
        "sleep": timed_sleep,
    }


@pytest.mark.parametrize("kind", list(_blockers()))
def test_a_blocking_protocol_never_stalls_others_and_keeps_its_order(kind):
    block, release = _blockers()[kind]()

    class Blocky(Recorder):
        inside = False

        def dataReceived(self, data):
            assert not self.inside, "dataReceived re-entered for the same connection"
            self.inside = True
            try:
                super().dataReceived(data)
                if data.startswith(b"block"):
                    block()
                self.transport.write(data)
            finally:
                self.inside = False

    factory = BuildingFactory(Blocky)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        slow, fast = raw_client(port, endpoint), raw_client(port, endpoint)
        try:
            slow.sendall(b"block|")
            wait_for(lambda: factory.built and factory.built[0].received == b"block|")
            for n in range(3):  # sent while the slow one is blocked: held, in order
                slow.sendall(b"%d|" % n)
                gevent.sleep(0.01)
            for n in range(5):  # the other connection is served meanwhile
                assert echoed(fast, b"fast %d" % n) == b"fast %d" % n
            release()
            got = b""
            while len(got) < len(b"block|0|1|2|"):
                got += slow.recv(100)
            assert got == b"block|0|1|2|"
            slow_protocol = factory.built[0]
            assert slow_protocol.received == b"block|0|1|2|"
            # The blocked greenlet was left to the slow connection (and then ended);
            # afterwards it is back on the shared dispatcher with everyone else.
            holder = slow_protocol.greenlets[0]
            assert echoed(slow, b"after") == b"after"
            assert echoed(fast, b"fast") == b"fast"
            shared = factory.built[1].greenlets[-1]
            assert slow_protocol.greenlets[-1] is shared
            assert holder is not shared and holder.dead
        finally:
            slow.close()
            fast.close()


def test_a_blocked_connection_killed_by_stop_listening_loses_once_and_others_drain():
    started = Event()

    class Stuck(Recorder):
        def dataReceived(self, data):
            super().dataReceived(data)
            if data == b"stuck":
                started.set()
                gevent.sleep(30)
            else:
                self.transport.write(data)
                self.transport.loseConnection()

    factory = BuildingFactory(Stuck)
    endpoint = tcp_server()
    port = endpoint.listen(factory, dispatch="loop")
    stuck, polite = raw_client(port, endpoint), raw_client(port, endpoint)
    try:
        stuck.sendall(b"stuck")
        assert started.wait(5)
        polite.sendall(b"bye")
        assert polite.recv(10) == b"bye"
        port.stop_listening(timeout=0.2)
        assert [type(r) for r in factory.built[0].reasons] == [ConnectionLost]
        assert [type(r) for r in factory.built[1].reasons] == [ConnectionDone]
        assert port.handler_count == 0
    finally:
        stuck.close()
        polite.close()
        port.stop_listening()


# -- kills and errors stay inside ----------------------------------------------------------


@pytest.fixture
def hub_errors(monkeypatch):
    """Whatever reaches the hub's error handler (nothing should)."""
    hub = gevent.get_hub()
    seen = []
    original = hub.handle_error

    def spy(context, kind, value, tb):
        if kind is not None and not issubclass(kind, gevent.GreenletExit):
            seen.append((context, kind, value))
        return original(context, kind, value, tb)

    monkeypatch.setattr(hub, "handle_error", spy)
    return seen


@pytest.mark.parametrize("how", ["kill", "kill-no-block", "raise-exit"])
def test_a_protocol_killing_its_greenlet_kills_only_the_dispatcher(how, hub_errors):
    class Killer(Echo):
        def dataReceived(self, data):
            if data == b"kill":
                current = gevent.getcurrent()
                if how == "kill":
                    current.kill()
                elif how == "kill-no-block":
                    current.kill(block=False)
                    self.transport.write(b"still here")
                    return
                else:
                    raise gevent.GreenletExit
            super().dataReceived(data)

    factory = BuildingFactory(Killer)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        killer, other = raw_client(port, endpoint), raw_client(port, endpoint)
        try:
            assert echoed(other, b"before") == b"before"
            first_dispatcher = factory.built[1].greenlets[-1]
            killer.sendall(b"kill")
            if how == "kill-no-block":
                # The kill lands once the dispatcher waits: only it dies.
                assert killer.recv(100) == b"still here"
                wait_for(lambda: first_dispatcher.dead, what="the dispatcher to die")
                assert echoed(killer, b"alive") == b"alive"
            else:
                assert factory.built[0].closed.wait(5)
                assert [type(r) for r in factory.built[0].reasons] == [ConnectionLost]
                assert killer.recv(100) == b""
            for n in range(3):  # everyone else still served, by a fresh dispatcher
                assert echoed(other, b"after %d" % n) == b"after %d" % n
            assert factory.built[1].greenlets[-1] is not first_dispatcher
        finally:
            killer.close()
            other.close()
    assert hub_errors == []


def test_errors_in_callbacks_and_a_socket_closed_under_us_never_reach_the_hub(hub_errors, caplog):
    class Faulty(Echo):
        def dataReceived(self, data):
            if data == b"raise":
                raise ValueError("protocol bug")
            if data == b"close-handle":
                self.transport.getHandle().close()  # behind the transport's back
                return
            super().dataReceived(data)

        def connectionLost(self, reason):
            super().connectionLost(reason)
            raise RuntimeError("bug in connectionLost")

    factory = BuildingFactory(Faulty)
    endpoint = tcp_server()
    with (
        caplog.at_level(logging.ERROR, "greenpoint"),
        endpoint.listen(factory, dispatch="loop") as port,
    ):
        for n, message in enumerate((b"raise", b"close-handle")):
            sock = raw_client(port, endpoint)
            try:
                sock.sendall(message)
                wait_for(lambda n=n: factory.built[n:] and factory.built[n].reasons)
            finally:
                sock.close()
        sock = raw_client(port, endpoint)
        try:
            assert echoed(sock, b"fine") == b"fine"
        finally:
            sock.close()
    assert isinstance(factory.built[0].reasons[0], ValueError)
    assert isinstance(factory.built[1].reasons[0], ConnectionLost)
    assert any("connectionLost" in r.getMessage() for r in caplog.records)
    assert hub_errors == []


# -- reentrancy ----------------------------------------------------------------------------


def test_closing_or_writing_to_another_connection_never_recurses_into_it():
    inside = []
    order = []

    class Peer(Recorder):
        def dataReceived(self, data):
            inside.append(self)
            try:
                super().dataReceived(data)
                if data == b"close the other":
                    other = next(p for p in factory.built if p is not self)
                    other.transport.write(b"from the other side")
                    other.transport.loseConnection()
                    self.transport.loseConnection()
                    order.append("dataReceived returns")
            finally:
                inside.pop()

        def connectionLost(self, reason):
            assert not inside, f"connectionLost ran inside {inside}"
            order.append("lost")
            super().connectionLost(reason)

    factory = BuildingFactory(Peer)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        first, second = raw_client(port, endpoint), raw_client(port, endpoint)
        try:
            wait_for(lambda: len(factory.built) == 2, what="two connections")
            first.sendall(b"close the other")
            for protocol in factory.built:
                assert protocol.closed.wait(5)
            got = b""
            while chunk := second.recv(100):
                got += chunk
            assert got == b"from the other side"
        finally:
            first.close()
            second.close()
    assert order == ["dataReceived returns", "lost", "lost"]
    assert all([type(r) for r in p.reasons] == [ConnectionDone] for p in factory.built)


# -- the port's bookkeeping ----------------------------------------------------------------


def test_the_port_counts_caps_and_sweeps_loop_dispatched_connections():
    factory = BuildingFactory(Echo)
    endpoint = tcp_server()
    # The idle timeout is 10x the wait below: the first two must not be idle yet
    # when the third is checked, even if a loaded machine stalls this test a while.
    with endpoint.listen(factory, dispatch="loop", max_connections=2, idle_timeout=1.0) as port:
        socks = [raw_client(port, endpoint) for _ in range(3)]
        try:
            assert echoed(socks[0], b"a") == b"a"
            assert echoed(socks[1], b"b") == b"b"
            assert port.handler_count == 2 and port.stats.active == 2
            # The third waits in the backlog (accepting paused at the cap)...
            socks[2].sendall(b"c")
            gevent.sleep(0.1)  # the sleep is the check: it would be accepted by now
            assert len(factory.built) == 2
            # ...until the idle sweep closes the first two.
            for protocol in factory.built[:2]:
                assert protocol.closed.wait(5)
                assert isinstance(protocol.reasons[0], IdleTimeoutError)
            assert socks[2].recv(10) == b"c"
            assert port.stats.closed_idle >= 2
        finally:
            for sock in socks:
                sock.close()
    assert port.handler_count == 0


def test_stop_listening_from_inside_data_received_leaves_that_connection_to_end():
    class Stopper(Echo):
        def dataReceived(self, data):
            if data == b"stop":
                self.factory.port.stop_listening(timeout=5)
                self.transport.write(b"stopped")
                self.transport.loseConnection()
                return
            super().dataReceived(data)

    factory = BuildingFactory(Stopper)
    endpoint = tcp_server()
    port = factory.port = endpoint.listen(factory, dispatch="loop")
    sock = raw_client(port, endpoint)
    try:
        assert echoed(sock, b"hi") == b"hi"
        sock.sendall(b"stop")
        assert sock.recv(100) == b"stopped"
        assert factory.built[0].closed.wait(5)
        with pytest.raises(OSError):  # refused: the listener is closed
            socket.create_connection((LOOPBACK, port.get_host().port), timeout=2).close()
    finally:
        sock.close()
        port.stop_listening()


# -- what keeps the greenlet transport -------------------------------------------------------


def test_tls_and_proxy_header_connections_keep_the_greenlet_transport(tmp_path):
    from _tls_helpers import make_certs

    import greenpoint

    certs = make_certs(tmp_path)
    factory = BuildingFactory(Echo)
    description = f"ssl:0:interface={LOOPBACK}:privateKey={certs.server_pem}"
    with greenpoint.server_from_string(description).listen(factory, dispatch="loop") as port:
        client = greenpoint.client_from_string(port.client_description(trust_root=certs.ca_file))
        stream = client.open(5)
        try:
            stream.sendall(b"secret")
            assert stream.recv(100) == b"secret"
        finally:
            stream.close()
        assert factory.built[0].closed.wait(5)
    assert type(factory.built[0].transport) is Transport
