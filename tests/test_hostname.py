"""HostnameEndpoint: its configuration, and real races on loopback.

"example.test" resolves (through a static fake resolver) to ::1 and 127.0.0.1 ports
that are set up per test: listening, refusing (bound, not listening) or black-holed
(a listen(0) socket whose accept queue is already full drops further SYNs). Timing
assertions here have wide margins; exact timing is tested on the fake clock.
"""

from __future__ import annotations

import contextlib
import socket as stdsocket
import time
from socket import AF_INET, AF_INET6

import gevent
import pytest
from _wait_helpers import wait_until
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint import (
    ConnectInfo,
    ConnectTimeoutError,
    DescriptionError,
    DNSLookupError,
    HostnameEndpoint,
)
from greenpoint._checks import FieldError
from greenpoint._socket import connect_address
from greenpoint.errors import ConnectCancelledError, ConnectRefusedError
from greenpoint.testing import FakeResolver

pytestmark = pytest.mark.timeout(20)


# -- loopback places to connect to ----------------------------------------------


class Places:
    """Loopback sockets a test connects to; all closed at the end."""

    def __init__(self):
        self.sockets = []

    def _socket(self, family):
        sock = stdsocket.socket(family, stdsocket.SOCK_STREAM)
        self.sockets.append(sock)
        return sock

    def listening(self, host):
        """A listening socket; returns ``(listener, (host, port))``."""
        family = AF_INET6 if ":" in host else AF_INET
        sock = gsocket.socket(family, stdsocket.SOCK_STREAM)
        self.sockets.append(sock)
        sock.bind((host, 0))
        sock.listen(8)
        return sock, (host, sock.getsockname()[1])

    def refusing(self, host):
        """A port that refuses: bound (so nobody else takes it) but not listening."""
        family = AF_INET6 if ":" in host else AF_INET
        sock = self._socket(family)
        sock.bind((host, 0))
        return (host, sock.getsockname()[1])

    def black_hole(self, host):
        """A port whose full accept queue drops SYNs, so connect() hangs."""
        family = AF_INET6 if ":" in host else AF_INET
        server = self._socket(family)
        server.bind((host, 0))
        server.listen(0)
        address = server.getsockname()
        for _ in range(2):  # the first fills the queue; the second already hangs
            filler = self._socket(family)
            filler.setblocking(False)
            filler.connect_ex(address)
        return (host, address[1])

    def close(self):
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def places():
    places = Places()
    yield places
    places.close()


def endpoint(aaaa=(), a=(), **options):
    resolver = FakeResolver()
    resolver.add("example.test", AF_INET6, aaaa)
    resolver.add("example.test", AF_INET, a)
    return HostnameEndpoint("example.test", 9, resolver=resolver, **options)


def exchange(stream, listener):
    """Prove the connection is real: a byte each way through the listener."""
    server, _ = listener.accept()
    with contextlib.closing(server):
        stream.sendall(b"?")
        assert server.recv(1) == b"?"
        server.sendall(b"!")
        assert stream.recv(1) == b"!"
        return server.getpeername()


def timed(function, *args, **kwargs):
    start = time.monotonic()
    try:
        return function(*args, **kwargs), time.monotonic() - start
    except BaseException as exc:
        exc.elapsed = time.monotonic() - start
        raise


# -- races on loopback ------------------------------------------------------------


def test_black_holed_ipv6_falls_back_to_ipv4(places):
    listener, working = places.listening("127.0.0.1")
    ep = endpoint([places.black_hole("::1")], [working], attempt_delay=0.1)
    (stream, info), elapsed = timed(ep.open_with_info)
    with contextlib.closing(stream):
        assert stream.family == AF_INET
        exchange(stream, listener)
    assert 0.09 <= elapsed < 1.5
    assert isinstance(info, ConnectInfo)
    cancelled, winner = info.attempts
    assert winner.address.host == "127.0.0.1" and winner.error is None
    assert cancelled.address.host == "::1"
    assert isinstance(cancelled.error, ConnectCancelledError)


