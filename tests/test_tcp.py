"""TCP endpoints: connecting, listening, errors, and their descriptions."""

from __future__ import annotations

import contextlib
import errno
import functools
import socket as stdsocket
import subprocess
import sys
import time

import gevent
import pytest
from _net_helpers import black_hole, echo_once, read_all
from _wait_helpers import wait_until
from gevent import socket as gsocket
from hypothesis import given, settings
from hypothesis import strategies as st

import greenpoint
from greenpoint import (
    ConnectError,
    ConnectTimeoutError,
    DescriptionError,
    DNSLookupError,
    HostnameEndpoint,
    IPv4Address,
    IPv6Address,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    _happy_eyeballs,
    client_from_string,
    server_from_string,
)
from greenpoint._socket import connect_address
from greenpoint.endpoints import _tcp_endpoints, tcp
from greenpoint.errors import ConnectRefusedError, ListenError

pytestmark = pytest.mark.timeout(20)

LOOPBACKS = [
    pytest.param(stdsocket.AF_INET, "127.0.0.1", TCP4ClientEndpoint, TCP4ServerEndpoint, id="v4"),
    pytest.param(stdsocket.AF_INET6, "::1", TCP6ClientEndpoint, TCP6ServerEndpoint, id="v6"),
]


# -- helpers -------------------------------------------------------------------


def closed_port(family: int, host: str) -> int:
    """A port on ``host`` with nothing listening (it was free a moment ago)."""
    with stdsocket.socket(family, stdsocket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class FakeResolver:
    """getaddrinfo's signature; answers from a table and records each question."""

    def __init__(self, answers=None, error=None, delay=0.0):
        self.answers = answers or []
        self.error = error
        self.delay = delay
        self.calls = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        self.calls.append((host, port, family, type))
        if self.delay:
            gevent.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return [
            (fam, stdsocket.SOCK_STREAM, 6, "", sockaddr)
            for fam, sockaddr in self.answers
            if family in (0, fam)
        ]


# -- connecting and serving over loopback -------------------------------------------


@pytest.mark.parametrize(("family", "host", "client_cls", "server_cls"), LOOPBACKS)
def test_round_trip_over_loopback(family, host, client_cls, server_cls):
    peers = []

    def handler(stream, address):
        peers.append(address)
        echo_once(stream, address)

    with server_cls(0, interface=host).serve(handler) as port:
        bound = port.get_host()
        assert bound.host == host and bound.port != 0
        with client_cls(host, bound.port).open(timeout=5) as sock:
            assert sock.family == family
            assert sock.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY)
            sock.sendall(b"round trip")
            assert read_all(sock) == b"round trip"
            local_port = sock.getsockname()[1]
    address_type = IPv4Address if family == stdsocket.AF_INET else IPv6Address
    assert peers == [address_type(host, local_port)]


def test_listener_has_reuseaddr_and_the_requested_backlog_binds():
    listener = TCP4ServerEndpoint(0, backlog=5, interface="127.0.0.1").bind()
    with listener:
        assert listener.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR)
        assert listener.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_ACCEPTCONN)


def test_dual_stack_listener_sees_ipv4_clients_as_ipv4_addresses():
    peers = []

    def handler(stream, address):
        peers.append(address)
        stream.sendall(b"hi")

    with TCP6ServerEndpoint(0).serve(handler) as port:
        assert port.get_host() == IPv6Address("::", port.get_host().port)
        assert not port.listener.getsockopt(stdsocket.IPPROTO_IPV6, stdsocket.IPV6_V6ONLY)
        with TCP4ClientEndpoint("127.0.0.1", port.get_host().port).open(timeout=5) as sock:
            assert read_all(sock) == b"hi"
            assert peers == [IPv4Address("127.0.0.1", sock.getsockname()[1])]


def test_ipv6only_listener_refuses_ipv4_clients():
    with TCP6ServerEndpoint(0, ipv6only=True).serve(echo_once) as port:
        assert port.listener.getsockopt(stdsocket.IPPROTO_IPV6, stdsocket.IPV6_V6ONLY)
        with pytest.raises(ConnectRefusedError):
            TCP4ClientEndpoint("127.0.0.1", port.get_host().port).open(timeout=5)


