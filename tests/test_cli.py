"""The command line as a user runs it: ``python -m greenpoint ...`` child processes,
talking to servers and clients in this process, all on loopback."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time

import gevent
import pytest
from _cli_helpers import Child, greenpoint_command, run_greenpoint
from _net_helpers import read_all
from _tls_helpers import write_localhost_pems
from gevent.event import Event

import greenpoint
from greenpoint.__main__ import main

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """(ca.pem, server.pem) for localhost and 127.0.0.1, from a throw-away CA."""
    return write_localhost_pems(tmp_path_factory.mktemp("certs"))


def echo(stream, address):
    while data := stream.recv(65536):
        stream.sendall(data)


def exchange(description: str, message: bytes) -> bytes:
    """Connect, send, half-close, read to end-of-file."""
    with greenpoint.client_from_string(description).open(timeout=5) as stream:
        stream.sendall(message)
        stream.shutdown(socket.SHUT_WR)
        return read_all(stream)


@pytest.fixture
def cli(capsys):
    """Run ``main(argv)`` in this process; returns (status, stdout, stderr) as text.

    For the commands that do not take over stdio: cheaper than a child process.
    """
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def run_main(*argv: str) -> tuple[int, str, str]:
        try:
            status = main(list(argv))
        except SystemExit as exit:
            status = exit.code
        finally:
            root.handlers[:], level = saved[0][:], saved[1]
            root.setLevel(level)
        out, err = capsys.readouterr()
        return status, out, err

    return run_main


def refuses_soon(description: str, within: float = 3.0) -> bool:
    """Whether connecting is refused within ``within`` seconds (a stop is under way)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            greenpoint.client_from_string(description).open(timeout=1).close()
        except ConnectionRefusedError:
            return True
        gevent.sleep(0.02)
    return False


# -- help ------------------------------------------------------------------------


def test_every_subcommand_has_help():
    # One child for all: main() is what the console script and `-m` both call.
    script = (
        "import sys\n"
        "from greenpoint.__main__ import main\n"
        "for command in ([], ['check'], ['connect'], ['listen'], ['relay'], ['wsgi']):\n"
        "    try:\n"
        "        main([*command, '--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, (command, exit.code)\n"
        "    print('=====')\n"
    )
    import sys

    from _cli_helpers import run

    result = run([sys.executable, "-c", script])
    assert result.returncode == 0, result.stderr
    pages = result.stdout.decode().split("=====")[:-1]
    assert len(pages) == 6
    assert "check" in pages[0] and "relay" in pages[0] and "wsgi" in pages[0]
    for command, page in zip(
        ["check", "connect", "listen", "relay", "wsgi"], pages[1:], strict=True
    ):
        assert page.lstrip().startswith(f"usage: greenpoint {command}"), page
    assert "--keep-open" in pages[3]
    assert "--workers" in pages[5] and "--listen" in pages[5]


def test_usage_error_exits_2(cli):
    status, _, err = cli("relay", "tcp:0")
    assert status == 2
    assert "CLIENT" in err


# -- check -----------------------------------------------------------------------


def test_check_explains_good_and_fails_on_bad():
    result = run_greenpoint(
        "check", "tcp:127.0.0.1:8080:timeout=2.5", "tcp:80:timout=3", "unix:/run/app.sock:mode=600"
    )
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "greenpoint check: tcp:80:timout=3: as a client: 'timout' is not a parameter of tcp: "
        "did you mean 'timeout'? (parameters: host, port, timeout, bindAddress, bindPort, attemptDelay, or"
        "der, nodelay, keepAlive, keepAliveIdle, keepAliveInterval, keepAliveCount, userTimeout, bindToDevice); "
        "as a server: 'timout' is not a parameter of tcp: did you mean 'userTimeout'? "
        "(parameters: port, interface, backlog, reusePort, nodelay, keepAlive, kee"
        "pAliveIdle, keepAliveInterval, keepAliveCount, userTimeout, bindToDevice, ipv6only)"
    ]
    out = result.stdout.decode()
    lines = [line.split() for line in out.splitlines()]
    # The good ones, before and after the bad one, are explained key by key.
    assert lines[1][:2] == ["client:", "TCP4ClientEndpoint"]
    assert ["timeout", "2.5", "(default", "30)"] in lines
    assert ["bindPort", "0", "(default)"] in lines
    assert ["mode", "600", "(default", "666)"] in lines
    assert ["backlog", "50", "(default)"] in lines
    assert "canonical: tcp4:127.0.0.1:8080:timeout=2.5" in out


