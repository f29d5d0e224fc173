"""StandardIOEndpoint / stdio: — this process's stdin and stdout as one stream.

The servers run in child Python processes (started with ProcessEndpoint) so that
taking over fds 0 and 1 never touches the test runner's own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import textwrap

import gevent
import pytest
from _net_helpers import read_all
from gevent import subprocess as gsubprocess

import greenpoint
from greenpoint import (
    ConnectionDone,
    DescriptionError,
    ProcessEndpoint,
    StandardIOEndpoint,
    server_from_string,
)
from greenpoint.endpoints import stdio

pytestmark = pytest.mark.timeout(30)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ECHO_SERVER = textwrap.dedent(
    """
    import errno, sys
    sys.path.insert(0, sys.argv[1])
    import gevent, greenpoint

    listener = greenpoint.server_from_string("stdio:").bind()
    print("stray print after bind")  # must land on stderr, not in the stream
    stream, address = listener.accept()
    assert address == greenpoint.PipeAddress("stdio"), address
    while True:
        data = stream.recv(65536)
        if not data:
            break
        stream.sendall(data)
    stream.close()

    second = gevent.spawn(listener.accept)
    gevent.idle()  # every greenlet has run: the second accept waits or has returned
    print("second accept waiting:", not second.ready(), file=sys.stderr)
    listener.close()
    try:
        second.get(timeout=2)
    except OSError as exc:
        print("second accept after close: EBADF", exc.errno == errno.EBADF, file=sys.stderr)
    try:
        greenpoint.StandardIOEndpoint().bind()
    except greenpoint.errors.ListenError as exc:
        print("bind again:", exc, file=sys.stderr)
    """
)

# Answers one line, shuts down its writing side, then keeps reading until EOF:
# the peer must see EOF at the shutdown, while the descriptors are still open.
HALF_CLOSE_SERVER = textwrap.dedent(
    """
    import socket, sys
    if sys.argv[2:] == ["monkey-patched"]:
        from gevent import monkey
        monkey.patch_all()
    sys.path.insert(0, sys.argv[1])
    import greenpoint

    stream, _ = greenpoint.StandardIOEndpoint().bind().accept()
    line = b""
    while not line.endswith(b"\\n"):
        line += stream.recv(1)
    stream.sendall(b"got " + line)
    stream.shutdown(socket.SHUT_WR)
    rest = b""
    while chunk := stream.recv(100):
        rest += chunk
    assert rest == b"after your EOF", rest
    stream.close()
    """
)


def python_child(script: str, *args: str, **options) -> ProcessEndpoint:
    argv = (sys.executable, "-c", script, REPO, *args)
    return ProcessEndpoint(sys.executable, argv, **options)


def stderr_lines(caplog) -> list[str]:
    return [
        record.getMessage().split("wrote to stderr: ", 1)[1]
        for record in caplog.records
        if record.name == "greenpoint.process"
    ]


def test_stdio_server_echoes_and_stray_prints_go_to_stderr(caplog):
    caplog.set_level(logging.WARNING, logger="greenpoint.process")
    data = os.urandom(2 * 1024 * 1024)
    with python_child(ECHO_SERVER).open() as stream:

        def write():
            stream.sendall(data)
            stream.shutdown(socket.SHUT_WR)

        writer = gevent.spawn(write)
        echoed = read_all(stream)
        writer.get(timeout=10)
        reason = stream.exit_reason(timeout=10)
        stream.stderr_logger.join(timeout=5)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
    assert isinstance(reason, ConnectionDone), stderr_lines(caplog)
    lines = stderr_lines(caplog)
    assert "stray print after bind" in lines
    assert "second accept waiting: True" in lines
    assert "second accept after close: EBADF True" in lines
    assert any(line.startswith("bind again:") and "already used" in line for line in lines)


@pytest.mark.parametrize("patching", ["plain", "monkey-patched"])
def test_shutdown_wr_gives_the_peer_eof_while_stdio_stays_open_for_reading(patching):
    with python_child(HALF_CLOSE_SERVER, patching, err_flag="inherit").open() as stream:
        stream.sendall(b"hello\n")
        with gevent.Timeout(10):
            assert read_all(stream) == b"got hello\n"
        stream.sendall(b"after your EOF")
        stream.shutdown(socket.SHUT_WR)
        assert isinstance(stream.exit_reason(timeout=10), ConnectionDone)


def test_stdio_on_one_socket_as_inetd_gives_it():
    # inetd (and systemd Accept=yes) pass one connected socket as both fd 0 and 1.
    ours, theirs = socket.socketpair()
    try:
        child = gsubprocess.Popen(
            [sys.executable, "-c", HALF_CLOSE_SERVER, REPO],
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
        )
        theirs.close()
        ours.settimeout(10)
        ours.sendall(b"over a socket\n")
        received = b""
        while chunk := ours.recv(100):  # ends only if shutdown(SHUT_WR) sent a FIN
            received += chunk
        assert received == b"got over a socket\n"
        ours.sendall(b"after your EOF")
        ours.shutdown(socket.SHUT_WR)
        assert child.wait(timeout=10) == 0
    finally:
        ours.close()
        theirs.close()


# -- in this process: only bind() and close(), which give fds 0 and 1 back ----------


def test_closing_an_unaccepted_listener_restores_fds_0_and_1():
    def targets():
        return tuple(os.readlink(f"/proc/self/fd/{fd}") for fd in (0, 1, 2))

    before = targets()
    before_blocking = os.get_blocking(1)
    listener = StandardIOEndpoint().bind()
    try:
        during = targets()
        assert during[0] == os.devnull
        assert during[1] == before[2]  # stray output goes to stderr
        assert listener.fileno() >= 0
        assert listener.get_host() == greenpoint.PipeAddress("stdio")
        with pytest.raises(greenpoint.errors.ListenError, match="already bound"):
            StandardIOEndpoint().bind()
    finally:
        listener.close()
    assert targets() == before
    assert os.get_blocking(1) == before_blocking
    with pytest.raises(OSError):
        listener.accept()
    # stdio is free again
    StandardIOEndpoint().bind().close()
    assert targets() == before


# -- descriptions ----------------------------------------------------------------------


@pytest.mark.parametrize("description", ["stdio", "stdio:", "STDIO:", b"stdio:"])
def test_stdio_descriptions(description):
    assert server_from_string(description) == StandardIOEndpoint()


def test_str_round_trips():
    endpoint = StandardIOEndpoint()
    assert server_from_string(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    ("description", "parameter", "words"),
    [
        ("stdio:bogus=1", "bogus", "no parameters, but bogus= was given"),
        ("stdio:x", None, "no arguments"),
        ("stdio::", None, "no arguments"),
    ],
)
def test_stdio_rejects_every_argument(description, parameter, words):
    # Twisted accepts and ignores them all; a typo should not pass silently.
    with pytest.raises(DescriptionError, match=words) as caught:
        server_from_string(description)
    assert caught.value.prefix == "stdio"
    assert caught.value.parameter == parameter


def test_parser_is_registered_for_stdio():
    assert set(stdio.SERVER_PARSERS) == {"stdio"}
    assert issubclass(StandardIOEndpoint, greenpoint.ServerEndpoint)
