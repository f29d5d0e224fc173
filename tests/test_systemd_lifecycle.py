"""systemd lifecycle: fallback=, Accept=yes sockets, sd_notify and the fd store."""

from __future__ import annotations

import array
import os
import shutil
import socket
import subprocess
import sys
import time

import gevent
import pytest
from gevent import socket as gsocket
from gevent.event import Event

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


# -- sd_notify and the fd store -------------------------------------------------------


def test_fd_names_are_valid_systemd_names_and_differ_per_description():
    from greenpoint.cli._fd_store import fd_name

    names = {fd_name(text) for text in ("tcp:8080", "tcp:8081", "ssl:443:privateKey=a:b")}
    assert len(names) == 3
    for name in names:
        assert ":" not in name and len(name) <= 255 and name.isprintable()


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({"NOTIFY_SOCKET": "/run/systemd/notify", "FDSTORE": "10"}, True),
        ({"NOTIFY_SOCKET": "@notify", "GREENPOINT_FDSTORE": "1"}, True),
        ({"NOTIFY_SOCKET": "/run/systemd/notify", "FDSTORE": "0"}, False),
        ({"NOTIFY_SOCKET": "/run/systemd/notify"}, False),
        ({"FDSTORE": "10"}, False),  # no one to send them to
        ({"NOTIFY_SOCKET": "/run/systemd/notify", "FDSTORE": "many"}, False),
    ],
)
def test_fd_store_only_when_systemd_keeps_descriptors(environ, wanted):
    from greenpoint.cli._fd_store import wants_fd_store

    assert wants_fd_store(environ) is wanted


def receive_notifications(sock, want, deadline):
    """Datagrams from the fake NOTIFY_SOCKET until one contains ``want``: (texts, fds)."""
    texts, fds = [], []
    while not any(want in text for text in texts):
        remaining = deadline - time.monotonic()
        assert remaining > 0, texts
        sock.settimeout(remaining)
        data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
        texts.append(data.decode())
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
    return texts, fds


def start_relay(server, client, environ, fd=None, log=None):
    return start_greenpoint(["relay", server, client], environ, fd, log)


def start_greenpoint(args, environ, fd=None, log=None, cwd=None):
    command = [sys.executable, "-m", "greenpoint", *args]
    if fd is None:
        return subprocess.Popen(command, env=environ, stdin=subprocess.DEVNULL, stderr=log, cwd=cwd)
    # As systemd does on a restart: the kept socket as fd 3, LISTEN_PID the new
    # process (this launcher's own pid, kept by exec).
    launcher = (
        "import os, sys\n"
        "os.environ['LISTEN_PID'] = str(os.getpid())\n"
        "os.dup2(int(sys.argv[1]), 3)\n"
        "os.close(int(sys.argv[1]))\n"
        "os.execv(sys.argv[2], sys.argv[2:])\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", launcher, str(fd), *command],
        env=environ,
        pass_fds=(fd,),
        stdin=subprocess.DEVNULL,
        stderr=log,
        cwd=cwd,
    )


def stop(process):
    process.terminate()
    try:
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_relay_notifies_and_a_restart_with_stored_socket_refuses_no_client(tmp_path):
    from greenpoint.cli._fd_store import fd_name

    notify_path = str(tmp_path / "notify")
    description = "tcp:0:interface=127.0.0.1"
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket,
        server_from_string("tcp:0:interface=127.0.0.1").serve(echo_once) as backend,
    ):
        notify_socket.bind(notify_path)
        environ = child_env(NOTIFY_SOCKET=notify_path, FDSTORE="4")
        first = start_relay(description, backend.client_description(), environ)
        try:
            texts, fds = receive_notifications(notify_socket, "READY=1", time.monotonic() + 20)
        except BaseException:
            first.kill()
            first.wait()
            raise
        try:
            assert f"FDSTORE=1\nFDNAME={fd_name(description)}" in texts
            assert len(fds) == 1
            kept = fds[0]
            with socket.socket(fileno=os.dup(kept)) as probe:
                address = probe.getsockname()
            with gsocket.create_connection(address, timeout=10) as client:
                client.sendall(b"before")
                assert client.recv(100) == b"BEFORE"
            stop(first)
            stopping, _ = receive_notifications(notify_socket, "STOPPING=1", time.monotonic() + 5)
            # Between the two processes: systemd (here: this test) holds the socket,
            # so a client is queued, not refused.
            second = None
            log_path = tmp_path / "second.log"
            try:
                with gsocket.create_connection(address, timeout=10) as waiting:
                    waiting.sendall(b"between")
                    with open(log_path, "wb") as log:
                        second = start_relay(
                            description,
                            backend.client_description(),
                            dict(environ, LISTEN_FDS="1", LISTEN_FDNAMES=fd_name(description)),
                            fd=kept,
                            log=log,
                        )
                    assert waiting.recv(100) == b"BETWEEN", log_path.read_text()
                # The restarted relay stores its socket again (systemd dedups it).
                texts, again = receive_notifications(
                    notify_socket, "READY=1", time.monotonic() + 20
                )
                fds.extend(again)
                assert len(again) == 1
            finally:
                if second is not None:
                    stop(second)
            assert "listening on the socket systemd kept" in log_path.read_text()
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
            for fd in fds:
                os.close(fd)