def test_check_one_side(cli):
    status, out, err = cli("check", "--server", "tcp:80", "tcp:80:timout=3")
    assert status == 1
    assert err.strip() == (
        "greenpoint check: tcp:80:timout=3: 'timout' is not a parameter of tcp: "
        "did you mean 'userTimeout'? (parameters: port, interface, backlog, reusePort, nodelay, keepAlive, kee"
        "pAliveIdle, keepAliveInterval, keepAliveCount, userTimeout, bindToDevice, ipv6only)"
    )
    assert "TCP4ServerEndpoint" in out
    assert "client:" not in out


def test_check_quiet_prints_nothing_for_good_descriptions(cli):
    assert cli("check", "-q", "--client", "unix:/run/app.sock") == (0, "", "")
    status, out, err = cli("check", "-q", "--client", "tpc:host:80")
    assert (status, out) == (1, "")
    assert "did you mean 'tcp'?" in err


def test_check_explains_a_wrapper_and_what_it_wraps(cli):
    status, out, _ = cli("check", "--server", "haproxy:timeout=2:unix:/run/app.sock")
    assert status == 0
    lines = [line.split() for line in out.splitlines()]
    assert lines[1][:2] == ["server:", "HAProxyServerEndpoint"]
    assert ["timeout", "2", "(default", "5)"] in lines
    assert ["wraps:"] in lines
    assert lines[lines.index(["wraps:"]) + 1][:2] == ["server:", "UNIXServerEndpoint"]


# -- connect ---------------------------------------------------------------------


def test_connect_copies_both_ways_and_honours_half_close():
    def greeter(stream, address):
        stream.sendall(b"banner\n")
        received = read_all(stream)  # until the client's half-close
        stream.sendall(b"got %d bytes\n" % len(received))

    with greenpoint.server_from_string("tcp:0:interface=127.0.0.1").serve(greeter) as port:
        result = run_greenpoint("connect", f"tcp:127.0.0.1:{port.get_host().port}", input=b"hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"banner\ngot 5 bytes\n"
    assert result.stderr == b""


def test_connect_refused_is_one_line_and_exit_1():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: refused
        port = unused.getsockname()[1]
        result = run_greenpoint("connect", f"tcp:127.0.0.1:{port}")
    status, out, err = result.returncode, result.stdout, result.stderr.decode()
    assert (status, out) == (1, b"")
    assert err.startswith(f"greenpoint connect: connection refused by 127.0.0.1:{port}")
    assert len(err.splitlines()) == 1


def test_connect_with_stdin_closed_is_a_clear_error():
    # Closed in the child after its pipes are set up, just before exec.
    result = run_greenpoint("connect", "tcp:127.0.0.1:9", preexec_fn=lambda: os.close(0))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "greenpoint connect: stdio: standard input (fd 0) is not open: Bad file descriptor\n"
    )


def test_connect_bad_description_exit_1(cli):
    status, _, err = cli("connect", "tcp:127.0.0.1")
    assert status == 1
    assert err == "greenpoint connect: tcp: missing port (the port to connect to)\n"


# -- listen ----------------------------------------------------------------------


def test_listen_pipes_one_connection_to_stdio():
    from gevent import subprocess

    with Child(
        greenpoint_command("listen", "tcp:0:interface=127.0.0.1"), stdin=subprocess.PIPE
    ) as child:
        child.process.stdin.write(b"from stdin\n")
        child.process.stdin.close()
        port = child.port()
        answer = exchange(f"tcp:127.0.0.1:{port}", b"from the client\n")
        status, out, _ = child.finish()
    assert answer == b"from stdin\n"
    assert (status, out) == (0, b"from the client\n")


def test_listen_keep_open_takes_connections_one_after_another():
    with Child(greenpoint_command("listen", "-v", "-k", "tcp:0:interface=127.0.0.1")) as child:
        port = child.port()
        for number in (1, 2, 3):
            # stdin is empty: each client gets end-of-file at once, and may still send.
            assert exchange(f"tcp:127.0.0.1:{port}", b"client %d\n" % number) == b""
        child.wait_for(r"127\.0\.0\.1:\d+: 0 bytes sent, 9 received", count=3)
        status, out, _ = child.stop(signal.SIGINT)  # as Ctrl-C does
    assert out == b"client 1\nclient 2\nclient 3\n"
    assert status == 130


