"""The RFC 8305 schedule, pure, and the racer on a fake clock and a scripted network.

Every time asserted here is virtual and exact (up to float rounding): the fake clock
only moves when every greenlet is blocked.
"""

from __future__ import annotations

import socket
from socket import AF_INET, AF_INET6

import gevent
import pytest
from _wait_helpers import wait_until
from hypothesis import given
from hypothesis import strategies as st

from greenpoint import ConnectError, ConnectTimeoutError, DNSLookupError
from greenpoint._happy_eyeballs import open_tcp_connection
from greenpoint._hostnames import BindAddress, encode_hostname, parse_ip_literal
from greenpoint._interleave import (
    MAX_ADDRESSES,
    AddressQueue,
    clamp_attempt_delay,
    interleave,
)
from greenpoint.errors import ConnectCancelledError, ConnectRefusedError
from greenpoint.testing import FakeClock, FakeNetwork, FakeResolver

pytestmark = pytest.mark.timeout(10)

V6 = [f"2001:db8::{i}" for i in range(1, 10)]
V4 = [f"192.0.2.{i}" for i in range(1, 10)]


def v6(i):
    return (AF_INET6, (V6[i], 80, 0, 0))


def v4(i):
    return (AF_INET, (V4[i], 80))


# -- the pure schedule ---------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "used"),
    [(0, 0.01), (0.001, 0.01), (0.01, 0.01), (0.25, 0.25), (1.5, 1.5), (2, 2.0), (60, 2.0)],
)
def test_attempt_delay_is_clamped_to_rfc_8305_bounds(given, used):
    assert clamp_attempt_delay(given) == used


def test_families_alternate_ipv6_first():
    targets = [v4(0), v4(1), v4(2), v6(0), v6(1), v6(2)]
    assert interleave(targets) == [v6(0), v4(0), v6(1), v4(1), v6(2), v4(2)]


def test_uneven_families_finish_with_the_longer_one():
    assert interleave([v6(0), v6(1), v6(2), v4(0)]) == [v6(0), v4(0), v6(1), v6(2)]
    assert interleave([v4(0), v4(1), v6(0)]) == [v6(0), v4(0), v4(1)]


def test_one_family_keeps_the_resolver_order():
    assert interleave([v4(2), v4(0), v4(1)]) == [v4(2), v4(0), v4(1)]


def test_duplicates_are_tried_once():
    assert interleave([v6(0), v4(0), v6(0), v4(0)]) == [v6(0), v4(0)]


def test_cap_on_addresses_tried():
    targets = [(AF_INET, (f"10.0.{i // 250}.{i % 250}", 80)) for i in range(5000)]
    ordered = interleave(targets)
    assert len(ordered) == MAX_ADDRESSES
    assert ordered == targets[:MAX_ADDRESSES]
    assert len(interleave([v6(0), v6(1), v4(0), v4(1)], max_addresses=3)) == 3


def test_cap_keeps_both_families_when_one_floods():
    queue = AddressQueue(max_addresses=4)
    queue.add(AF_INET, [(f"10.0.0.{i}", 80) for i in range(1000)])
    queue.add(AF_INET6, [V6[0]])
    families = [queue.pop()[0] for _ in range(len(queue))]
    assert families == [AF_INET6, AF_INET, AF_INET, AF_INET]
    assert queue.pop() is None and not queue


def test_late_answer_takes_the_next_turn_of_its_family():
    queue = AddressQueue()
    queue.add(AF_INET, [v4(0)[1], v4(1)[1]])
    assert queue.pop() == v4(0)  # only A known: start with IPv4
    queue.add(AF_INET6, [v6(0)[1], v6(1)[1]])  # AAAA arrives late
    assert [queue.pop() for _ in range(3)] == [v6(0), v4(1), v6(1)]
    assert queue.pop() is None