def test_refused_ipv6_falls_back_at_once(places):
    listener, working = places.listening("127.0.0.1")
    # A 10 s attempt delay: only an expedited fallback can be quick (a loaded machine
    # may stall a few seconds, never ten).
    ep = endpoint([places.refusing("::1")], [working], attempt_delay=10)
    (stream, info), elapsed = timed(ep.open_with_info)
    with contextlib.closing(stream):
        exchange(stream, listener)
    assert elapsed < 5
    refused, winner = info.attempts
    assert isinstance(refused.error, ConnectRefusedError)
    assert winner.started < 5


def test_working_ipv6_is_preferred(places):
    listener6, working6 = places.listening("::1")
    _, working4 = places.listening("127.0.0.1")
    stream = endpoint([working6], [working4]).open()
    with contextlib.closing(stream):
        assert stream.family == AF_INET6
        exchange(stream, listener6)


def test_all_refused_lists_each_address(places):
    ep = endpoint([places.refusing("::1")], [places.refusing("127.0.0.1")])
    with pytest.raises(ConnectRefusedError) as caught:
        ep.open()
    lines = str(caught.value).splitlines()
    assert lines[0] == "cannot connect to example.test:9: all 2 addresses failed"
    assert "[::1]:" in lines[1] and "Connection refused" in lines[1]
    assert "127.0.0.1:" in lines[2] and "Connection refused" in lines[2]
    assert [a.phase for a in caught.value.attempts] == ["connect", "connect"]


def test_all_black_holed_times_out(places):
    ep = endpoint([places.black_hole("::1")], [places.black_hole("127.0.0.1")], timeout=0.3)
    with pytest.raises(ConnectTimeoutError) as caught:
        timed(ep.open)
    assert 0.29 <= caught.value.elapsed < 2.0
    assert [a.address.host for a in caught.value.attempts] == ["::1", "127.0.0.1"]
    assert "timed out after 0.3 s connecting to example.test:9" in str(caught.value)


def test_open_timeout_overrides_the_endpoints(places):
    ep = endpoint([places.black_hole("::1")], timeout=30)
    with pytest.raises(ConnectTimeoutError) as caught:
        timed(ep.open, timeout=0.2)
    assert caught.value.elapsed < 2.0


def test_gevent_timeout_stops_the_race(places):
    ep = endpoint([places.black_hole("::1")], [places.black_hole("127.0.0.1")])
    with pytest.raises(gevent.Timeout) as caught, gevent.Timeout(0.4):
        timed(ep.open)
    assert caught.value.elapsed < 2.0


def test_kill_stops_the_race(places):
    started = []

    def recording_connect(family, sockaddr, **kwargs):
        started.append(sockaddr[0])
        return connect_address(family, sockaddr, **kwargs)

    ep = endpoint(
        [places.black_hole("::1")], [places.black_hole("127.0.0.1")], connector=recording_connect
    )
    racer = gevent.spawn(ep.open)
    # Killed while both attempts run: the second starts after the 250 ms delay.
    wait_until(lambda: len(started) == 2, what="both attempts to start")
    racer.kill(timeout=2)
    assert racer.dead
    assert isinstance(racer.value, gevent.GreenletExit)
    assert started == ["::1", "127.0.0.1"]


def test_kill_during_resolution(places):
    resolving = Event()

    def slow_resolver(host, port, family=0, type=0, proto=0, flags=0):
        resolving.set()
        gevent.sleep(30)

    racer = gevent.spawn(HostnameEndpoint("example.test", 9, resolver=slow_resolver).open)
    assert resolving.wait(5)
    racer.kill(timeout=2)
    assert racer.dead


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]"])
def test_ip_literals_connect_without_the_resolver(places, host):
    def no_resolver(*args, **kwargs):
        raise AssertionError("the resolver must not be called for an IP literal")

    listener, (_, port) = places.listening(host.strip("[]"))
    stream, info = HostnameEndpoint(host, port, resolver=no_resolver).open_with_info()
    with contextlib.closing(stream):
        exchange(stream, listener)
    assert info.resolutions == ()
    assert str(info.winner.host) == host.strip("[]")


def test_default_resolver_connects_to_localhost(places):
    # Only IPv4 listens: if localhost also resolves to ::1, that attempt is refused and
    # IPv4 follows at once (agronholm/anyio#69).
    listener, (_, port) = places.listening("127.0.0.1")
    (stream, info), elapsed = timed(
        HostnameEndpoint("localhost", port, attempt_delay=10).open_with_info
    )
    with contextlib.closing(stream):
        exchange(stream, listener)
    assert info.winner.host == "127.0.0.1"
    assert elapsed < 5  # at once, not after the 10 s attempt delay