# -- relay -----------------------------------------------------------------------


def test_relay_bridges_tcp_to_a_unix_echo_server(tmp_path):
    path = tmp_path / "echo.sock"
    with Child(
        greenpoint_command(
            "relay", "-v", "--progress", "0.1", "tcp:0:interface=127.0.0.1", f"unix:{path}"
        )
    ) as relay:
        port = relay.port()
        # Nothing listens at the path yet: the client's connection is closed, and the
        # relay says why.
        assert exchange(f"tcp:127.0.0.1:{port}", b"") == b""
        relay.wait_for(r"127\.0\.0\.1:\d+: cannot connect to unix:.*echo\.sock")

        with greenpoint.server_from_string(f"unix:{path}").serve(echo):
            assert exchange(f"tcp:127.0.0.1:{port}", b"x" * 100_000) == b"x" * 100_000
            line = relay.wait_for(r"-> unix:.*: (\d+) bytes up, (\d+) bytes down, [\d.]+ s$")
            assert line.groups() == ("100000", "100000")

            # A connection that stays open shows live counts with -v.
            with greenpoint.client_from_string(f"tcp:127.0.0.1:{port}").open(timeout=5) as stream:
                stream.sendall(b"y" * 1500)
                assert stream.recv(65536)
                relay.wait_for(r"127\.0\.0\.1:\d+: 1\.5 kB up, [\d.]+ k?B down, \d+ s$")
            status, _, _ = relay.stop()
    assert status == 0
    assert any("relay stopped" in line for line in relay.lines)


def test_relay_terminates_tls_for_connect_over_tls(certificates):
    ca_pem, server_pem = certificates
    seen = []

    def plaintext_echo(stream, address):
        data = read_all(stream)
        seen.append(data)
        stream.sendall(data)

    upstream = greenpoint.server_from_string("tcp:0:interface=127.0.0.1").serve(plaintext_echo)
    server = f"ssl:0:interface=127.0.0.1:privateKey={server_pem}"
    relay_command = greenpoint_command("relay", server, f"tcp:127.0.0.1:{upstream.get_host().port}")
    with upstream, Child(relay_command) as relay:
        port = relay.port()
        # `connect` is the TLS client: stdin's end-of-file becomes close_notify, the
        # relay passes it on as a half-close, and the echo comes back.
        result = run_greenpoint(
            "connect", f"tls:localhost:{port}:trustRoots={ca_pem}", input=b"secret"
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, b"secret", b"")
        assert seen == [b"secret"]  # the upstream got it decrypted
        relay.wait_for(r": 6 bytes up, 6 bytes down")
        status, _, _ = relay.stop()
    assert status == 0


def test_relay_bind_failure_is_exit_1(cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        status, _, err = cli("relay", f"tcp:{port}:interface=127.0.0.1", "tcp:127.0.0.1:1")
    assert status == 1
    assert err == (f"greenpoint relay: cannot listen on 127.0.0.1:{port}: Address already in use\n")


def test_relay_stops_gracefully_letting_a_running_connection_finish(tmp_path):
    received = Event()
    release = Event()

    def slow_echo(stream, address):
        data = read_all(stream)
        received.set()
        # The behaviour: a connection still running when the stop comes. It answers
        # only once the test has seen the relay stop (not after a fixed sleep, which
        # a loaded machine can outlast before the second signal is sent).
        release.wait(10)
        stream.sendall(data)

    upstream = greenpoint.server_from_string("tcp:0:interface=127.0.0.1").serve(slow_echo)
    relay_command = greenpoint_command(
        "relay", "tcp:0:interface=127.0.0.1", f"tcp:127.0.0.1:{upstream.get_host().port}"
    )
    with upstream, Child(relay_command) as relay:
        port = relay.port()
        with greenpoint.client_from_string(f"tcp:127.0.0.1:{port}").open(timeout=5) as stream:
            stream.sendall(b"late")
            stream.shutdown(socket.SHUT_WR)
            assert received.wait(5)  # through the relay
            relay.process.terminate()
            relay.wait_for("SIGTERM: stopping")
            relay.process.send_signal(signal.SIGINT)  # a second stop signal: ignored
            relay.wait_for("SIGINT: already stopping")
            assert refuses_soon(f"tcp:127.0.0.1:{port}")
            release.set()
            assert read_all(stream) == b"late"  # the running connection finished
        status, _, _ = relay.finish()
    assert status == 0