@pytest.mark.parametrize(("family", "host", "client_cls", "server_cls"), LOOPBACKS)
def test_busy_port_raises_listen_error_naming_address_and_errno(
    family, host, client_cls, server_cls
):
    with server_cls(0, interface=host).bind() as first:
        taken = first.getsockname()[1]
        with pytest.raises(ListenError) as info:
            server_cls(taken, interface=host).bind()
    assert info.value.errno == errno.EADDRINUSE
    assert str(taken) in str(info.value) and host in str(info.value)
    assert "Address already in use" in str(info.value)
    assert isinstance(info.value, OSError)


@pytest.mark.parametrize(("family", "host", "client_cls", "server_cls"), LOOPBACKS)
def test_reuse_port_lets_two_listeners_share_a_port(family, host, client_cls, server_cls):
    with server_cls(0, interface=host, reuse_port=True).bind() as first:
        taken = first.getsockname()[1]
        with server_cls(taken, interface=host, reuse_port=True).bind() as second:
            assert second.getsockname()[1] == taken
            assert second.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEPORT)
        with pytest.raises(ListenError):
            server_cls(taken, interface=host).bind()  # without reusePort: busy


@pytest.mark.parametrize(("family", "host", "client_cls", "server_cls"), LOOPBACKS)
def test_refused_connect_names_the_address(family, host, client_cls, server_cls):
    port_number = closed_port(family, host)
    with pytest.raises(ConnectRefusedError) as info:
        client_cls(host, port_number).open(timeout=5)
    assert isinstance(info.value, ConnectionRefusedError)
    assert isinstance(info.value, ConnectError)
    assert f"{host}]:{port_number}" in str(info.value) or f"{host}:{port_number}" in str(info.value)


@pytest.mark.parametrize(("family", "host", "client_cls", "server_cls"), LOOPBACKS)
def test_connect_to_a_black_hole_times_out_within_the_timeout(family, host, client_cls, server_cls):
    with black_hole(family, host) as port_number:
        began = time.monotonic()
        with pytest.raises(ConnectTimeoutError) as info:
            client_cls(host, port_number, timeout=0.3).open()
        took = time.monotonic() - began
    assert 0.25 <= took < 2.0
    assert isinstance(info.value, TimeoutError)
    assert str(port_number) in str(info.value) and host in str(info.value)


# Run in a fresh process: the loop must not have turned since the hub was made.
_STALE_LOOP_CONNECT = """
import sys, time, gevent
from greenpoint import TCP4ClientEndpoint
from greenpoint.errors import ConnectTimeoutError
gevent.get_hub()  # the loop's clock is read here...
time.sleep(0.6)  # ...and left behind: the process computes without yielding
began = time.monotonic()
try:
    TCP4ClientEndpoint("127.0.0.1", int(sys.argv[1]), timeout=0.3).open()
except ConnectTimeoutError:
    print(time.monotonic() - began)
"""


def test_connect_timeout_counts_from_the_connect_even_if_the_loop_was_blocked():
    with black_hole(stdsocket.AF_INET, "127.0.0.1") as port_number:
        child = subprocess.run(
            [sys.executable, "-c", _STALE_LOOP_CONNECT, str(port_number)],
            capture_output=True,
            text=True,
            timeout=15,
        )
    assert child.returncode == 0, child.stderr
    # Before: the timer counted from the loop's last reading, and fired at once.
    assert 0.25 <= float(child.stdout) < 2.0


def test_open_timeout_overrides_the_endpoints_timeout():
    with black_hole(stdsocket.AF_INET, "127.0.0.1") as port_number:
        began = time.monotonic()
        with pytest.raises(ConnectTimeoutError):
            TCP4ClientEndpoint("127.0.0.1", port_number, timeout=30).open(timeout=0.2)
        assert time.monotonic() - began < 2.0


@pytest.fixture
def attempts(monkeypatch):
    """The sockaddrs the endpoints' connects were started for, in order."""
    started = []

    def recording_connect(family, sockaddr, **kwargs):
        started.append(sockaddr[1])
        return connect_address(family, sockaddr, **kwargs)

    monkeypatch.setattr(_happy_eyeballs, "connect_address", recording_connect)
    return started


@pytest.mark.parametrize("how", ["gevent.Timeout", "kill"])
def test_cancelled_open_closes_its_socket(how, attempts):
    # The autouse fixture fails the test if the connecting socket is left open.
    with black_hole(stdsocket.AF_INET6, "::1") as port_number:
        endpoint = TCP6ClientEndpoint("::1", port_number)
        if how == "gevent.Timeout":
            with pytest.raises(gevent.Timeout), gevent.Timeout(0.2):
                endpoint.open()
        else:
            opener = gevent.spawn(endpoint.open)
            wait_until(lambda: attempts, what="the connect to start")
            opener.kill(block=True, timeout=2)
            assert opener.dead and isinstance(opener.value, gevent.GreenletExit)
        assert attempts == [port_number]  # cancelled while it connected


