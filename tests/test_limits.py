"""Connection limits on serve() and listen(): max_connections, max_per_peer, idle_timeout."""

from __future__ import annotations

import logging
import math
import struct
import time

import gevent
import pytest
from _protocol_helpers import RecordingFactory
from _wait_helpers import wait_until
from gevent import socket as gsocket

import greenpoint
from greenpoint import Factory, IdleTimeoutError, Protocol, server_from_string
from greenpoint._limits import (
    ConnectionLimits,
    PortStats,
    next_sweep_delay,
    peer_key,
    tcp_idle_seconds,
)

pytestmark = pytest.mark.timeout(30)

LOOPBACK = "tcp:0:interface=127.0.0.1"


def _connect(port, source="127.0.0.1"):
    return gsocket.create_connection(
        ("127.0.0.1", port.get_host().port), timeout=10, source_address=(source, 0)
    )


def _limit_records(caplog):
    return [r for r in caplog.records if r.name == "greenpoint" and r.levelno == logging.INFO]


# -- pure decisions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("max_connections", 0),
        ("max_connections", -1),
        ("max_connections", 2.5),
        ("max_connections", True),
        ("max_connections", "10"),
        ("max_per_peer", 0),
        ("idle_timeout", 0),
        ("idle_timeout", -1.0),
        ("idle_timeout", math.nan),
        ("idle_timeout", math.inf),
        ("idle_timeout", "5"),
    ],
)
def test_bad_limits_are_refused_naming_the_limit(keyword, value):
    with pytest.raises(ValueError, match=keyword):
        ConnectionLimits(**{keyword: value})
    endpoint = server_from_string(LOOPBACK)
    with pytest.raises(ValueError, match=keyword):
        endpoint.serve(lambda stream, address: None, **{keyword: value})
    with pytest.raises(ValueError, match=keyword):
        endpoint.listen(Factory.forProtocol(Protocol), **{keyword: value})


def test_limits_default_to_none_and_accept_whole_seconds():
    assert not ConnectionLimits().any
    limits = ConnectionLimits(max_connections=10, max_per_peer=2, idle_timeout=5)
    assert limits.any and limits.idle_timeout == 5.0


def test_peer_key_is_the_ip_address_and_none_for_unix_peers():
    assert peer_key(greenpoint.IPv4Address("10.0.0.1", 5000)) == "10.0.0.1"
    assert peer_key(greenpoint.IPv6Address("::1", 5000)) == "::1"
    assert peer_key(greenpoint.UNIXAddress("/run/x.sock")) is None
    assert peer_key(None) is None


def test_tcp_idle_is_the_shorter_of_last_data_sent_and_received():
    info = bytes(44) + struct.pack("=IIII", 2500, 1, 700, 1) + bytes(4)
    assert tcp_idle_seconds(info) == 0.7
    info = bytes(44) + struct.pack("=IIII", 300, 1, 9000, 1) + bytes(4)
    assert tcp_idle_seconds(info) == 0.3


@pytest.mark.parametrize(
    ("timeout", "remaining", "expected"),
    [
        (10.0, 10.0, 10.0),  # nothing open: a new connection cannot expire sooner
        (10.0, 3.0, 3.0),  # sleep until the soonest could expire
        (10.0, 0.01, 0.5),  # but never less than 5 % of the timeout
        (0.1, 0.0, 0.01),  # and never less than 10 ms
        (10.0, 50.0, 10.0),
    ],
)
def test_the_sweep_sleeps_until_the_soonest_connection_could_expire(timeout, remaining, expected):
    assert next_sweep_delay(timeout, remaining) == pytest.approx(expected)


# -- idle_timeout ---------------------------------------------------------------------


