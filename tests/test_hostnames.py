"""Several hosts in one description: one race over every host's addresses."""

from __future__ import annotations

import socket as stdsocket
import time

import gevent
import pytest
from _net_helpers import black_hole
from gevent import socket as gsocket

from greenpoint import client_from_string
from greenpoint._address import IPv4Address
from greenpoint.cli._main import main
from greenpoint.endpoints.hostnames import HostnamesEndpoint
from greenpoint.errors import ConnectCancelledError, ConnectRefusedError, DescriptionError

DEAD, REFUSING, LIVE = "127.0.0.1", "127.0.0.2", "127.0.0.3"


def listening_on(host, port):
    sock = gsocket.socket()
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        pytest.skip(f"cannot bind {host}:{port} for this test: {exc}")
    sock.listen(4)
    return sock


def test_description_round_trips():
    endpoint = client_from_string("tcp:[db1.example,::1,192.0.2.7]:5432:attemptDelay=0.1")
    assert isinstance(endpoint, HostnamesEndpoint)
    assert endpoint.hosts == (("db1.example", 5432), ("::1", 5432), ("192.0.2.7", 5432))
    assert client_from_string(str(endpoint)) == endpoint
    assert client_from_string("tcp:a.example,b.example:80").hosts == (
        ("a.example", 80), ("b.example", 80),
    )  # fmt: skip


@pytest.mark.parametrize("text", ["tcp:a.example,,b.example:80", "tcp:a.example,b c:80"])
def test_bad_host_lists(text):
    with pytest.raises(DescriptionError):
        client_from_string(text)


def test_check_explains_it(capsys):
    assert main(["check", "--client", "tcp:a.example,b.example:80"]) == 0
    out = capsys.readouterr().out
    assert "HostnamesEndpoint" in out
    assert "a.example,b.example" in out


def test_dead_refusing_and_live_hosts_connect_to_the_live_one_quickly():
    with black_hole(stdsocket.AF_INET, DEAD) as port:
        live = listening_on(LIVE, port)
        try:
            endpoint = client_from_string(f"tcp:{DEAD},{REFUSING},{LIVE}:{port}:timeout=10")
            started = time.monotonic()
            sock, info = endpoint.open_with_info()
            elapsed = time.monotonic() - started
            sock.close()
        finally:
            live.close()
    # The black hole holds the first attempt; 250 ms later the refusal starts the
    # live one at once (RFC 8305 §5). Generous bounds for a loaded machine.
    assert 0.2 <= elapsed < 3
    assert info.winner == IPv4Address(LIVE, port)
    outcomes = [(attempt.address.host, type(attempt.error)) for attempt in info.attempts]
    assert outcomes == [
        (DEAD, ConnectCancelledError),
        (REFUSING, ConnectRefusedError),
        (LIVE, type(None)),
    ]
    assert 0.2 <= info.attempts[1].started < 2  # the second host waited attemptDelay
    assert "connected to" in info.describe()


def test_names_are_resolved_at_once_and_their_addresses_raced():
    lookups = []

    def resolver(host, port, family=0, type=0, proto=0, flags=0):
        lookups.append((host, family))
        if family != stdsocket.AF_INET:
            raise stdsocket.gaierror(stdsocket.EAI_NONAME, "no AAAA")
        address = {"refusing.example": REFUSING, "live.example": LIVE}[host]
        return [(stdsocket.AF_INET, stdsocket.SOCK_STREAM, 6, "", (address, port))]

    probe = gsocket.socket()
    probe.bind((LIVE, 0))
    port = probe.getsockname()[1]
    probe.close()
    live = listening_on(LIVE, port)
    try:
        endpoint = HostnamesEndpoint(
            [("refusing.example", port), ("live.example", port)], resolver=resolver
        )
        sock, info = endpoint.open_with_info(timeout=10)
        sock.close()
    finally:
        live.close()
    assert sorted(lookups) == sorted(
        (host, family)
        for host in ("refusing.example", "live.example")
        for family in (stdsocket.AF_INET6, stdsocket.AF_INET)
    )
    assert info.winner == IPv4Address(LIVE, port)
    assert {str(resolution.query) for resolution in info.resolutions} == {
        "refusing.example (AAAA)", "refusing.example (A)",
        "live.example (AAAA)", "live.example (A)",
    }  # fmt: skip


def test_all_refusing_is_one_error_listing_each_host():
    probe = gsocket.socket()
    probe.bind((REFUSING, 0))
    port = probe.getsockname()[1]
    try:  # bound but not listening: refused
        endpoint = client_from_string(f"tcp:{REFUSING},{DEAD}:{port}")
        with pytest.raises(ConnectRefusedError) as caught:
            endpoint.open(timeout=5)
    finally:
        probe.close()
    error = caught.value
    assert "all 2 addresses failed" in str(error)
    assert [attempt.address.host for attempt in error.attempts] == [REFUSING, DEAD]


def test_a_caller_timeout_closes_every_attempt():
    with black_hole(stdsocket.AF_INET, DEAD) as port:
        endpoint = HostnamesEndpoint([(DEAD, port), ("127.0.0.4", port)], timeout=30)
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.3):
            endpoint.open()


def test_sequence_tries_the_hosts_in_order_each_with_a_share_of_the_deadline():
    with black_hole(stdsocket.AF_INET, DEAD) as port:
        live = listening_on(LIVE, port)
        try:
            endpoint = client_from_string(
                f"tcp:{DEAD},{REFUSING},{LIVE}:{port}:timeout=1.5:order=sequence"
            )
            assert client_from_string(str(endpoint)) == endpoint
            started = time.monotonic()
            sock, info = endpoint.open_with_info()
            elapsed = time.monotonic() - started
            sock.close()
        finally:
            live.close()
    # The black hole gets a third of 1.5 s; the refusal is at once; then the live one.
    assert 0.45 <= elapsed < 3
    assert info.winner == IPv4Address(LIVE, port)
    hosts = [attempt.address.host for attempt in info.attempts]
    assert hosts == [DEAD, REFUSING, LIVE]
    assert 0.45 <= info.attempts[1].started < 3  # shifted to the start of the whole connect


def test_sequence_prefers_the_first_host_that_answers():
    first, second = listening_on(REFUSING, 0), None
    port = first.getsockname()[1]
    try:
        second = listening_on(LIVE, port)
        endpoint = HostnamesEndpoint([(REFUSING, port), (LIVE, port)], order="sequence")
        for _ in range(3):
            sock, info = endpoint.open_with_info(timeout=5)
            sock.close()
            assert info.winner == IPv4Address(REFUSING, port)
            assert len(info.attempts) == 1
    finally:
        first.close()
        if second is not None:
            second.close()


def test_sequence_all_failing_lists_every_host():
    probe = gsocket.socket()
    probe.bind((REFUSING, 0))
    port = probe.getsockname()[1]
    try:
        endpoint = client_from_string(f"tcp:{REFUSING},{LIVE}:{port}:order=sequence")
        with pytest.raises(ConnectRefusedError) as caught:
            endpoint.open(timeout=5)
    finally:
        probe.close()
    assert "all 2 hosts failed" in str(caught.value)
    assert [attempt.address.host for attempt in caught.value.attempts] == [REFUSING, LIVE]


def test_only_literals_of_another_family_is_a_clear_error():
    from greenpoint._happy_eyeballs import open_tcp_connection_to_any
    from greenpoint.errors import ConnectError

    with pytest.raises(ConnectError, match=r"no IPv4 address"):
        open_tcp_connection_to_any([("::1", 80), ("::2", 80)], families=[stdsocket.AF_INET])