@pytest.mark.parametrize("how", ["gevent.Timeout", "kill"])
def test_cancelled_open_of_a_name_closes_every_attempt(how, attempts):
    with (
        black_hole(stdsocket.AF_INET6, "::1") as first,
        black_hole(stdsocket.AF_INET6, "::1") as second,
    ):
        resolver = FakeResolver(
            [
                (stdsocket.AF_INET6, ("::1", first, 0, 0)),
                (stdsocket.AF_INET6, ("::1", second, 0, 0)),
            ]
        )
        endpoint = TCP6ClientEndpoint("holes.test", 80, resolver=resolver)
        # Cancelled while both attempts run (the second starts after 0.25 s): a 2 s
        # deadline leaves a loaded machine time to start it; kill waits for it.
        if how == "gevent.Timeout":
            with pytest.raises(gevent.Timeout), gevent.Timeout(2):
                endpoint.open()
        else:
            opener = gevent.spawn(endpoint.open)
            wait_until(lambda: len(attempts) == 2, what="both attempts to start")
            opener.kill(block=True, timeout=2)
            assert opener.dead and isinstance(opener.value, gevent.GreenletExit)
        assert attempts == [first, second]


def test_bind_address_sets_the_local_address_and_port():
    peers = []
    with TCP4ServerEndpoint(0, interface="127.0.0.1").serve(
        lambda stream, address: peers.append(address)
    ) as port:
        local_port = closed_port(stdsocket.AF_INET, "127.0.0.1")
        endpoint = TCP4ClientEndpoint(
            "127.0.0.1", port.get_host().port, bind_address=("127.0.0.1", local_port)
        )
        with endpoint.open(timeout=5) as sock:
            assert sock.getsockname() == ("127.0.0.1", local_port)
            assert read_all(sock) == b""
    assert peers == [IPv4Address("127.0.0.1", local_port)]


def test_bind_address_host_alone_means_any_port():
    endpoint = TCP6ClientEndpoint("::1", 80, bind_address="::1")
    assert endpoint.bind_address.for_family(stdsocket.AF_INET6) == ("::1", 0)
    assert endpoint == TCP6ClientEndpoint("::1", 80, bind_address=("::1", 0))


# -- literals and names --------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "family"),
    [
        ("127.0.0.1", stdsocket.AF_INET),
        ("::1", stdsocket.AF_INET6),
        ("fe80::1%eth0", stdsocket.AF_INET6),
        ("::ffff:127.0.0.1", stdsocket.AF_INET6),
        ("localhost", None),
        ("example.com", None),
        ("127.1", None),  # inet_aton would take it; a resolver may too; not a literal
        ("127.0.0.1%eth0", None),
    ],
)
def test_literal_family(host, family):
    assert tcp.literal_family(host) == family


def test_ip_literals_never_touch_the_resolver(monkeypatch):
    def no_resolver(*args, **kwargs):
        raise AssertionError(f"resolver called with {args}")

    monkeypatch.setattr(gsocket, "getaddrinfo", no_resolver)
    monkeypatch.setattr(stdsocket, "getaddrinfo", no_resolver)
    for server_cls, client_cls, host in [
        (TCP4ServerEndpoint, TCP4ClientEndpoint, "127.0.0.1"),
        (TCP6ServerEndpoint, TCP6ClientEndpoint, "::1"),
        (TCP6ServerEndpoint, TCP6ClientEndpoint, "::1%lo"),
    ]:
        port = server_cls(0, interface=host.partition("%")[0]).serve(echo_once)
        with port, client_cls(host, port.get_host().port).open(timeout=5) as sock:
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"


def test_a_name_resolves_for_the_endpoints_family_only():
    with TCP6ServerEndpoint(0, interface="::1").serve(echo_once) as port:
        number = port.get_host().port
        resolver = FakeResolver([(stdsocket.AF_INET6, ("::1", number, 0, 0))])
        endpoint = TCP6ClientEndpoint("server.test", number, resolver=resolver)
        with endpoint.open(timeout=5) as sock:
            sock.sendall(b"v6")
            assert sock.recv(2) == b"v6"
    assert [(host, port_, family) for host, port_, family, _ in resolver.calls] == [
        ("server.test", number, stdsocket.AF_INET6)
    ]