def test_a_stream_handler_blocked_in_recv_gets_idle_timeout_error(caplog):
    errors = []

    def handler(stream, address):
        try:
            stream.recv(10)
        except BaseException as exc:
            errors.append(exc)
            raise

    caplog.set_level(logging.INFO, logger="greenpoint")
    with server_from_string(LOOPBACK).serve(handler, idle_timeout=0.3) as port:
        with _connect(port) as client:
            started = time.monotonic()
            assert client.recv(10) == b""  # the server closed it
            waited = time.monotonic() - started
        stats = wait_until(lambda: port.stats.active == 0 and port.stats)
    assert 0.25 <= waited < 3.0
    assert len(errors) == 1 and isinstance(errors[0], IdleTimeoutError)
    assert isinstance(errors[0], TimeoutError) and errors[0].idle_timeout == 0.3
    assert stats.closed_idle == 1 and stats.accepted == 1 and stats.active == 0
    lines = [r for r in _limit_records(caplog) if "idle_timeout" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.1" in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # never a traceback


def test_a_stream_handler_blocked_in_sendall_to_a_reader_that_stopped_gets_it_too():
    errors = []

    def handler(stream, address):
        try:
            while True:
                stream.sendall(b"x" * 65536)
        except BaseException as exc:
            errors.append(exc)
            raise

    port = server_from_string(LOOPBACK).serve(handler, idle_timeout=0.4)
    with port, _connect(port):  # the client never reads
        wait_until(lambda: errors, timeout=10, what="the handler's error")
    assert len(errors) == 1 and isinstance(errors[0], IdleTimeoutError)


def test_a_connection_with_traffic_in_either_direction_is_not_idle():
    def echo(stream, address):
        while data := stream.recv(100):
            stream.sendall(data)

    def talker(stream, address):
        for _ in range(8):  # the server sends, the client never does
            stream.sendall(b".")
            gevent.sleep(0.1)  # the sleep is the behaviour: traffic, paced

    for handler in (echo, talker):
        with server_from_string(LOOPBACK).serve(handler, idle_timeout=0.35) as port:
            with _connect(port) as client:
                for _ in range(8):  # 0.8 s in all, more than twice the timeout
                    if handler is echo:
                        client.sendall(b"ping")
                        assert client.recv(100) == b"ping"
                        gevent.sleep(0.1)  # the sleep is the behaviour: traffic, paced
                    else:
                        assert client.recv(100)
            assert port.stats.closed_idle == 0


def test_a_handler_that_catches_the_error_and_lingers_is_told_once(caplog):
    caught = []

    def handler(stream, address):
        try:
            stream.recv(10)
        except IdleTimeoutError as exc:
            caught.append(exc)
            gevent.sleep(0.5)  # cleanup that takes a while, on a still idle stream

    caplog.set_level(logging.INFO, logger="greenpoint")
    with server_from_string(LOOPBACK).serve(handler, idle_timeout=0.1) as port:
        with _connect(port) as client:
            assert client.recv(10) == b""
        wait_until(lambda: port.stats.closed_idle == 1)
    assert len(caught) == 1
    assert len([r for r in _limit_records(caplog) if "idle_timeout" in r.getMessage()]) == 1


def test_a_protocol_gets_connection_lost_with_idle_timeout_error(caplog):
    caplog.set_level(logging.INFO, logger="greenpoint")
    server = RecordingFactory()
    port = server_from_string(LOOPBACK).listen(server, idle_timeout=0.3)
    try:
        with _connect(port) as client:
            client.sendall(b"hello")
            assert client.recv(10) == b""
        assert server.one().closed.wait(5)
        (reason,) = server.one().reasons
        assert isinstance(reason, IdleTimeoutError)
        assert isinstance(reason, greenpoint.ConnectionLost)  # code handling lost ones works
        assert port.stats.closed_idle == 1
    finally:
        port.stop_listening()
    assert not any(r.exc_info for r in caplog.records)


def test_idle_sweep_leaves_no_descriptor_and_stops_with_the_port():
    with server_from_string(LOOPBACK).serve(lambda s, a: s.recv(1), idle_timeout=0.2) as port:
        clients = [_connect(port) for _ in range(20)]
        try:
            for client in clients:
                assert client.recv(1) == b""
        finally:
            for client in clients:
                client.close()
        wait_until(lambda: port.stats.active == 0)
        assert port.stats.closed_idle == 20
        sweeper = port._sweeper
    assert sweeper.dead
    # conftest's no_fd_leak checks that every descriptor is back to the baseline


# -- max_connections ------------------------------------------------------------------


def test_at_max_connections_clients_wait_in_the_backlog_and_none_is_reset(caplog):
    cap, extra = 5, 50
    running = 0
    peak = 0
    served = []

    def handler(stream, address):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            data = stream.recv(10)
            gevent.sleep(0.05)  # the sleep is the behaviour: a handler busy for a while
            stream.sendall(data)
            served.append(data)
        finally:
            running -= 1

    caplog.set_level(logging.INFO, logger="greenpoint")
    endpoint = server_from_string("tcp:0:interface=127.0.0.1:backlog=128")
    with endpoint.serve(handler, max_connections=cap) as port:
        clients = [_connect(port) for _ in range(cap + extra)]  # all connect at once
        try:
            # Exactly the cap is accepted (and the peak checked below says never more).
            wait_until(lambda: port.stats.active == cap)
            for index, client in enumerate(clients):
                client.sendall(b"%d" % index)
            for index, client in enumerate(clients):
                assert client.recv(10) == b"%d" % index  # no reset: every one answered
        finally:
            for client in clients:
                client.close()
        stats = port.stats
    assert peak == cap
    assert len(served) == cap + extra
    assert stats.accepted == cap + extra and stats.paused_at_cap >= 1
    assert any("max_connections" in r.getMessage() for r in _limit_records(caplog))


# -- max_per_peer ---------------------------------------------------------------------


def test_max_per_peer_closes_the_extra_connection_and_serves_other_peers(caplog):
    def handler(stream, address):
        stream.sendall(b"hi")
        stream.recv(1)  # until the client closes

    caplog.set_level(logging.INFO, logger="greenpoint")
    with server_from_string(LOOPBACK).serve(handler, max_per_peer=2) as port:
        first, second = _connect(port), _connect(port)
        third = _connect(port)
        other = _connect(port, source="127.0.0.2")  # another client address
        try:
            assert first.recv(2) == b"hi" and second.recv(2) == b"hi"
            assert third.recv(2) == b""  # closed at once
            assert other.recv(2) == b"hi"
            assert port.stats.refused_by_limit == 1
            second.close()
            wait_until(lambda: port.stats.active == 2, what="the second client's handler to end")
            with _connect(port) as again:  # a slot is free again
                assert again.recv(2) == b"hi"
        finally:
            for client in (first, second, third, other):
                client.close()
    lines = [r.getMessage() for r in _limit_records(caplog) if "max_per_peer" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.1" in lines[0]
    assert not any(r.exc_info for r in caplog.records)


def test_stats_is_a_snapshot():
    with server_from_string(LOOPBACK).serve(lambda s, a: None) as port:
        assert port.stats == PortStats()


# -- handshake timeouts ---------------------------------------------------------------


def test_a_proxy_header_that_never_comes_counts_as_a_handshake_timeout():
    endpoint = server_from_string("haproxy:timeout=0.2:tcp:0:interface=127.0.0.1")
    with endpoint.serve(lambda s, a: None) as port:
        with _connect(port) as client:
            assert client.recv(10) == b""
        wait_until(lambda: port.stats.handshake_timeouts == 1)


# -- over TLS -------------------------------------------------------------------------


def test_idle_timeout_over_tls_and_a_handshake_that_never_comes(tmp_path):
    from _tls_helpers import make_certs

    from greenpoint import client_from_string, quote_string_argument

    certs = make_certs(tmp_path)
    errors = []

    def handler(stream, address):
        try:
            stream.recv(10)
        except BaseException as exc:
            errors.append(exc)
            raise

    pem, ca = quote_string_argument(certs.server_pem), quote_string_argument(certs.ca_file)
    endpoint = server_from_string(
        f"ssl:0:privateKey={pem}:interface=127.0.0.1:handshakeTimeout=0.3"
    )
    with endpoint.serve(handler, idle_timeout=0.5) as port:
        with _connect(port) as silent:  # TCP only: the handshake timeout governs it
            assert silent.recv(10) == b""
        client = client_from_string(f"tls:localhost:{port.get_host().port}:trustRoots={ca}").open(
            timeout=10
        )
        with client:  # handshake done, then silence: idle
            started = time.monotonic()
            assert client.recv(10) == b""
            assert 0.4 <= time.monotonic() - started < 3.0
        stats = wait_until(lambda: port.stats.active == 0 and port.stats)
    assert stats.handshake_timeouts == 1 and stats.closed_idle == 1
    assert len(errors) == 1 and isinstance(errors[0], IdleTimeoutError)


# -- over UNIX sockets (no TCP_INFO: the socket keeps its own time) -------------------


def test_idle_timeout_on_unix_sockets_for_handlers_and_protocols(tmp_path):
    errors = []

    def handler(stream, address):
        try:
            while data := stream.recv(10):
                stream.sendall(data)
        except BaseException as exc:
            errors.append(exc)
            raise

    def connect(port):
        client = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
        client.settimeout(10)
        client.connect(port.get_host().name)
        return client

    path = tmp_path / "idle.sock"
    with server_from_string(f"unix:{path}").serve(handler, idle_timeout=0.4) as port:
        with connect(port) as client:
            for _ in range(6):  # 0.9 s of traffic: not idle
                client.sendall(b"ping")
                assert client.recv(10) == b"ping"
                last_io = time.monotonic()
                gevent.sleep(0.15)  # the sleep is the behaviour: traffic, paced
            assert client.recv(10) == b""  # then silence: closed
            assert 0.35 <= time.monotonic() - last_io < 3.0
        wait_until(lambda: port.stats.closed_idle == 1)
    assert len(errors) == 1 and isinstance(errors[0], IdleTimeoutError)

    path = tmp_path / "idle-protocol.sock"
    server = RecordingFactory()
    port = server_from_string(f"unix:{path}").listen(server, idle_timeout=0.3)
    try:
        with connect(port) as client:
            client.sendall(b"hello")
            assert client.recv(10) == b""
        assert server.one().closed.wait(5)
        assert server.one().reason_types == [IdleTimeoutError]
    finally:
        port.stop_listening()