@given(
    st.lists(
        st.tuples(st.sampled_from([AF_INET, AF_INET6]), st.integers(0, 40)),
        max_size=60,
    ),
    st.integers(1, 40),
)
def test_interleave_properties(raw, cap):
    targets = [
        (family, (f"2001:db8::{n}", 80, 0, 0) if family == AF_INET6 else (f"10.0.0.{n}", 80))
        for family, n in raw
    ]
    unique = list(dict.fromkeys(targets))
    ordered = interleave(targets, max_addresses=cap)
    assert len(ordered) == min(len(unique), cap)
    assert len(set(ordered)) == len(ordered)
    for family in (AF_INET, AF_INET6):  # each family keeps the resolver's order
        mine = [t for t in ordered if t[0] == family]
        assert mine == [t for t in unique if t[0] == family][: len(mine)]
    if any(t[0] == AF_INET6 for t in unique):
        assert ordered[0][0] == AF_INET6
    # Families alternate while both still have addresses left.
    remaining = {f: sum(1 for t in unique if t[0] == f) for f in (AF_INET, AF_INET6)}
    for previous, current in zip(ordered, ordered[1:], strict=False):
        remaining[previous[0]] -= 1
        other = AF_INET if previous[0] == AF_INET6 else AF_INET6
        if remaining[other]:
            assert current[0] == other


def test_address_queue_rejects_a_zero_cap():
    with pytest.raises(ValueError, match="at least 1"):
        AddressQueue(0)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", (AF_INET, ("127.0.0.1", 80))),
        ("::1", (AF_INET6, ("::1", 80, 0, 0))),
        ("[::1]", (AF_INET6, ("::1", 80, 0, 0))),
        ("[2001:db8::1]", (AF_INET6, ("2001:db8::1", 80, 0, 0))),
        ("fe80::1%7", (AF_INET6, ("fe80::1", 80, 0, 7))),
        ("[fe80::1%lo]", (AF_INET6, ("fe80::1", 80, 0, socket.if_nametoindex("lo")))),
        ("example.com", None),
        ("localhost", None),
        ("127.1", None),  # not dotted-quad: a name, left to the resolver
    ],
)
def test_ip_literals_are_recognised(host, expected):
    assert parse_ip_literal(host, 80) == expected


@pytest.mark.parametrize(
    ("host", "message"),
    [("[example.com]", "brackets"), ("fe80::1%no-such-if0", "no network interface")],
)
def test_bad_literals_are_refused(host, message):
    with pytest.raises(ValueError, match=message):
        parse_ip_literal(host, 80)


@pytest.mark.parametrize(
    ("host", "ascii_name"),
    [
        ("example.com", "example.com"),
        ("Example.COM.", "Example.COM."),
        ("_srv.example.com", "_srv.example.com"),
        (b"example.com", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("ＥＸＡＭＰＬＥ.com", "example.com"),  # full-width letters map (UTS 46)
    ],
)
def test_host_names_are_encoded_for_the_resolver(host, ascii_name):
    assert encode_hostname(host) == ascii_name


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("", "empty"),
        ("a..b", "empty label"),
        (".example.com", "empty label"),
        ("exa mple.com", "' '"),
        ("a/b", "'/'"),
        ("x" * 64 + ".com", "longer than 63"),
        (("a" * 60 + ".") * 5, "longer than 253"),
        ("ü" * 70 + ".com", "invalid host name"),  # too long once encoded
        (b"caf\xc3\xa9.com", "ASCII"),
    ],
)
def test_invalid_host_names_are_refused(host, reason):
    with pytest.raises(ValueError, match="invalid host name") as info:
        encode_hostname(host)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        (None, None),
        ("192.0.2.1", BindAddress(ipv4="192.0.2.1")),
        ("[::1]", BindAddress(ipv6="::1")),
        (("192.0.2.1", 4000), BindAddress(ipv4="192.0.2.1", port=4000)),
        ({AF_INET6: "::1"}, BindAddress(ipv6="::1")),
        ("::1,192.0.2.1", BindAddress(ipv4="192.0.2.1", ipv6="::1")),
        (
            {AF_INET: ("192.0.2.1", 0), AF_INET6: "2001:db8::5"},
            BindAddress(ipv4="192.0.2.1", ipv6="2001:db8::5"),
        ),
    ],
)
def test_bind_addresses_are_normalised(given, normalised):
    assert BindAddress.parse(given) == normalised


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("localhost", "must be an IP address"),
        ("192.0.2.1,192.0.2.2", "at most one per family"),
        ({AF_INET: "::1"}, "is IPv6, but is listed under IPv4"),
        (("192.0.2.1", 70000), "bind_address port must be an int from 0 to 65535, not 70000"),
        (42, "a host or"),
    ],
)
def test_bad_bind_addresses_are_refused(given, message):
    with pytest.raises(ValueError, match=message):
        BindAddress.parse(given)