def test_the_resolver_is_a_seam_outside_equality_and_description():
    resolver = FakeResolver()
    endpoint = TCP4ClientEndpoint("server.test", 80, resolver=resolver)
    assert endpoint == TCP4ClientEndpoint("server.test", 80)
    assert hash(endpoint) == hash(TCP4ClientEndpoint("server.test", 80))
    assert str(endpoint) == "tcp4:server.test:80"
    assert "resolver" not in repr(endpoint)
    with pytest.raises(TypeError):
        TCP4ClientEndpoint("server.test", 80, 30, None, resolver)  # keyword only


def test_localhost_from_etc_hosts_over_ipv4():
    port = TCP4ServerEndpoint(0, interface="127.0.0.1").serve(echo_once)
    with port, TCP4ClientEndpoint("localhost", port.get_host().port).open(timeout=5) as sock:
        sock.sendall(b"name")
        assert sock.recv(4) == b"name"


def test_a_name_tries_its_addresses_in_order_and_ignores_other_families(monkeypatch):
    # The 250 ms attempt delay raised to 10 s: "at once" is then told from "after the
    # delay" even on a machine that stalls for seconds.
    monkeypatch.setattr(
        _tcp_endpoints,
        "open_tcp_connection",
        functools.partial(_happy_eyeballs.open_tcp_connection, attempt_delay=10),
    )
    refused = closed_port(stdsocket.AF_INET, "127.0.0.1")
    with TCP4ServerEndpoint(0, interface="127.0.0.1").serve(echo_once) as port:
        resolver = FakeResolver(
            [
                (stdsocket.AF_INET, ("127.0.0.1", refused)),
                (stdsocket.AF_INET6, ("::1", refused, 0, 0)),  # other family: ignored
                (stdsocket.AF_INET, ("127.0.0.1", port.get_host().port)),
            ]
        )
        endpoint = TCP4ClientEndpoint("multi.test", 80, resolver=resolver)
        began = time.monotonic()
        with endpoint.open(timeout=5) as sock:
            # A refusal starts the next attempt at once (RFC 8305 §5), not after the delay.
            assert time.monotonic() - began < 5
            assert sock.getpeername() == ("127.0.0.1", port.get_host().port)
            assert sock.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY)


def test_a_black_holed_address_does_not_hold_up_the_next_one():
    with (
        black_hole(stdsocket.AF_INET, "127.0.0.1") as hole,
        TCP4ServerEndpoint(0, interface="127.0.0.1").serve(echo_once) as port,
    ):
        resolver = FakeResolver(
            [
                (stdsocket.AF_INET, ("127.0.0.1", hole)),
                (stdsocket.AF_INET, ("127.0.0.1", port.get_host().port)),
            ]
        )
        began = time.monotonic()
        with TCP4ClientEndpoint("hole.test", 80, resolver=resolver).open(timeout=5) as sock:
            took = time.monotonic() - began
            assert sock.getpeername() == ("127.0.0.1", port.get_host().port)
    assert 0.2 <= took < 4  # the attempt delay (0.25 s), not the 5 s timeout


def test_all_refused_lists_every_address():
    first = closed_port(stdsocket.AF_INET, "127.0.0.1")
    second = closed_port(stdsocket.AF_INET, "127.0.0.1")
    resolver = FakeResolver(
        [(stdsocket.AF_INET, ("127.0.0.1", first)), (stdsocket.AF_INET, ("127.0.0.1", second))]
    )
    with pytest.raises(ConnectRefusedError) as info:
        TCP4ClientEndpoint("two.test", 80, resolver=resolver).open(timeout=5)
    error = info.value
    assert [attempt.address for attempt in error.attempts] == [
        IPv4Address("127.0.0.1", first),
        IPv4Address("127.0.0.1", second),
    ]
    assert all(isinstance(a.error, ConnectRefusedError) for a in error.attempts)
    text = str(error)
    assert "two.test:80" in text and f"127.0.0.1:{first}" in text and f":{second}" in text


def test_one_deadline_covers_all_attempts():
    # Eight black holes, a new attempt every 250 ms: with a deadline per address the
    # open would try all eight and take over 2 s; one 0.5 s deadline stops it after
    # two or three, a difference a loaded machine does not blur.
    with contextlib.ExitStack() as stack:
        holes = [stack.enter_context(black_hole(stdsocket.AF_INET, "127.0.0.1")) for _ in range(8)]
        resolver = FakeResolver([(stdsocket.AF_INET, ("127.0.0.1", hole)) for hole in holes])
        endpoint = TCP4ClientEndpoint("slow.test", 80, timeout=0.5, resolver=resolver)
        began = time.monotonic()
        with pytest.raises(ConnectTimeoutError) as info:
            endpoint.open()
        took = time.monotonic() - began
    assert 0.45 <= took < 2
    assert "slow.test:80" in str(info.value)
    tried = [attempt.address for attempt in info.value.attempts]
    assert 1 <= len(tried) < len(holes)
    assert tried == [IPv4Address("127.0.0.1", hole) for hole in holes[: len(tried)]]