def http_get(address):
    with gsocket.create_connection(address, timeout=10) as client:
        client.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        reply = b""
        while chunk := client.recv(4096):
            reply += chunk
    return reply


def test_wsgi_stores_its_socket_and_a_restart_serves_on_it(tmp_path):
    from greenpoint.cli._fd_store import fd_name

    examples = os.path.join(ROOT, "examples")
    notify_path = str(tmp_path / "notify")
    description = "tcp:0:interface=127.0.0.1"
    args = ["wsgi", "--workers", "1", description, "hello_app:application"]
    fds = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket:
        notify_socket.bind(notify_path)
        environ = child_env(NOTIFY_SOCKET=notify_path, FDSTORE="4", WATCHDOG_USEC="")
        first = start_greenpoint(args, environ, cwd=examples)
        second = None
        try:
            texts, fds = receive_notifications(notify_socket, "READY=1", time.monotonic() + 30)
            assert f"FDSTORE=1\nFDNAME={fd_name(description)}" in texts
            with socket.socket(fileno=os.dup(fds[0])) as probe:
                address = probe.getsockname()
            assert http_get(address).startswith(b"HTTP/1.1 200")
            stop(first)
            restored = dict(environ, LISTEN_FDS="1", LISTEN_FDNAMES=fd_name(description))
            second = start_greenpoint(args, restored, fd=fds[0], cwd=examples)
            # Asked before the restarted server is ready: queued, then answered.
            assert http_get(address).startswith(b"HTTP/1.1 200")
            _, again = receive_notifications(notify_socket, "READY=1", time.monotonic() + 30)
            fds.extend(again)
            stop(second)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
            for fd in fds:
                os.close(fd)


@pytest.mark.skipif(
    SOCKET_ACTIVATE is None,
    reason="systemd-socket-activate is not installed (Debian package: systemd)",
)
def test_wsgi_refuses_an_accept_yes_socket_clearly(tmp_path):
    path = str(tmp_path / "activate.sock")
    log_path = tmp_path / "activate.log"
    with open(log_path, "wb") as log:
        activator = subprocess.Popen(
            [
                SOCKET_ACTIVATE,
                "--accept",
                "-l",
                path,
                sys.executable,
                "-m",
                "greenpoint",
                "wsgi",
                "systemd:domain=UNIX:index=0",
                "hello_app:application",
            ],
            env=child_env(),
            cwd=os.path.join(ROOT, "examples"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        client = connect_unix_with_retry(path, time.monotonic() + 10)
        with client, gevent.Timeout(15):
            assert client.recv(100) == b""  # closed when the child exits
        deadline = time.monotonic() + 15
        while b"died with code" not in log_path.read_bytes():
            assert time.monotonic() < deadline, log_path.read_text()
            gevent.sleep(0.05)
    finally:
        activator.terminate()
        activator.wait(timeout=10)
    assert "use Accept=no for greenpoint wsgi" in log_path.read_text()


def wait_exit(process, timeout):
    """Wait for ``process`` without blocking the hub (the backend runs in it)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        assert time.monotonic() < deadline, "the process did not exit"
        gevent.sleep(0.02)
    return process.returncode


@pytest.mark.load
@pytest.mark.timeout(120)
def test_restart_under_load_with_the_fd_store_refuses_no_client(tmp_path):
    from greenpoint.cli._fd_store import fd_name

    notify_path = str(tmp_path / "notify")
    description = "tcp:0:interface=127.0.0.1"
    counts = {"ok": 0, "refused": 0, "other": 0}
    stop_clients = Event()

    def client_loop(address):
        while not stop_clients.is_set():
            try:
                with gsocket.create_connection(address, timeout=20) as client:
                    client.sendall(b"x")
                    if client.recv(10) == b"X":
                        counts["ok"] += 1
                    else:
                        counts["other"] += 1
            except ConnectionRefusedError:
                counts["refused"] += 1
            except OSError:
                counts["other"] += 1

    fds = []
    processes = []
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket,
        server_from_string("tcp:0:interface=127.0.0.1").serve(echo_once) as backend,
    ):
        notify_socket.bind(notify_path)
        environ = child_env(NOTIFY_SOCKET=notify_path, FDSTORE="4")
        try:
            processes.append(start_relay(description, backend.client_description(), environ))
            _, fds = receive_notifications(notify_socket, "READY=1", time.monotonic() + 20)
            with socket.socket(fileno=os.dup(fds[0])) as probe:
                address = probe.getsockname()
            clients = [gevent.spawn(client_loop, address) for _ in range(8)]
            restored = dict(environ, LISTEN_FDS="1", LISTEN_FDNAMES=fd_name(description))
            for _ in range(3):  # three restarts while clients keep connecting
                gevent.sleep(0.5)  # the behaviour: clients connect meanwhile
                processes[-1].terminate()
                assert wait_exit(processes[-1], 30) == 0
                processes.append(
                    start_relay(description, backend.client_description(), restored, fd=fds[0])
                )
                _, again = receive_notifications(notify_socket, "READY=1", time.monotonic() + 20)
                fds.extend(again)
            gevent.sleep(0.5)  # the behaviour: clients connect meanwhile
            stop_clients.set()
            gevent.joinall(clients, timeout=30)
        finally:
            stop_clients.set()
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            for fd in fds:
                os.close(fd)
    assert counts["refused"] == 0, counts
    assert counts["other"] == 0, counts
    assert counts["ok"] > 50, counts