def test_a_single_bind_address_binds_only_its_own_family():
    single = BindAddress.parse("192.0.2.1")
    assert single.for_family(AF_INET) == ("192.0.2.1", 0)
    assert single.for_family(AF_INET6) is None
    both = BindAddress.parse("192.0.2.1,::1")
    assert both.for_family(AF_INET6) == ("::1", 0)


# -- the race on a fake network ------------------------------------------------


class World:
    """A fake clock, resolver and network for "example.test"."""

    def __init__(self):
        self.clock = FakeClock()
        self.resolver = FakeResolver(self.clock)
        self.network = FakeNetwork(self.clock)

    def name(self, aaaa=(), a=(), *, aaaa_delay=0.0, a_delay=0.0, aaaa_error=None, a_error=None):
        self.resolver.add("example.test", AF_INET6, aaaa, delay=aaaa_delay, error=aaaa_error)
        self.resolver.add("example.test", AF_INET, a, delay=a_delay, error=a_error)

    def open(self, host="example.test", **options):
        return open_tcp_connection(
            host,
            80,
            resolver=self.resolver,
            clock=self.clock,
            connect=self.network.connect,
            **options,
        )

    def started(self):
        """``(time, ip)`` of every connect the network saw, in order."""
        return [(round(a.time, 6), a.host) for a in self.network.attempts]


@pytest.fixture
def world():
    world = World()
    yield world
    assert world.network.open_sockets() == [
        sock for sock in world.network.sockets if getattr(sock, "kept", False)
    ]


def keep(sock):
    sock.kept = True  # the world fixture checks that every other socket was closed
    return sock


def test_working_ipv6_wins_without_trying_ipv4(world):
    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "accept", delay=0.01)
    sock, info = world.open()
    keep(sock)
    assert sock.peer == (V6[0], 80, 0, 0)
    assert world.clock.now() == pytest.approx(0.01)
    assert world.started() == [(0.0, V6[0])]
    assert sorted(call[2] for call in world.resolver.calls) == sorted([AF_INET6, AF_INET])
    assert info.winner.host == V6[0]
    assert info.elapsed == pytest.approx(0.01)
    assert [attempt.error for attempt in info.attempts] == [None]


def test_lookups_run_concurrently_one_per_family(world):
    world.name([V6[0]], [V4[0]], aaaa_delay=0.1, a_delay=0.1)
    world.network.add(V6[0], "accept")
    keep(world.open()[0])
    assert [(t, family) for t, _, family in world.resolver.calls] == [
        (0.0, AF_INET6),
        (0.0, AF_INET),
    ]
    assert world.clock.now() == pytest.approx(0.1)


def test_black_holed_ipv6_falls_back_to_ipv4_after_the_attempt_delay(world):
    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "blackhole")
    world.network.add(V4[0], "accept", delay=0.02)
    sock, info = world.open()
    keep(sock)
    assert world.started() == [(0.0, V6[0]), (0.25, V4[0])]
    assert world.clock.now() == pytest.approx(0.27)
    loser, winner = info.attempts
    assert winner.address.host == V4[0] and winner.error is None
    assert winner.started == pytest.approx(0.25) and winner.elapsed == pytest.approx(0.02)
    assert isinstance(loser.error, ConnectCancelledError)
    assert loser.elapsed == pytest.approx(0.27)


def test_refused_ipv6_starts_ipv4_at_once(world):
    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "refuse", delay=0.003)
    world.network.add(V4[0], "accept", delay=0.001)
    keep(world.open()[0])
    assert world.started() == [(0.0, V6[0]), (0.003, V4[0])]
    assert world.clock.now() == pytest.approx(0.004)