def test_a_failed_lookup_keeps_the_resolvers_message():
    resolver = FakeResolver(error=stdsocket.gaierror(stdsocket.EAI_NONAME, "Name unknown"))
    with pytest.raises(DNSLookupError) as info:
        TCP6ClientEndpoint("nowhere.test", 80, resolver=resolver).open(timeout=5)
    assert "nowhere.test" in str(info.value) and "Name unknown" in str(info.value)
    (attempt,) = info.value.attempts
    assert attempt.phase == "resolve" and attempt.address.record_type == "AAAA"


def test_a_name_without_an_address_of_the_family():
    resolver = FakeResolver([(stdsocket.AF_INET, ("127.0.0.1", 80))])
    with pytest.raises(DNSLookupError, match="no AAAA records for 'v4only.test'"):
        TCP6ClientEndpoint("v4only.test", 80, resolver=resolver).open(timeout=5)


def test_the_deadline_covers_resolution():
    resolver = FakeResolver([(stdsocket.AF_INET, ("127.0.0.1", 80))], delay=10)
    began = time.monotonic()
    with pytest.raises(ConnectTimeoutError) as info:
        TCP4ClientEndpoint("stuck.test", 80, timeout=0.2, resolver=resolver).open()
    assert time.monotonic() - began < 2.0
    assert "resolving 'stuck.test'" in str(info.value)
    assert info.value.attempts[0].phase == "resolve"


def test_a_bind_port_alone_applies_to_a_name():
    with TCP4ServerEndpoint(0, interface="127.0.0.1").serve(echo_once) as port:
        local = closed_port(stdsocket.AF_INET, "127.0.0.1")
        resolver = FakeResolver([(stdsocket.AF_INET, ("127.0.0.1", port.get_host().port))])
        endpoint = TCP4ClientEndpoint("bound.test", 80, bind_address=("", local), resolver=resolver)
        with endpoint.open(timeout=5) as sock:
            assert sock.getsockname() == ("127.0.0.1", local)


# -- constructing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: TCP4ClientEndpoint("::1", 80), "host"),
        (lambda: TCP6ClientEndpoint("127.0.0.1", 80), "host"),
        (lambda: TCP4ClientEndpoint("", 80), "host"),
        (lambda: TCP4ClientEndpoint("127.0.0.1", 0), "port"),
        (lambda: TCP4ClientEndpoint("127.0.0.1", 70000), "port"),
        (lambda: TCP4ClientEndpoint("127.0.0.1", "80"), "port"),
        (lambda: TCP4ClientEndpoint("127.0.0.1", 80, timeout=0), "timeout"),
        (lambda: TCP4ClientEndpoint("127.0.0.1", 80, timeout=-1), "timeout"),
        (lambda: TCP4ClientEndpoint("127.0.0.1", 80, bind_address="::1"), "bind_address"),
        (lambda: TCP4ClientEndpoint("127.0.0.1", 80, bind_address="host.test"), "bind_address"),
        (lambda: TCP4ClientEndpoint("127.0.0.1", 80, bind_address=("", 70000)), "bind_address"),
        (lambda: TCP4ServerEndpoint(70000), "port"),
        (lambda: TCP4ServerEndpoint(80, backlog=-1), "backlog"),
        (lambda: TCP4ServerEndpoint(80, interface="::1"), "interface"),
        (lambda: TCP6ServerEndpoint(80, interface="127.0.0.1"), "interface"),
        (lambda: TCP6ServerEndpoint(80, interface="localhost"), "interface"),
    ],
)
def test_bad_constructor_arguments_raise_value_error(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_endpoints_are_equal_by_value_and_family():
    assert TCP4ClientEndpoint("127.0.0.1", 80) == TCP4ClientEndpoint("127.0.0.1", 80, 30)
    assert TCP4ClientEndpoint("h.test", 80) != TCP6ClientEndpoint("h.test", 80)
    assert TCP4ServerEndpoint(80) == TCP4ServerEndpoint(80, 50, "")
    assert len({TCP4ServerEndpoint(80), TCP4ServerEndpoint(80)}) == 1


# -- descriptions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:127.0.0.1:80", TCP4ClientEndpoint("127.0.0.1", 80)),
        ("TCP:[::1]:443", TCP6ClientEndpoint("::1", 443)),
        ("tcp:\\:\\:1:443", TCP6ClientEndpoint("::1", 443)),
        ("tcp:host=127.0.0.1:port=80", TCP4ClientEndpoint("127.0.0.1", 80)),
        ("tcp:127.0.0.1:port=80:timeout=2.5", TCP4ClientEndpoint("127.0.0.1", 80, 2.5)),
        (
            "tcp:127.0.0.1:80:bindAddress=127.0.0.2",
            TCP4ClientEndpoint("127.0.0.1", 80, bind_address=("127.0.0.2", 0)),
        ),
        (
            "tcp:[::1]:80:bindAddress=[::1]:bindPort=4000",
            TCP6ClientEndpoint("::1", 80, bind_address=("::1", 4000)),
        ),
        ("tcp:[fe80::1%eth0]:80", TCP6ClientEndpoint("fe80::1%eth0", 80)),
        ("tcp4:example.test:80", TCP4ClientEndpoint("example.test", 80)),
        ("tcp6:example.test:80:timeout=1", TCP6ClientEndpoint("example.test", 80, 1)),
        (b"tcp6:[::1]:80", TCP6ClientEndpoint("::1", 80)),
    ],
)
def test_client_descriptions(description, expected):
    endpoint = client_from_string(description)
    assert endpoint == expected
    assert client_from_string(str(endpoint)) == endpoint


