"""Every script in examples/ runs and does what it says (examples/reconnecting_client.py
is tested with ReconnectingClient)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import signal
import socket
import sys
import time

import pytest
from _cli_helpers import EXAMPLES, Child, child_env, run
from _tls_helpers import make_certs

import greenpoint
from greenpoint import tls

pytestmark = pytest.mark.timeout(30)

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


def example(name: str, *args: str) -> list[str]:
    return [sys.executable, str(EXAMPLES / name), *args]


def run_example(name: str, *args: str) -> str:
    result = run(example(name, *args), cwd=EXAMPLES)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def read_line(stream) -> bytes:
    stream.settimeout(10)
    line = b""
    while not line.endswith(b"\n"):
        data = stream.recv(1)
        assert data, f"connection closed after {line!r}"
        line += data
    return line


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_echo_server_and_client(tmp_path, transport):
    server = "tcp:0:interface=127.0.0.1" if transport == "tcp" else f"unix:{tmp_path}/echo.sock"
    with Child(example("echo_server.py", server), merge=True) as child:
        listening = child.wait_for(r"echo server listening on (\S+)").group(1)
        client = f"tcp:{listening}" if transport == "tcp" else listening
        output = run_example("echo_client.py", client, f"hello over {transport}")
        status, _, _ = child.stop()
    assert output == f"sent 'hello over {transport}' got back 'hello over {transport}'\n"
    assert status == 0
    assert child.lines[-1] == "echo server stopped"


def test_chat_server_relays_lines_between_members():
    with Child(example("chat_server.py", "tcp:0:interface=127.0.0.1"), merge=True) as child:
        port = int(child.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        endpoint = greenpoint.client_from_string(f"tcp:127.0.0.1:{port}")
        with endpoint.open(timeout=5) as alice, endpoint.open(timeout=5) as bob:
            for stream, name, others in ((alice, b"alice", 0), (bob, b"bob", 1)):
                assert read_line(stream) == b"welcome! what is your name?\n"
                stream.sendall(name + b"\r\n")
                assert read_line(stream) == b"hi %s, %d others here\n" % (name, others)
            assert read_line(alice) == b"* bob joined\n"
            bob.sendall(b"hi all\nand ")
            bob.sendall(b"again\n")  # a line split across two reads
            assert read_line(alice) == b"bob: hi all\n"
            assert read_line(alice) == b"bob: and again\n"
            alice.sendall(b"hello bob\n")
            assert read_line(bob) == b"alice: hello bob\n"
        status, _, _ = child.stop(signal.SIGINT)
    assert status == 0


def test_tls_echo():
    assert run_example("tls_echo.py") == (
        "echoed b'hello over TLS' over TLSv1.3, verified certificate for localhost\n"
    )


def test_happy_eyeballs_prints_each_attempt():
    lines = run_example("happy_eyeballs.py").splitlines()
    assert re.fullmatch(r"connected to demo\.test:80 via 127\.0\.0\.1:\d+ in \d+ ms", lines[0])
    attempts = [line.strip() for line in lines if line.strip().startswith("attempt")]
    assert len(attempts) == 2
    assert re.match(r"attempt \[::1\]:\d+ \[connect\] ConnectCancelledError", attempts[0])
    started = re.search(
        r"attempt 127\.0\.0\.1:\d+ \[connect\] connected \(started \+(\d+)", attempts[1]
    )
    # After the 250 ms attempt delay; well before the example's 5 s timeout.
    assert started and 240 <= int(started.group(1)) < 4000


def test_happy_eyeballs_without_ipv6_races_two_ipv4_addresses():
    # What the example and the demo fall back to where ::1 cannot be bound.
    sys.path.insert(0, str(EXAMPLES))
    try:
        from happy_eyeballs import race
    finally:
        sys.path.remove(str(EXAMPLES))
    info = race(dark="127.0.0.2")
    assert info.winner.host == "127.0.0.1"
    dark, live = info.attempts
    assert dark.address.host == "127.0.0.2" and dark.error is not None
    assert live.error is None and live.started >= 0.24


def test_wsgi_behind_relay():
    output = run_example("wsgi_behind_relay.py")
    assert re.search(
        r"GET http://127\.0\.0\.1:\d+/ -> hello a UNIX socket client over http", output
    )
    assert re.search(
        r"relay log: 127\.0\.0\.1:\d+ -> unix:\S+app\.sock: \d+ bytes up, \d+ bytes down", output
    )


def test_demo_reports_every_check_and_exits_0():
    output = run_example("demo.py")
    for name in ("TCP", "TLS", "UNIX"):
        assert re.search(rf"^  ok   echo over {name}\b", output, re.MULTILINE), output
    assert "via 127.0.0.1" in output
    assert output.rstrip().endswith("all good")


def read_unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(EXAMPLES / "systemd" / name)
    return unit


@pytest.mark.skipif(
    SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed (Debian: systemd)"
)
def test_systemd_unit_pair_runs_under_socket_activation():
    socket_unit = read_unit("greenpoint-echo.socket")
    service = read_unit("greenpoint-echo.service")
    assert socket_unit["Socket"]["ListenStream"] == "127.0.0.1:8007"
    assert service["Unit"]["Requires"] == "greenpoint-echo.socket"
    program, script, description = shlex.split(service["Service"]["ExecStart"])
    assert (program, script) == ("/usr/bin/python3", "/opt/greenpoint/examples/echo_server.py")
    assert greenpoint.server_from_string(description).address_family == socket.AF_INET

    # Run the service's command as the socket unit would, on a free port instead of 8007.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        SOCKET_ACTIVATE,
        "-l",
        f"127.0.0.1:{port}",
        f"--fdname={socket_unit['Socket']['FileDescriptorName']}",
        f"--setenv=PYTHONPATH={child_env()['PYTHONPATH']}",
        *example("echo_server.py", description),
    ]
    with Child(command) as child:
        child.wait_for("Listening on")
        stream = greenpoint.client_from_string(f"tcp:127.0.0.1:{port}").open(timeout=10)
        with stream:
            stream.sendall(b"activated\n")
            stream.shutdown(socket.SHUT_WR)
            answer = b""
            while data := stream.recv(1024):
                answer += data
        status, out, _ = child.stop()
    assert answer == b"activated\n"
    assert status == 0
    assert b"echo server listening on 127.0.0.1:%d" % port in out


def test_http_through_proxy_via_microsocks(tmp_path):
    from _proxy_helpers import microsocks

    def http(stream, address):
        request = b""
        while b"\r\n\r\n" not in request:
            request += stream.recv(1024)
        stream.sendall(b"HTTP/1.1 204 Through the proxy\r\nContent-Length: 0\r\n\r\n")

    port = greenpoint.server_from_string("tcp:0:interface=127.0.0.1").serve(http)
    try:
        target = port.get_host().port
        with microsocks(tmp_path) as proxy:
            description = f"socks5:127.0.0.1:{target}:proxy=[tcp:127.0.0.1:{proxy}]"
            assert run_example("http_through_proxy.py", "localhost", description) == (
                "HTTP/1.1 204 Through the proxy\n"
            )
            refused = run(
                example(
                    "http_through_proxy.py", "localhost", description.replace(f":{target}:", ":1:")
                ),  # fmt: skip
                cwd=EXAMPLES,
            )
    finally:
        port.stop_listening(timeout=1)
    assert refused.returncode == 1
    assert b"refused CONNECT to 127.0.0.1:1: connection refused (reply 5)" in refused.stderr


def read_until_closed(stream) -> list[bytes]:
    lines = []
    while True:
        try:
            lines.append(read_line(stream))
        except AssertionError:  # closed: nothing more
            return lines


@pytest.mark.parametrize("script", ["greenpoint_chat.py", "twisted_chat.py"])
def test_ported_chat_behaves_as_the_twisted_original(tmp_path, script):
    """docs/porting.md's worked example: the port and the original, one conversation."""
    certs = make_certs(tmp_path)
    command = example(f"porting/{script}", "tcp:0:interface=127.0.0.1", "--idle", "1.5")
    with Child([*command, "--tls", certs.server_pem], merge=True) as child:
        port = int(child.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        endpoint = greenpoint.client_from_string(f"tcp:127.0.0.1:{port}")
        raw = endpoint.open(timeout=5)
        assert read_line(raw) == b"welcome! send STARTTLS to encrypt, or your name\n"
        raw.sendall(b"STARTTLS\r\n")
        assert read_line(raw) == b"go ahead\n"
        options = tls.options_for_client_tls("localhost", trust_root=certs.ca_file)
        with tls.wrap_client_stream(raw, options, timeout=10) as alice:
            alice.sendall(b"alice\n")
            assert read_line(alice) == b"hi alice, 0 others here\n"
            with endpoint.open(timeout=5) as bob:
                assert read_line(bob).startswith(b"welcome!")
                bob.sendall(b"bob\n")
                assert read_line(bob) == b"hi bob, 1 others here\n"
                assert read_line(alice) == b"* bob joined\n"
                bob.sendall(b"hello over clear text\n")
                assert read_line(alice) == b"bob: hello over clear text\n"
                alice.sendall(b"hello over TLS\n")
                assert read_line(bob) == b"alice: hello over TLS\n"
                # Both fall silent: TimeoutMixin drops each after 1.5 s idle.
                quiet_since = time.monotonic()
                assert b"idle too long, bye\n" in read_until_closed(bob)
                assert b"idle too long, bye\n" in read_until_closed(alice)
                assert 1.0 <= time.monotonic() - quiet_since < 10
        status, _, _ = child.stop(signal.SIGINT)
    assert status == 0
