"""systemd lifecycle: fallback=, Accept=yes sockets, sd_notify and the fd store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import gevent
import pytest
from gevent import socket as gsocket

from greenpoint import client_from_string, server_from_string
from greenpoint._one_connection import OneConnectionListener
from greenpoint._serve import ListeningPort
from greenpoint.endpoints.adopted import SystemdServerEndpoint, _adopt_connected
from greenpoint.errors import DescriptionError, ListenError

pytestmark = pytest.mark.timeout(30)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
LISTEN_KEYS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


@pytest.fixture
def clean_environ(monkeypatch):
    for key in (*LISTEN_KEYS, "NOTIFY_SOCKET", "FDSTORE"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def echo_once(stream, address):
    with stream:
        stream.sendall(stream.recv(100).upper())


# -- fallback= ------------------------------------------------------------------------


def test_fallback_round_trips_and_bad_fallback_names_the_key():
    endpoint = server_from_string("systemd:domain=INET:index=0:fallback=[tcp:0]")
    assert isinstance(endpoint, SystemdServerEndpoint)
    assert server_from_string(str(endpoint)) == endpoint
    with pytest.raises(DescriptionError) as info:
        server_from_string("systemd:domain=INET:index=0:fallback=[tpc:8080]")
    assert info.value.parameter == "fallback"
    assert "did you mean 'tcp'" in str(info.value)


@pytest.mark.parametrize(
    "environ",
    [
        {},  # not socket-activated at all
        {"LISTEN_PID": "1", "LISTEN_FDS": "1"},  # the sockets were another process's
        {"LISTEN_FDS": "1"},  # no LISTEN_PID: nothing can be trusted
    ],
)
def test_fallback_listens_when_not_socket_activated(clean_environ, environ):
    for key, value in environ.items():
        clean_environ.setenv(key, value)
    endpoint = server_from_string("systemd:domain=INET:name=web:fallback=[tcp:0]")
    with endpoint.serve(echo_once) as port:
        description = port.client_description()
        assert description.startswith("tcp:127.0.0.1:")
        with client_from_string(description).open(timeout=5) as stream:
            stream.sendall(b"dev")
            assert stream.recv(100) == b"DEV"


def test_fallback_is_not_used_when_activated_without_the_socket(clean_environ):
    # Activated (LISTEN_PID is us) but the unit passes no socket named web: that is
    # a broken unit, not development, so it must not quietly listen elsewhere.
    clean_environ.setenv("LISTEN_PID", str(os.getpid()))
    clean_environ.setenv("LISTEN_FDS", "0")
    endpoint = server_from_string("systemd:domain=INET:name=web:fallback=[tcp:0]")
    with pytest.raises(ListenError, match="no socket with name 'web'"):
        endpoint.bind()


# -- Accept=yes: a connected socket ---------------------------------------------------


def connected_pair():
    with gsocket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = gsocket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def test_connected_socket_is_served_as_one_connection_then_the_port_stops():
    client, server = connected_pair()
    fd = server.detach()
    listener = _adopt_connected(fd, socket.AF_INET)
    assert isinstance(listener, OneConnectionListener)
    peers = []

    def handler(stream, address):
        peers.append(address)
        echo_once(stream, address)

    with client:
        port = ListeningPort.start(listener, handler)
        client.sendall(b"once")
        assert client.recv(100) == b"ONCE"
        with gevent.Timeout(5):
            port.serve_forever()  # returns by itself: the one connection ended
        assert client.recv(100) == b""  # closed by the port
        assert [(peer.host, peer.port) for peer in peers] == [client.getsockname()]


def test_unconnected_unlistening_socket_is_refused():
    sock = socket.socket()
    fd = sock.detach()
    try:
        with pytest.raises(ListenError, match="neither listening nor connected"):
            _adopt_connected(fd, socket.AF_INET)
    finally:
        os.close(fd)


def child_env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT, **extra)
    for key in (*LISTEN_KEYS, "NOTIFY_SOCKET", "FDSTORE"):
        env.pop(key, None)
    env.update(extra)
    return env


def connect_unix_with_retry(path, deadline):
    while True:
        sock = gsocket.socket(socket.AF_UNIX)  # the backend runs in this process's hub
        sock.settimeout(10)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            gevent.sleep(0.05)


@pytest.mark.skipif(
    SOCKET_ACTIVATE is None,
    reason="systemd-socket-activate is not installed (Debian package: systemd)",
)
def test_real_accept_yes_relay_serves_one_connection_and_exits(tmp_path):
    # systemd-socket-activate --accept accepts itself and starts one relay per
    # connection with the connected socket as fd 3, as an Accept=yes unit does.
    with server_from_string("tcp:0:interface=127.0.0.1").serve(echo_once) as backend:
        path = str(tmp_path / "activate.sock")
        log_path = tmp_path / "activate.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
        activator = subprocess.Popen(
            [
                SOCKET_ACTIVATE,
                "--accept",
                "-l",
                path,
                sys.executable,
                "-m",
                "greenpoint",
                "relay",
                "systemd:domain=UNIX:index=0",
                backend.client_description(),
            ],
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            replies = []
            for word in (b"first", b"second"):  # each connection gets its own relay
                client = connect_unix_with_retry(path, time.monotonic() + 10)
                with client:
                    client.sendall(word)
                    reply = b""
                    with gevent.Timeout(15):
                        while True:
                            chunk = client.recv(100)
                            if not chunk:
                                break
                            reply += chunk
                    replies.append(reply)
            # Each relay exits by itself once its connection ended (a relay that
            # waited for a signal would never be reaped).
            deadline = time.monotonic() + 15
            while log_path.read_bytes().count(b"died with code 0") < 2:
                assert time.monotonic() < deadline, log_path.read_text()
                gevent.sleep(0.05)
        finally:
            activator.terminate()
            activator.wait(timeout=10)
            log.close()
        assert replies == [b"FIRST", b"SECOND"], log_path.read_text()
        assert backend.stats.accepted == 2