def test_tcp_client_with_a_name_goes_through_endpoint_for_name():
    endpoint = client_from_string("tcp:example.test:80:timeout=3")
    assert endpoint == tcp._endpoint_for_name("example.test", 80, 3.0, None)
    assert endpoint == HostnameEndpoint("example.test", 80, timeout=3)
    assert client_from_string(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:example.test:80", HostnameEndpoint("example.test", 80)),
        (
            "tcp:example.test:80:attemptDelay=0.1",
            HostnameEndpoint("example.test", 80, attempt_delay=0.1),
        ),
        (
            "tcp:example.test:80:bindAddress=127.0.0.2",
            HostnameEndpoint("example.test", 80, bind_address="127.0.0.2"),
        ),
        (
            "tcp:example.test:80:bindAddress=[127.0.0.2,::1]",
            HostnameEndpoint("example.test", 80, bind_address="127.0.0.2,::1"),
        ),
        (
            "tcp:example.test:80:bindAddress=127.0.0.2,\\:\\:1:bindPort=4000",
            HostnameEndpoint(
                "example.test",
                80,
                bind_address={
                    stdsocket.AF_INET: ("127.0.0.2", 4000),
                    stdsocket.AF_INET6: ("::1", 4000),
                },
            ),
        ),
        (
            "tcp:example.test:80:bindPort=4000",
            HostnameEndpoint(
                "example.test",
                80,
                bind_address={
                    stdsocket.AF_INET: ("0.0.0.0", 4000),
                    stdsocket.AF_INET6: ("::", 4000),
                },
            ),
        ),
        # An IP literal has one address: nothing to race, attemptDelay has no effect.
        ("tcp:127.0.0.1:80:attemptDelay=1", TCP4ClientEndpoint("127.0.0.1", 80)),
        # One address per family: a literal uses the one of its own family.
        (
            "tcp:[::1]:80:bindAddress=[127.0.0.2,::1]",
            TCP6ClientEndpoint("::1", 80, bind_address=("::1", 0)),
        ),
        (
            "tcp:127.0.0.1:80:bindAddress=[127.0.0.2,::1]:bindPort=9",
            TCP4ClientEndpoint("127.0.0.1", 80, bind_address=("127.0.0.2", 9)),
        ),
        ("tcp4:example.test:80", TCP4ClientEndpoint("example.test", 80)),
    ],
)
def test_tcp_client_names_race_both_families(description, expected):
    endpoint = client_from_string(description)
    assert endpoint == expected and type(endpoint) is type(expected)
    assert client_from_string(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:8080", TCP4ServerEndpoint(8080)),
        ("tcp:port=0:interface=127.0.0.1:backlog=5", TCP4ServerEndpoint(0, 5, "127.0.0.1")),
        ("tcp:80:interface=[::1]", TCP6ServerEndpoint(80, interface="::1")),
        ("tcp4:80:reusePort=1", TCP4ServerEndpoint(80, reuse_port=True)),
        ("tcp6:80", TCP6ServerEndpoint(80)),
        ("tcp6:80:interface=[::1]", TCP6ServerEndpoint(80, interface="::1")),
        ("tcp6:80:interface=\\:\\:1", TCP6ServerEndpoint(80, interface="::1")),
        (
            "tcp6:80:ipv6only=yes:reusePort=true",
            TCP6ServerEndpoint(80, ipv6only=True, reuse_port=True),
        ),
        (b"TCP6:0:backlog=1", TCP6ServerEndpoint(0, backlog=1)),
    ],
)
def test_server_descriptions(description, expected):
    endpoint = server_from_string(description)
    assert endpoint == expected
    assert server_from_string(str(endpoint)) == endpoint


