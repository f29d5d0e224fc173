"""Adopted listening sockets (``fd:``) and systemd socket activation (``systemd:``)."""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import shutil
import socket
import subprocess
import sys
import time

import gevent
import pytest
from _fd_reuse_helpers import fail_watchers
from gevent import socket as gsocket

import greenpoint
from greenpoint import AdoptedStreamServerEndpoint, server_from_string
from greenpoint.endpoints.adopted import SystemdServerEndpoint
from greenpoint.errors import AlreadyListenedError, DescriptionError, ListenError

pytestmark = pytest.mark.timeout(30)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def listening_socket(family=socket.AF_INET, address=("127.0.0.1", 0)):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(address)
    sock.listen(5)
    return sock


def cloexec(fd):
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


def echo_once(listener, connect_to, family=socket.AF_INET):
    def serve():
        conn, _ = listener.accept()
        try:
            conn.sendall(b"echo:" + conn.recv(1024))
        finally:
            conn.close()

    server = gevent.spawn(serve)
    client = gsocket.socket(family, socket.SOCK_STREAM)
    try:
        client.settimeout(5)
        client.connect(connect_to)
        client.sendall(b"hi")
        reply = client.recv(1024)
    finally:
        client.close()
    server.get(timeout=5)
    return reply


# -- adopting a descriptor ---------------------------------------------------------


def test_adopt_a_listening_tcp_socket():
    original = listening_socket()
    address = original.getsockname()
    fd = original.detach()
    os.set_inheritable(fd, True)  # as systemd hands it over
    listener = AdoptedStreamServerEndpoint(fd, socket.AF_INET).bind()
    try:
        assert listener.fileno() == fd  # the same descriptor, now owned by the listener
        assert listener.family == socket.AF_INET
        assert listener.getsockname() == address
        assert cloexec(fd)
        assert echo_once(listener, address) == b"echo:hi"
    finally:
        listener.close()
    with pytest.raises(OSError):
        os.fstat(fd)  # closing the listener closed the descriptor


def test_adopt_a_listening_unix_socket(tmp_path):
    path = str(tmp_path / "a.sock")
    fd = listening_socket(socket.AF_UNIX, path).detach()
    listener = server_from_string(f"fd:{fd}:domain=unix").bind()
    try:
        assert listener.family == socket.AF_UNIX
        assert echo_once(listener, path, socket.AF_UNIX) == b"echo:hi"
    finally:
        listener.close()