def test_a_failure_moves_the_schedule_forward(world):
    # v6a black hole (0), v4a refused at 0.25+0.1 -> v6b at once (0.35), v4b 0.25 later.
    world.name([V6[0], V6[1]], [V4[0], V4[1]])
    world.network.add(V6[0], "blackhole")
    world.network.add(V4[0], "refuse", delay=0.1)
    world.network.add(V6[1], "blackhole")
    world.network.add(V4[1], "accept")
    keep(world.open()[0])
    assert world.started() == [(0.0, V6[0]), (0.25, V4[0]), (0.35, V6[1]), (0.6, V4[1])]


def test_attempts_interleave_families(world):
    world.name([V6[0], V6[1], V6[2]], [V4[0], V4[1]])
    for ip in V6[:3] + V4[:1]:
        world.network.add(ip, "blackhole")
    world.network.add(V4[1], "accept")
    keep(world.open()[0])
    assert world.started() == [
        (0.0, V6[0]),
        (0.25, V4[0]),
        (0.5, V6[1]),
        (0.75, V4[1]),
    ]


def test_a_answering_first_waits_the_resolution_delay_for_aaaa(world):
    world.name([V6[0]], [V4[0]], aaaa_delay=0.03)
    world.network.add(V6[0], "accept")
    world.network.add(V4[0], "accept")
    sock = keep(world.open()[0])
    assert world.started() == [(0.03, V6[0])]
    assert sock.family == AF_INET6


def test_aaaa_later_than_the_resolution_delay_lets_ipv4_start_first(world):
    world.name([V6[0]], [V4[0]], aaaa_delay=0.2)
    world.network.add(V4[0], "blackhole")
    world.network.add(V6[0], "accept")
    sock, info = world.open()
    keep(sock)
    # A at 0: wait 50 ms; start IPv4 at 0.05; AAAA at 0.2 joins; its turn is 0.05 + 0.25.
    assert world.started() == [(0.05, V4[0]), (0.3, V6[0])]
    assert [r.query.record_type for r in info.resolutions] == ["A", "AAAA"]
    assert info.resolutions[1].elapsed == pytest.approx(0.2)


def test_failed_aaaa_ends_the_resolution_delay_at_once(world):
    world.name(a=[V4[0]], aaaa_delay=0.01, aaaa_error="No address associated with hostname")
    world.network.add(V4[0], "accept")
    keep(world.open()[0])
    assert world.started() == [(0.01, V4[0])]


def test_aaaa_first_starts_at_once_without_waiting_for_a(world):
    world.name([V6[0]], [V4[0]], a_delay=1.0)
    world.network.add(V6[0], "accept", delay=0.01)
    keep(world.open()[0])
    assert world.started() == [(0.0, V6[0])]
    assert world.clock.now() == pytest.approx(0.01)


def test_one_family_queries_only_its_record(world):
    world.name([V6[0]], [V4[0]], aaaa_delay=5)
    world.network.add(V4[0], "accept")
    keep(world.open(families=(AF_INET,))[0])
    assert [family for _, _, family in world.resolver.calls] == [AF_INET]
    assert world.started() == [(0.0, V4[0])]  # no resolution delay with one family


@pytest.mark.parametrize(("delay", "second_start"), [(0, 0.01), (0.1, 0.1), (30, 2.0)])
def test_attempt_delay_is_clamped_in_the_race(world, delay, second_start):
    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "blackhole")
    world.network.add(V4[0], "accept")
    keep(world.open(attempt_delay=delay)[0])
    assert world.started() == [(0.0, V6[0]), (second_start, V4[0])]


def test_two_that_connect_together_keep_one_and_close_the_other(world):
    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "accept", delay=0.3)
    world.network.add(V4[0], "accept", delay=0.05)
    sock, _ = world.open()
    keep(sock)
    assert len(world.network.sockets) == 2
    assert [s.closed for s in world.network.sockets if s is not sock] == [True]