def test_str_gives_only_non_default_keys():
    assert str(TCP4ClientEndpoint("127.0.0.1", 80)) == "tcp4:127.0.0.1:80"
    assert str(TCP6ClientEndpoint("::1", 80, 2.5)) == "tcp6:[::1]:80:timeout=2.5"
    assert str(TCP4ServerEndpoint(8080)) == "tcp4:8080"
    assert str(TCP6ServerEndpoint(0, ipv6only=True)) == "tcp6:0:ipv6only=1"


CLIENT_ERRORS = [
    ("tcp:127.0.0.1:70000", "port", None),
    ("tcp:127.0.0.1:http", "port", None),
    ("tcp:127.0.0.1:0", "port", None),
    ("tcp:127.0.0.1", "port", None),
    ("tcp:127.0.0.1:80:timeout=soon", "timeout", None),
    ("tcp:127.0.0.1:80:timeout=-1", "timeout", None),
    ("tcp:127.0.0.1:80:timeout=0", "timeout", None),
    ("tcp:127.0.0.1:80:bindAddress=somewhere", "bindAddress", None),
    ("tcp:127.0.0.1:80:bindAddress=[::1]", "bindAddress", None),
    ("tcp:127.0.0.1:80:bindPort=70000", "bindPort", None),
    ("tcp:127.0.0.1:80:timout=1", "timout", "timeout"),
    ("tcp:example.test:80:timeout=0", "timeout", None),
    ("tcp:example.test:80:attemptDelay=soon", "attemptDelay", None),
    ("tcp:example.test:80:attemptdelay=1", "attemptdelay", "attemptDelay"),
    ("tcp:example.test:80:bindAddress=somewhere", "bindAddress", None),
    ("tcp:example.test:80:bindAddress=127.0.0.1,127.0.0.2", "bindAddress", None),
    ("tcp:example.test:80:bindAddress=127.0.0.1,", "bindAddress", None),
    ("tcp:127.0.0.1:80:bindAddress=127.0.0.2,127.0.0.3", "bindAddress", None),
    ("tcp4:example.test:80:bindAddress=[127.0.0.2,::1]", "bindAddress", None),
    ("tcp4:example.test:80:attemptDelay=1", "attemptDelay", None),
    ("tcp:127.0.0.1:80:bindaddress=127.0.0.1", "bindaddress", "bindAddress"),
    ("tcp4:[::1]:80", "host", None),
    ("tcp4:127.0.0.1:99999", "port", None),
    ("tcp6:127.0.0.1:80", "host", None),
    ("tcp6:[::1]:80:timeuot=1", "timeuot", "timeout"),
    ("tcp6:[::1]:port", "port", None),
]

SERVER_ERRORS = [
    ("tcp:70000", "port", None),
    ("tcp:eighty", "port", None),
    ("tcp:80:backlog=many", "backlog", None),
    ("tcp:80:interface=eth0", "interface", None),
    ("tcp:80:reusePort=maybe", "reusePort", None),
    ("tcp:80:reuseport=1", "reuseport", "reusePort"),
    ("tcp:80:ipv6only=1", "ipv6only", None),
    ("tcp:80:intreface=127.0.0.1", "intreface", "interface"),
    ("tcp4:80:interface=[::1]", "interface", None),
    ("tcp4:80:ipv6only=1", "ipv6only", "ipv6only"),
    ("tcp4:-1", "port", None),
    ("tcp6:70000", "port", None),
    ("tcp6:80:interface=127.0.0.1", "interface", None),
    ("tcp6:80:v6only=1", "v6only", "ipv6only"),
    ("tcp6:80:ipv6only=sometimes", "ipv6only", None),
    ("tcp6:80:backlog=-5", "backlog", None),
]