def test_adopt_a_listening_ipv6_socket():
    try:
        original = listening_socket(socket.AF_INET6, ("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    address = original.getsockname()
    listener = AdoptedStreamServerEndpoint(original.detach(), socket.AF_INET6).bind()
    try:
        assert echo_once(listener, address, socket.AF_INET6) == b"echo:hi"
    finally:
        listener.close()


def test_second_bind_raises_already_listened():
    endpoint = AdoptedStreamServerEndpoint(listening_socket().detach(), socket.AF_INET)
    listener = endpoint.bind()
    try:
        with pytest.raises(AlreadyListenedError) as info:
            endpoint.bind()
        assert str(endpoint.fileno) in str(info.value)
        assert not listener.closed
    finally:
        listener.close()


def test_a_failed_adoption_leaves_the_descriptor_open_and_the_callers(monkeypatch):
    # gevent's socket wraps the descriptor before making its watchers; when that
    # fails, the half-made socket must not close it later (a retry, or whoever
    # gave it, still owns it).
    fd = listening_socket().detach()
    endpoint = AdoptedStreamServerEndpoint(fd, socket.AF_INET)
    fail_watchers(monkeypatch)
    with pytest.raises(OSError) as caught:
        endpoint.bind()
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOMEM
    del caught
    gc.collect()
    os.fstat(fd)  # still open
    listener = endpoint.bind()  # and adoptable
    listener.close()


@pytest.mark.parametrize(
    "make, declared, words",
    [
        (lambda: listening_socket(), socket.AF_INET6, ["AF_INET6", "AF_INET"]),
        (lambda: listening_socket(), socket.AF_UNIX, ["AF_UNIX", "AF_INET"]),
        (
            lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            socket.AF_INET,
            ["SOCK_STREAM", "SOCK_DGRAM"],
        ),
        (
            lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
            socket.AF_INET,
            ["not listening"],
        ),
    ],
)
def test_adopting_the_wrong_kind_of_socket_says_what_it_is(make, declared, words):
    sock = make()
    try:
        endpoint = AdoptedStreamServerEndpoint(sock.fileno(), declared)
        with pytest.raises(ListenError) as info:
            endpoint.bind()
        for word in words:
            assert word in str(info.value)
        assert f"fd {sock.fileno()}" in str(info.value)
        # The descriptor was not taken: it is still open, and still the caller's.
        os.fstat(sock.fileno())
    finally:
        sock.close()


def test_adopting_a_pipe_is_refused():
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(ListenError) as info:
            AdoptedStreamServerEndpoint(read_end, socket.AF_INET).bind()
        assert info.value.errno == errno.ENOTSOCK
        os.fstat(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_adopting_a_closed_descriptor_is_refused():
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    with pytest.raises(ListenError) as info:
        AdoptedStreamServerEndpoint(read_end, socket.AF_INET).bind()
    assert info.value.errno == errno.EBADF


def test_bad_fileno_is_refused_at_construction():
    for bad in (-1, "3", True):
        with pytest.raises(ValueError):
            AdoptedStreamServerEndpoint(bad, socket.AF_INET)


# -- descriptions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "description, expected",
    [
        ("fd:3:domain=INET", AdoptedStreamServerEndpoint(3, socket.AF_INET)),
        ("FD:fileno=4:domain=inet6", AdoptedStreamServerEndpoint(4, socket.AF_INET6)),
        ("fd:5:domain=Unix", AdoptedStreamServerEndpoint(5, socket.AF_UNIX)),
        ("systemd:domain=INET:index=0", SystemdServerEndpoint("INET", index=0)),
        ("systemd:domain=inet6:index=2", SystemdServerEndpoint("INET6", index=2)),
        ("SYSTEMD:domain=unix:name=web", SystemdServerEndpoint("UNIX", name="web")),
        (r"systemd:domain=INET:name=a\:b", SystemdServerEndpoint("INET", name="a:b")),
    ],
)
def test_descriptions(description, expected):
    endpoint = server_from_string(description)
    assert endpoint == expected
    assert server_from_string(str(endpoint)) == endpoint


def test_printed_descriptions():
    assert str(AdoptedStreamServerEndpoint(3, socket.AF_INET6)) == "fd:3:domain=INET6"
    assert str(SystemdServerEndpoint("inet", index=0)) == "systemd:domain=INET:index=0"
    assert str(SystemdServerEndpoint("UNIX", name="web")) == "systemd:domain=UNIX:name=web"


@pytest.mark.parametrize(
    "description, parameter, words",
    [
        ("fd:3", "domain", ["missing domain"]),
        ("fd:domain=INET", "fileno", ["missing fileno"]),
        ("fd:x:domain=INET", "fileno", ["whole number"]),
        ("fd:-1:domain=INET", "fileno", ["at least 0"]),
        ("fd:3:domain=IPX", "domain", ["INET, INET6, UNIX"]),
        ("systemd:index=0", "domain", ["missing domain"]),
        ("systemd:domain=INET", "name", ["exactly one", "neither"]),
        ("systemd:domain=INET:index=0:name=web", "index", ["exactly one", "both"]),
        ("systemd:domain=INET:index=-1", "index", ["at least 0"]),
        ("systemd:domain=INET:index=first", "index", ["whole number"]),
        ("systemd:domain=INET:index=0:idx=1", "idx", ["did you mean 'index'"]),
        ("systemd:domain=AF_INET:index=0", "domain", ["INET, INET6, UNIX"]),
        # Positional as in Twisted (domain, index, name): "0" is read as the domain.
        ("systemd:0", "domain", ["expected one of INET, INET6, UNIX"]),
        ("systemd:INET:0:web:x", None, ["too many positional"]),
    ],
)
def test_bad_descriptions(description, parameter, words):
    with pytest.raises(DescriptionError) as info:
        server_from_string(description)
    assert info.value.parameter == parameter
    for word in words:
        assert word in str(info.value)


def test_public_names():
    assert greenpoint.AdoptedStreamServerEndpoint is AdoptedStreamServerEndpoint


# -- systemd: errors from the environment (no descriptor is touched) -----------------


@pytest.mark.parametrize(
    "environ, description, words",
    [
        ({}, "systemd:domain=INET:index=0", ["LISTEN_FDS is not set", "no sockets"]),
        (
            {"LISTEN_PID": "1", "LISTEN_FDS": "1"},
            "systemd:domain=INET:index=0",
            ["LISTEN_PID=1 is not this process"],
        ),
        (
            {"LISTEN_PID": "{pid}", "LISTEN_FDS": "1"},
            "systemd:domain=INET:index=3",
            ["index 3", "1 socket was passed (fd 3 unnamed)"],
        ),
        (
            {"LISTEN_PID": "{pid}", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:admin"},
            "systemd:domain=INET:name=api",
            ["name 'api'", "fd 3 'web', fd 4 'admin'"],
        ),
        (
            {"LISTEN_PID": "{pid}", "LISTEN_FDS": "1"},
            "systemd:domain=INET:name=web",
            ["name 'web'", "fd 3 unnamed"],
        ),
    ],
)
def test_systemd_bind_says_what_was_passed(monkeypatch, environ, description, words):
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value.format(pid=os.getpid()))
    endpoint = server_from_string(description)  # parsing reads nothing
    with pytest.raises(ListenError) as info:
        endpoint.bind()
    for word in words:
        assert word in str(info.value)
    assert description in str(info.value)


def test_systemd_environment_is_read_at_bind_not_at_parse(monkeypatch):
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        monkeypatch.delenv(key, raising=False)
    endpoint = server_from_string("systemd:domain=INET:name=web")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_FDNAMES", "api")
    with pytest.raises(ListenError) as info:
        endpoint.bind()
    assert "fd 3 'api'" in str(info.value)  # the environment as it is now


# -- a real systemd-socket-activate ---------------------------------------------------

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")

# The activated child: binds the description it is given, echoes one connection,
# and reports what it saw on stdout.
CHILD = """
import fcntl, os, sys
import greenpoint
from greenpoint.errors import AlreadyListenedError, ListenError

description = sys.argv[1]
wrong = description.replace("domain=INET", "domain=INET6")
try:
    greenpoint.server_from_string(wrong).bind()
    print("wrong-domain: bound")
except ListenError as exc:
    print("wrong-domain:", exc)
listener = greenpoint.server_from_string(description).bind()
print("fd:", listener.fileno())
print("cloexec:", bool(fcntl.fcntl(listener.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC))
conn, _ = listener.accept()
conn.sendall(b"echo:" + conn.recv(1024))
conn.close()
try:
    greenpoint.server_from_string(description).bind()
    print("again: bound")
except AlreadyListenedError:
    print("again: AlreadyListenedError")
listener.close()
print("environment kept:", os.environ.get("LISTEN_PID") == str(os.getpid()))
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connect_with_retry(port, deadline):
    while True:
        sock = socket.socket()
        sock.settimeout(10)
        try:
            sock.connect(("127.0.0.1", port))
            return sock
        except ConnectionRefusedError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.skipif(
    SOCKET_ACTIVATE is None,
    reason="systemd-socket-activate is not installed (Debian package: systemd)",
)
@pytest.mark.parametrize(
    "extra_args, description",
    [
        ([], "systemd:domain=INET:index=0"),
        (["--fdname=web"], "systemd:domain=INET:name=web"),
    ],
)
def test_real_systemd_socket_activate(extra_args, description):
    port = free_port()
    child_env = dict(os.environ, PYTHONPATH=ROOT)
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        child_env.pop(key, None)
    command = [
        SOCKET_ACTIVATE,
        "-l",
        f"127.0.0.1:{port}",
        *extra_args,
        sys.executable,
        "-c",
        CHILD,
        description,
    ]
    child = subprocess.Popen(
        command,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The first connection makes systemd-socket-activate exec the child, which
        # then accepts it from the passed listening socket.
        client = connect_with_retry(port, time.monotonic() + 10)
        try:
            client.sendall(b"activated")
            reply = client.recv(1024)
        finally:
            client.close()
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert reply == b"echo:activated"
    lines = out.splitlines()
    assert "wrong-domain: " in lines[0] and "AF_INET6" in lines[0] and "AF_INET" in lines[0], out
    assert lines[1:] == [
        "fd: 3",
        "cloexec: True",
        "again: AlreadyListenedError",
        "environment kept: True",
    ], out