def test_all_refused_is_one_error_listing_every_address(world):
    world.name([V6[0], V6[1]], [V4[0]])
    for ip, delay in ((V6[0], 0.01), (V6[1], 0.02), (V4[0], 0.03)):
        world.network.add(ip, "refuse", delay=delay)
    with pytest.raises(ConnectRefusedError) as caught:
        world.open()
    error = caught.value
    assert isinstance(error, ConnectionRefusedError) and error.errno == 111
    assert [(a.address.host, a.phase) for a in error.attempts] == [
        (V6[0], "connect"),
        (V4[0], "connect"),
        (V6[1], "connect"),
    ]
    assert [round(a.started, 6) for a in error.attempts] == [0.0, 0.01, 0.04]
    assert [round(a.elapsed, 6) for a in error.attempts] == [0.01, 0.03, 0.02]
    lines = str(error).splitlines()
    assert lines[0] == "cannot connect to example.test:80: all 3 addresses failed"
    assert len(lines) == 4
    assert lines[1].startswith(
        "  [2001:db8::1]:80 [connect] ConnectRefusedError: connection refused"
    )
    assert lines[1].endswith("(started +0.0 ms, took 10 ms)")


def test_mixed_failures_are_a_connect_error_with_each_reason(world):
    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "unreachable")
    world.network.add(V4[0], "refuse")
    with pytest.raises(ConnectError) as caught:
        world.open()
    assert not isinstance(caught.value, ConnectionRefusedError)
    text = str(caught.value)
    assert "Network is unreachable" in text and "Connection refused" in text


def test_single_failure_message_names_the_address_and_reason(world):
    world.name(a=[V4[0]], aaaa_error="No address associated with hostname")
    world.network.add(V4[0], "refuse")
    with pytest.raises(ConnectRefusedError) as caught:
        world.open()
    error = caught.value
    assert error.message.startswith("cannot connect to example.test:80: 192.0.2.1:80: ")
    phases = [(str(a.address), a.phase) for a in error.attempts]
    assert phases == [("example.test (AAAA)", "resolve"), ("192.0.2.1:80", "connect")]


def test_dns_failure_keeps_the_resolvers_message(world):
    with pytest.raises(DNSLookupError) as caught:
        world.open("nowhere.test")
    assert "Name or service not known" in caught.value.message
    assert [a.phase for a in caught.value.attempts] == ["resolve", "resolve"]
    assert world.network.attempts == []


def test_dns_failures_that_differ_are_both_reported(world):
    world.name(aaaa_error="AAAA lookup broke", a_error="A lookup broke", a_delay=0.01)
    with pytest.raises(DNSLookupError) as caught:
        world.open()
    message = caught.value.message
    assert "AAAA: gaierror: [Errno -2] AAAA lookup broke" in message
    assert "A: gaierror: [Errno -2] A lookup broke" in message


def test_no_addresses_at_all_is_a_dns_lookup_error(world):
    world.resolver.add("example.test", AF_INET6, [])
    world.resolver.add("example.test", AF_INET, [])
    with pytest.raises(DNSLookupError, match="No address associated with hostname"):
        world.open()


def test_resolver_that_ignores_family_is_filtered(world):
    def careless(host, port, family=0, type=0, proto=0, flags=0):
        return world.resolver(host, port)  # both families, every time

    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "refuse")
    world.network.add(V4[0], "refuse")
    with pytest.raises(ConnectError) as caught:
        open_tcp_connection(
            "example.test", 80, resolver=careless, clock=world.clock, connect=world.network.connect
        )
    assert [a.address.host for a in caught.value.attempts] == [V6[0], V4[0]]


def test_deadline_during_the_race_names_every_running_attempt(world):
    world.name([V6[0], V6[1]], [V4[0], V4[1]])
    for ip in V6[:2] + V4[:2]:
        world.network.add(ip, "blackhole")
    with pytest.raises(ConnectTimeoutError) as caught:
        world.open(timeout=1.0)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert world.clock.now() == pytest.approx(1.0)
    assert [round(a.started, 6) for a in error.attempts] == [0.0, 0.25, 0.5, 0.75]
    assert [round(a.elapsed, 6) for a in error.attempts] == [1.0, 0.75, 0.5, 0.25]
    assert all(isinstance(a.error, ConnectTimeoutError) for a in error.attempts)
    assert error.message.startswith("timed out after 1 s connecting to example.test:80")