@pytest.mark.parametrize(("description", "parameter", "suggestion"), CLIENT_ERRORS)
def test_bad_client_descriptions(description, parameter, suggestion):
    with pytest.raises(DescriptionError) as info:
        client_from_string(description)
    assert info.value.parameter == parameter
    assert info.value.prefix == description.split(":")[0]
    assert parameter in str(info.value)
    if suggestion is not None:
        assert info.value.suggestion == suggestion
        assert suggestion in str(info.value)


@pytest.mark.parametrize(("description", "parameter", "suggestion"), SERVER_ERRORS)
def test_bad_server_descriptions(description, parameter, suggestion):
    with pytest.raises(DescriptionError) as info:
        server_from_string(description)
    assert info.value.parameter == parameter
    assert info.value.prefix == description.split(":")[0]
    assert parameter in str(info.value)
    if suggestion is not None and suggestion != parameter:
        assert info.value.suggestion == suggestion


hosts = st.one_of(
    st.ip_addresses().map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
)


@settings(max_examples=60, deadline=None)
@given(
    host=hosts,
    port=st.integers(1, 65535),
    timeout=st.one_of(st.integers(1, 600), st.floats(0.001, 600, allow_nan=False)),
    bind_port=st.integers(0, 65535),
    with_bind=st.booleans(),
    v6=st.booleans(),
)
def test_client_str_round_trips(host, port, timeout, bind_port, with_bind, v6):
    family = tcp.literal_family(host)
    cls = (
        TCP6ClientEndpoint
        if (family == stdsocket.AF_INET6 or (family is None and v6))
        else (TCP4ClientEndpoint)
    )
    bind = None
    if with_bind:
        bind = ("::1" if cls is TCP6ClientEndpoint else "127.0.0.1", bind_port)
    endpoint = cls(host, port, timeout, bind)
    assert client_from_string(str(endpoint)) == endpoint


@settings(max_examples=60, deadline=None)
@given(
    port=st.integers(0, 65535),
    backlog=st.integers(0, 4096),
    v6_interface=st.one_of(st.just("::"), st.ip_addresses(v=6).map(str)),
    v4_interface=st.one_of(st.just(""), st.ip_addresses(v=4).map(str)),
    flags=st.tuples(st.booleans(), st.booleans()),
)
def test_server_str_round_trips(port, backlog, v6_interface, v4_interface, flags):
    reuse_port, ipv6only = flags
    for endpoint in (
        TCP4ServerEndpoint(port, backlog, v4_interface, reuse_port),
        TCP6ServerEndpoint(port, backlog, v6_interface, ipv6only, reuse_port),
    ):
        assert server_from_string(str(endpoint)) == endpoint


def test_public_names():
    for name in [
        "ListeningPort",
        "TCP4ClientEndpoint",
        "TCP4ServerEndpoint",
        "TCP6ClientEndpoint",
        "TCP6ServerEndpoint",
    ]:
        assert name in greenpoint.__all__
        assert getattr(greenpoint, name) is not None


# -- one path to an IP literal ---------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "host"), [(stdsocket.AF_INET, "127.0.0.1"), (stdsocket.AF_INET6, "::1")]
)
def test_a_literal_fails_the_same_way_from_the_endpoint_and_from_the_racer(family, host):
    # Review 2.8: TCP4ClientEndpoint.open and open_tcp_connection reached a literal by
    # two paths, and only one of them said which attempts were made.
    from greenpoint._happy_eyeballs import open_tcp_connection

    if family == stdsocket.AF_INET6 and not gsocket.has_ipv6:
        pytest.skip("no IPv6 loopback: IPv6 not available")
    port = closed_port(family, host)
    cls = TCP4ClientEndpoint if family == stdsocket.AF_INET else TCP6ClientEndpoint
    with pytest.raises(ConnectRefusedError) as from_endpoint:
        cls(host, port).open(timeout=5)
    with pytest.raises(ConnectRefusedError) as from_racer:
        open_tcp_connection(host, port, timeout=5)
    for caught in (from_endpoint.value, from_racer.value):
        (attempt,) = caught.attempts
        assert (attempt.address.host, attempt.address.port) == (host, port)
        assert attempt.phase == "connect" and isinstance(attempt.error, ConnectRefusedError)
    assert str(from_endpoint.value) == str(from_racer.value)
    # What was asked for: the literal's address from the endpoint, the host from the racer.
    assert from_endpoint.value.address == from_endpoint.value.attempts[0].address
    assert str(from_racer.value.address.hostname) == host