def test_unknown_name_is_a_dns_lookup_error_with_the_resolvers_message():
    with pytest.raises(DNSLookupError) as caught:
        HostnameEndpoint("nowhere.test", 80, resolver=FakeResolver()).open()
    assert "Name or service not known" in str(caught.value)


def test_bind_address_is_used_for_ipv4(places):
    listener, working = places.listening("127.0.0.1")
    stream = endpoint(a=[working], bind_address="127.0.0.2").open()
    with contextlib.closing(stream):
        assert stream.getsockname()[0] == "127.0.0.2"
        assert exchange(stream, listener)[0] == "127.0.0.2"


def test_ipv4_bind_address_leaves_ipv6_unbound(places):
    listener, working = places.listening("::1")
    stream = endpoint([working], bind_address="127.0.0.2").open()
    with contextlib.closing(stream):
        assert stream.family == AF_INET6
        exchange(stream, listener)


def test_bind_address_by_family(places):
    listener, working = places.listening("127.0.0.1")
    ep = endpoint([places.refusing("::1")], [working], bind_address={AF_INET: "127.0.0.3"})
    stream = ep.open()
    with contextlib.closing(stream):
        assert stream.getsockname()[0] == "127.0.0.3"
        exchange(stream, listener)


# -- the endpoint as a configuration object --------------------------------------


@pytest.mark.parametrize(
    ("ep", "text"),
    [
        (HostnameEndpoint("example.com", 80), "tcp:example.com:80"),
        (HostnameEndpoint(b"example.com", 80, timeout=2.5), "tcp:example.com:80:timeout=2.5"),
        (
            HostnameEndpoint("example.com", 80, attempt_delay=0.1),
            "tcp:example.com:80:attemptDelay=0.1",
        ),
        (
            HostnameEndpoint("example.com", 80, bind_address=("192.0.2.1", 0)),
            "tcp:example.com:80:bindAddress=192.0.2.1",
        ),
        (
            HostnameEndpoint("example.com", 80, bind_address="::1"),
            "tcp:example.com:80:bindAddress=[::1]",
        ),
        (
            HostnameEndpoint(
                "example.com", 80, bind_address={AF_INET6: "::1", AF_INET: "192.0.2.1"}
            ),
            "tcp:example.com:80:bindAddress=192.0.2.1,\\:\\:1",
        ),
        (HostnameEndpoint("bücher.example", 443, timeout=5), "tcp:bücher.example:443:timeout=5"),
    ],
)
def test_description(ep, text):
    assert str(ep) == text


def test_equal_endpoints_compare_equal():
    assert HostnameEndpoint("h.test", 1, bind_address="192.0.2.1") == HostnameEndpoint(
        "h.test", 1, bind_address=("192.0.2.1", 0)
    )
    assert HostnameEndpoint("h.test", 1) != HostnameEndpoint("h.test", 2)
    assert HostnameEndpoint("h.test", 1, timeout=30.0) == HostnameEndpoint("h.test", 1)


@pytest.mark.parametrize(
    ("options", "parameter", "message"),
    [
        ({"host": "exa mple.com"}, "host", "invalid host name"),
        ({"host": ""}, "host", "empty"),
        ({"host": "[nope]"}, "host", "brackets"),
        ({"host": "café.com".encode()}, "host", "must be ASCII"),
        ({"host": 42}, "host", "must be a str"),
        ({"port": 0}, "port", "port must be an int from 1 to 65535, not 0"),
        ({"port": "80"}, "port", "port must be an int from 1 to 65535, not str '80'"),
        ({"timeout": -1}, "timeout", "zero or more"),
        ({"attempt_delay": float("nan")}, "attempt_delay", "finite"),
        ({"bind_address": "localhost"}, "bind_address", "must be an IP address"),
    ],
)
def test_bad_configuration_is_refused_when_made(options, parameter, message):
    # A plain ValueError (TypeError for a wrong type) naming the Python argument; a
    # DescriptionError only ever comes from a description.
    arguments = {"host": "example.com", "port": 80, **options}
    with pytest.raises(FieldError, match=message) as caught:
        HostnameEndpoint(**arguments)
    assert caught.value.field == parameter
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, DescriptionError)