def test_deadline_covers_resolution(world):
    world.name([V6[0]], [V4[0]], aaaa_delay=10, a_delay=10)
    with pytest.raises(ConnectTimeoutError, match="resolving 'example.test'") as caught:
        world.open(timeout=0.5)
    assert world.clock.now() == pytest.approx(0.5)
    assert [a.phase for a in caught.value.attempts] == ["resolve", "resolve"]


def test_deadline_with_attempts_failed_fast_and_lookups_pending(world):
    world.name(a=[V4[0]], aaaa_delay=10)
    world.network.add(V4[0], "refuse")
    with pytest.raises(ConnectTimeoutError) as caught:
        world.open(timeout=2)
    phases = sorted((a.phase, type(a.error).__name__) for a in caught.value.attempts)
    assert phases == [("connect", "ConnectRefusedError"), ("resolve", "ConnectTimeoutError")]


def test_hostile_dns_is_capped(world):
    many = [f"10.1.{i // 200}.{i % 200}" for i in range(2000)]
    world.name(a=many, aaaa_error="none")
    for ip in many:
        world.network.add(ip, "refuse")
    with pytest.raises(ConnectRefusedError) as caught:
        world.open()
    assert len(world.network.attempts) == MAX_ADDRESSES
    assert len([a for a in caught.value.attempts if a.phase == "connect"]) == MAX_ADDRESSES


def test_bind_address_is_used_for_its_own_family_only(world):
    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "refuse")
    world.network.add(V4[0], "accept")
    keep(world.open(bind_address="192.0.2.200")[0])
    binds = [(a.family, a.bind_address) for a in world.network.attempts]
    assert binds == [(AF_INET6, None), (AF_INET, ("192.0.2.200", 0))]


def test_bind_address_per_family(world):
    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "refuse")
    world.network.add(V4[0], "accept")
    keep(world.open(bind_address={AF_INET: "192.0.2.200", AF_INET6: ("2001:db8::99", 0)})[0])
    binds = [a.bind_address for a in world.network.attempts]
    assert binds == [("2001:db8::99", 0), ("192.0.2.200", 0)]


@pytest.mark.parametrize(
    ("host", "family", "ip"),
    [
        ("192.0.2.7", AF_INET, "192.0.2.7"),
        ("2001:db8::7", AF_INET6, "2001:db8::7"),
        ("[2001:db8::7]", AF_INET6, "2001:db8::7"),
        ("fe80::7%1", AF_INET6, "fe80::7"),
    ],
)
def test_ip_literals_never_call_the_resolver(world, host, family, ip):
    world.network.add(ip, "accept", delay=0.01)
    sock, info = world.open(host)
    keep(sock)
    assert world.resolver.calls == []
    assert (sock.family, sock.peer[0]) == (family, ip)
    assert info.resolutions == () and info.elapsed == pytest.approx(0.01)


def test_literal_failure_lists_its_attempt(world):
    world.network.add("192.0.2.7", "refuse", delay=0.01)
    with pytest.raises(ConnectRefusedError) as caught:
        world.open("192.0.2.7")
    (attempt,) = caught.value.attempts
    assert attempt.address.host == "192.0.2.7" and attempt.elapsed == pytest.approx(0.01)


def test_literal_of_a_family_not_allowed_is_refused(world):
    with pytest.raises(ConnectError, match="IPv6 address and only IPv4"):
        world.open("::1", families=(AF_INET,))
    assert world.network.attempts == []


def test_idn_goes_to_the_resolver_encoded(world):
    world.resolver.add("xn--bcher-kva.example", AF_INET, [V4[0]])
    world.network.add(V4[0], "accept")
    keep(world.open("bücher.example", families=(AF_INET,))[0])
    assert [host for _, host, _ in world.resolver.calls] == ["xn--bcher-kva.example"]


@pytest.mark.parametrize("host", ["exa mple.test", "a..b", "[not-an-ip]"])
def test_invalid_name_is_a_dns_lookup_error_without_a_lookup(world, host):
    with pytest.raises(DNSLookupError, match="invalid host name|brackets"):
        world.open(host)
    assert world.resolver.calls == []


