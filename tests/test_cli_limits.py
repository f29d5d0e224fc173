"""The limit flags of ``greenpoint relay`` and ``greenpoint wsgi``, and their defaults."""

from __future__ import annotations

import gevent
import pytest
from _cli_helpers import EXAMPLES, Child, greenpoint_command
from _net_helpers import read_all
from _wait_helpers import wait_until
from gevent import socket as gsocket

import greenpoint
from greenpoint.cli._limit_flags import front_end_limits, max_connections_for
from greenpoint.cli._main import build_parser

pytestmark = pytest.mark.timeout(40)


def _connect(port):
    return gsocket.create_connection(("127.0.0.1", port), timeout=10)


@pytest.mark.parametrize(
    ("soft", "per_connection", "expected"),
    [
        (1_000_000, 1, 1000),  # gunicorn's worker_connections
        (1024, 1, 960),  # what the descriptor limit leaves
        (1024, 2, 480),  # a relay spends two per connection
        (40, 2, 1),
    ],
)
def test_default_max_connections_fits_the_descriptor_limit(soft, per_connection, expected):
    assert max_connections_for(per_connection, soft) == expected


def test_front_ends_turn_limits_on_by_default_and_zero_turns_them_off():
    parser = build_parser()
    wsgi = parser.parse_args(["wsgi", "tcp:0", "app:app"])
    assert (wsgi.idle_timeout, wsgi.header_timeout, wsgi.keepalive_timeout) == (60, 10, 5)
    limits = front_end_limits(wsgi, fds_per_connection=1)
    assert limits["max_connections"] >= 1 and limits["max_per_peer"] is None
    relay = parser.parse_args(["relay", "tcp:0", "tcp:h:1", "--connect-timeout", "3"])
    assert relay.timeout == 3 and relay.idle_timeout == 600
    off = parser.parse_args(
        ["relay", "tcp:0", "tcp:h:1", "--max-connections", "0", "--idle-timeout", "0"]
    )
    assert front_end_limits(off, 2) == {
        "max_connections": None,
        "max_per_peer": None,
        "idle_timeout": None,
    }


@pytest.mark.parametrize("flag", ["--max-connections", "--max-per-peer", "--idle-timeout"])
def test_bad_limit_flags_are_usage_errors(flag, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["relay", "tcp:0", "tcp:h:1", flag, "-1"])
    assert info.value.code == 2
    assert flag in capsys.readouterr().err


def test_relay_cuts_an_idle_connection_and_says_why():
    def echo(stream, address):
        while data := stream.recv(100):
            stream.sendall(data)

    with greenpoint.server_from_string("tcp:0:interface=127.0.0.1").serve(echo) as upstream:
        command = greenpoint_command(
            "relay",
            "--idle-timeout",
            "0.5",
            "tcp:0:interface=127.0.0.1",
            f"tcp:127.0.0.1:{upstream.get_host().port}",
        )
        with Child(command) as relay:
            port = relay.port()
            with _connect(port) as client:
                client.sendall(b"ping")
                assert client.recv(10) == b"ping"
                assert read_all(client) == b""  # then silence: cut
            line = relay.wait_for(r"bytes down, [\d.]+ s, cut: idle: .*idle_timeout 0\.5 s")
            assert "4 bytes up" in line.string
            relay.stop()


def test_relay_says_a_connection_cut_by_grace_was_cut():
    def hold(stream, address):
        stream.recv(1)

    with greenpoint.server_from_string("tcp:0:interface=127.0.0.1").serve(hold) as upstream:
        command = greenpoint_command(
            "relay",
            "--grace",
            "0.3",
            "tcp:0:interface=127.0.0.1",
            f"tcp:127.0.0.1:{upstream.get_host().port}",
        )
        with Child(command) as relay:
            port = relay.port()
            with _connect(port):
                wait_until(lambda: upstream.handler_count == 1, what="the relayed connection")
                relay.process.terminate()
                relay.wait_for(r"cut: the relay was stopping and --grace ran out")
            relay.finish()


def test_wsgi_flags_reach_the_worker():
    command = greenpoint_command(
        "wsgi",
        "--header-timeout",
        "0.5",
        "--max-per-peer",
        "1",
        "tcp:0:interface=127.0.0.1",
        "hello_app:application",
    )
    with Child(command, cwd=EXAMPLES) as server:
        port = int(server.wait_for(r"serving .* on 127\.0\.0\.1:(\d+)").group(1))
        with _connect(port) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\n")
            gevent.sleep(0.1)  # the child accepts it (no signal from the child to wait on)
            with _connect(port) as second:  # the same client address: over max_per_peer
                assert read_all(second) == b""
            assert read_all(slow).startswith(b"HTTP/1.1 408")
        server.wait_for(r"max_per_peer 1")
        server.wait_for(r"header_timeout")
        status, _, _ = server.stop()
    assert status == 0