def test_families_must_be_inet(world):
    with pytest.raises(ValueError, match="families"):
        world.open(families=(socket.AF_UNIX,))


def test_kill_stops_lookups_and_attempts_and_closes_sockets(world):
    world.name([V6[0]], [V4[0], V4[1]], a_delay=0.1)
    world.network.add(V6[0], "accept", delay=5)
    world.network.add(V4[0], "accept", delay=5)
    world.network.add(V4[1], "accept", delay=5)
    racer = gevent.spawn(world.open)
    world.clock.sleep(0.3)  # virtual: two attempts are running now
    assert len(world.network.attempts) == 2
    racer.kill()
    assert isinstance(racer.value, gevent.GreenletExit)
    # Nothing is left sleeping on the clock: idling must not move it.
    gevent.idle()
    assert world.clock.now() == pytest.approx(0.3)
    assert world.network.sockets == []


def test_gevent_timeout_propagates_after_cleanup(world):
    world.name([V6[0]], [V4[0]])
    world.network.add(V6[0], "blackhole")
    world.network.add(V4[0], "blackhole")
    # The caller's own gevent.Timeout expires while both attempts wait. Armed when
    # they do (not after a real 50 ms, which a loaded machine can spend before the
    # first attempt), and thrown from the hub, as an expiring Timeout is.
    caller = gevent.getcurrent()
    timeout = gevent.Timeout()

    def expire_when_both_attempts_wait():
        try:
            wait_until(lambda: len(world.network.attempts) == 2, timeout=10)
        except AssertionError as exc:  # never both: the caller fails with that
            thrown: BaseException = exc
        else:
            thrown = timeout
        gevent.get_hub().loop.run_callback(caller.throw, thrown)

    expiry = gevent.spawn(expire_when_both_attempts_wait)
    try:
        with pytest.raises(gevent.Timeout) as caught:
            world.open(timeout=None)
    finally:
        expiry.kill()
    assert caught.value is timeout
    assert len(world.network.attempts) == 2
    gevent.idle()
    assert world.network.open_sockets() == []


def test_connect_info_describes_the_race(world):
    world.name([V6[0]], [V4[0]], a_delay=0.01)
    world.network.add(V6[0], "blackhole")
    world.network.add(V4[0], "accept", delay=0.02)
    sock, info = world.open()
    keep(sock)
    lines = info.describe().splitlines()
    assert lines[0] == "connected to example.test:80 via 192.0.2.1:80 in 270 ms"
    assert lines[1] == "  lookup example.test (AAAA) -> 2001:db8::1 (took 0 ms)"
    assert lines[2] == "  lookup example.test (A) -> 192.0.2.1 (took 10 ms)"
    assert lines[3].startswith("  attempt [2001:db8::1]:80 [connect] ConnectCancelledError")
    assert lines[4] == ("  attempt 192.0.2.1:80 [connect] connected (started +250 ms, took 20 ms)")


def test_the_documented_example():
    from greenpoint import HostnameEndpoint

    clock = FakeClock()
    resolver = FakeResolver(clock)
    resolver.add("example.test", AF_INET6, ["2001:db8::1"])
    resolver.add("example.test", AF_INET, ["192.0.2.1"])
    network = FakeNetwork(clock)
    network.add("2001:db8::1", "blackhole")
    network.add("192.0.2.1", "accept", delay=0.02)
    ep = HostnameEndpoint(
        "example.test", 80, resolver=resolver, clock=clock, connector=network.connect
    )
    stream, info = ep.open_with_info()
    assert clock.now() == 0.27 and info.winner.host == "192.0.2.1"
    assert network.open_sockets() == [stream]


def test_manual_clock_moves_only_when_advanced():
    clock = FakeClock(autojump=False)
    woke = []
    sleeper = gevent.spawn(lambda: (clock.sleep(1.0), woke.append(clock.now())))
    gevent.idle()
    assert woke == [] and clock.now() == 0.0
    clock.advance(0.5)
    gevent.idle()
    assert woke == []
    clock.advance(0.5)
    sleeper.join(timeout=1)
    assert woke == [1.0]
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
