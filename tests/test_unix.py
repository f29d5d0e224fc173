"""UNIX socket endpoints: round trips, stale files, PID locks, modes, abstract names."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import subprocess
import sys
import threading
import uuid

import gevent
import pytest
from gevent import socket as gsocket

import greenpoint
from greenpoint import (
    UNIXAddress,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    client_from_string,
    server_from_string,
)
from greenpoint.endpoints import unix as unix_module
from greenpoint.errors import (
    ConnectError,
    ConnectRefusedError,
    ConnectTimeoutError,
    DescriptionError,
    ListenError,
)

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "s.sock")


@pytest.fixture
def umask():
    """Set the process umask for one test, and put it back."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_(value):
        os.umask(value)

    yield set_
    os.umask(saved)


def serve_echo_once(listener):
    """Accept one connection on ``listener`` and echo what it reads, in a greenlet."""

    def run():
        conn, _ = listener.accept()
        try:
            data = conn.recv(1024)
            conn.sendall(b"echo:" + data)
        finally:
            conn.close()

    return gevent.spawn(run)


def round_trip(client, listener, payload=b"hello"):
    server = serve_echo_once(listener)
    conn = client.open(timeout=5)
    try:
        conn.sendall(payload)
        reply = conn.recv(1024)
    finally:
        conn.close()
    server.get(timeout=5)
    return reply


def leave_stale_socket(path):
    """A socket file whose server is gone: bound, never listened on, closed."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def dead_pid():
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def live_child():
    child = subprocess.Popen(["sleep", "30"])
    yield child.pid
    child.kill()
    child.wait()


# -- round trips -----------------------------------------------------------------


def test_round_trip_over_a_unix_socket(path):
    listener = UNIXServerEndpoint(path).bind()
    try:
        assert listener.family == socket.AF_UNIX
        assert listener.getsockname() == path
        assert listener.get_host() == UNIXAddress(path)
        reply = round_trip(UNIXClientEndpoint(path), listener)
    finally:
        listener.close()
    assert reply == b"echo:hello"


def test_closing_the_listener_removes_the_socket_file_and_lock(path):
    listener = UNIXServerEndpoint(path, want_pid=True).bind()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert os.readlink(path + ".lock") == str(os.getpid())
    listener.close()
    listener.close()  # twice is harmless
    assert not os.path.lexists(path)
    assert not os.path.lexists(path + ".lock")
    assert listener.closed


def test_close_leaves_a_successors_socket_alone(path):
    first = UNIXServerEndpoint(path).bind()
    os.unlink(path)  # e.g. an operator cleaned up, and a new server started
    second = UNIXServerEndpoint(path).bind()
    try:
        first.close()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert round_trip(UNIXClientEndpoint(path), second) == b"echo:hello"
    finally:
        second.close()


def test_listener_is_a_context_manager(path):
    with UNIXServerEndpoint(path).bind() as listener:
        assert os.path.exists(path)
        assert "listening" in repr(listener)
    assert not os.path.exists(path)


def test_connect_to_a_missing_path_fails_clearly(path):
    with pytest.raises(ConnectError) as info:
        UNIXClientEndpoint(path).open()
    assert info.value.errno == errno.ENOENT
    assert path in str(info.value)


def test_connect_where_nobody_listens_is_refused(path):
    leave_stale_socket(path)
    with pytest.raises(ConnectRefusedError) as info:
        UNIXClientEndpoint(path).open()
    assert path in str(info.value)


def full_listener(path):
    """A live listener whose accept queue is full: a new connect() waits."""
    sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(0)
    queued = []
    # One queued connection fills a backlog of 0 (Linux accepts len > backlog).
    for _ in range(2):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.setblocking(False)
        try:
            client.connect(path)
        except BlockingIOError:
            client.close()
            break
        queued.append(client)
    return sock, queued


def test_open_timeout_bounds_a_connect_that_waits(path):
    sock, queued = full_listener(path)
    try:
        with pytest.raises(ConnectTimeoutError):
            UNIXClientEndpoint(path, timeout=30).open(timeout=0.2)
    finally:
        for client in queued:
            client.close()
        sock.close()


# -- stale and live socket files --------------------------------------------------


def test_stale_socket_file_is_removed_and_bind_retried(path):
    leave_stale_socket(path)
    listener = UNIXServerEndpoint(path).bind()
    try:
        assert round_trip(UNIXClientEndpoint(path), listener) == b"echo:hello"
    finally:
        listener.close()


def test_live_socket_is_not_taken_over(path):
    first = UNIXServerEndpoint(path).bind()
    try:
        with pytest.raises(ListenError) as info:
            UNIXServerEndpoint(path).bind()
        assert info.value.errno == errno.EADDRINUSE
        assert path in str(info.value)
        assert "EADDRINUSE" in str(info.value)
        assert "listening there" in str(info.value)
        # To tell, the second endpoint connected once and hung up at once: the first
        # server sees that probe as an empty connection, then carries on.
        probe, _ = first.accept()
        assert probe.recv(16) == b""
        probe.close()
        assert round_trip(UNIXClientEndpoint(path), first) == b"echo:hello"
    finally:
        first.close()


def test_busy_live_socket_is_never_removed(path, monkeypatch):
    # A live server whose queue is full cannot answer the probe: keep its socket.
    monkeypatch.setattr(unix_module, "STALE_PROBE_TIMEOUT", 0.2)
    sock, queued = full_listener(path)
    try:
        before = os.lstat(path).st_ino
        with pytest.raises(ListenError) as info:
            UNIXServerEndpoint(path).bind()
        assert info.value.errno == errno.EADDRINUSE
        assert "cannot tell" in str(info.value)
        assert os.lstat(path).st_ino == before
    finally:
        for client in queued:
            client.close()
        sock.close()


def test_socket_bound_but_not_yet_listening_is_not_removed(path):
    # A server between bind() and listen() refuses connections just as a stale file
    # does; taking its path would leave it listening where nobody can reach it.
    first = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        first.bind(path)
        before = os.lstat(path).st_ino
        with pytest.raises(ListenError) as info:
            UNIXServerEndpoint(path).bind()
        assert info.value.errno == errno.EADDRINUSE
        assert path in str(info.value)
        assert "another process has a socket bound there" in str(info.value)
        assert os.lstat(path).st_ino == before
        first.listen(1)  # however late it gets there, the first server is reachable
        assert round_trip(UNIXClientEndpoint(path), first) == b"echo:hello"
    finally:
        first.close()


LATE_LISTENER = """
import socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(sys.argv[1])
print("bound", flush=True)
sys.stdin.readline()
sock.listen(1)
print("listening", flush=True)
conn, _ = sock.accept()
conn.sendall(b"echo:" + conn.recv(1024))
conn.close()
sock.close()
"""


def test_another_process_between_bind_and_listen_keeps_its_socket(tmp_path, path):
    # The other process binds by a path relative to its own working directory:
    # the check goes by the file, not by the name the socket was bound with.
    child = subprocess.Popen(
        [sys.executable, "-c", LATE_LISTENER, os.path.basename(path)],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "bound\n"
        with pytest.raises(ListenError) as info:
            UNIXServerEndpoint(path).bind()
        assert info.value.errno == errno.EADDRINUSE
        assert path in str(info.value)
        assert "another process" in str(info.value)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "listening\n"
        conn = UNIXClientEndpoint(path).open(timeout=5)
        try:
            conn.sendall(b"hi")
            assert conn.recv(1024) == b"echo:hi"
        finally:
            conn.close()
        assert child.wait(timeout=10) == 0
    finally:
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()


def test_a_server_that_listens_during_the_recheck_keeps_its_socket(path, monkeypatch):
    # Where the datagram question cannot be asked, the second look is the guard.
    monkeypatch.setattr(unix_module, "_socket_bound_to", lambda path: None, raising=False)
    monkeypatch.setattr(unix_module, "STALE_RECHECK_DELAY", 0.5, raising=False)
    first = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        first.bind(path)
        late = gevent.spawn_later(0.02, first.listen, 1)
        with pytest.raises(ListenError) as info:
            UNIXServerEndpoint(path).bind()
        late.get(timeout=5)
        assert info.value.errno == errno.EADDRINUSE
        assert path in str(info.value)
        assert "another process is listening there" in str(info.value)
        probe, _ = first.accept()  # the second look connected, and hung up
        assert probe.recv(16) == b""
        probe.close()
        assert round_trip(UNIXClientEndpoint(path), first) == b"echo:hello"
    finally:
        first.close()


def test_stale_socket_is_removed_without_the_datagram_question(path, monkeypatch):
    monkeypatch.setattr(unix_module, "_socket_bound_to", lambda path: None, raising=False)
    leave_stale_socket(path)
    listener = UNIXServerEndpoint(path).bind()
    try:
        assert round_trip(UNIXClientEndpoint(path), listener) == b"echo:hello"
    finally:
        listener.close()


def test_second_look_waits_for_another_clearer_and_sees_its_socket(tmp_path, path, monkeypatch):
    # Two servers clear one stale file at once. The second must look again only
    # once the first has removed the file and bound its own, and leave that alone.
    monkeypatch.setattr(unix_module, "STALE_LOCK_WAIT", 10.0, raising=False)
    leave_stale_socket(path)
    lock = os.open(tmp_path, os.O_RDONLY)
    winner = None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first clearer, between look and bind
        loser = gevent.spawn(UNIXServerEndpoint(path).bind)
        gevent.sleep(0.3)
        assert not loser.ready()  # waiting for the lock
        os.unlink(path)
        winner = UNIXServerEndpoint(path).bind()
        fcntl.flock(lock, fcntl.LOCK_UN)
        with pytest.raises(ListenError) as info:
            loser.get(timeout=10)
        assert "another process is listening there" in str(info.value)
        probe, _ = winner.accept()  # the loser's look
        probe.close()
        assert round_trip(UNIXClientEndpoint(path), winner) == b"echo:hello"
    finally:
        os.close(lock)
        if winner is not None:
            winner.close()


def test_socket_bound_to_tells_a_dead_file_from_a_live_socket(path):
    # The kernel behaviour the stale check relies on, on this platform.
    assert unix_module._socket_bound_to(path) is False  # no file at all
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        sock = socket.socket(socket.AF_UNIX, kind)
        try:
            sock.bind(path)
            assert unix_module._socket_bound_to(path) is True  # bound, not listening
            if kind == socket.SOCK_STREAM:
                sock.listen(1)
                assert unix_module._socket_bound_to(path) is True
        finally:
            sock.close()
        assert unix_module._socket_bound_to(path) is False  # closed: the file is stale
        os.unlink(path)


def test_regular_file_is_never_removed(path):
    with open(path, "w") as f:
        f.write("precious")
    with pytest.raises(ListenError) as info:
        UNIXServerEndpoint(path).bind()
    assert "not a socket" in str(info.value)
    assert path in str(info.value)
    with open(path) as f:
        assert f.read() == "precious"


# -- PID lock ------------------------------------------------------------------------


def test_stale_lock_is_broken_and_the_leftover_socket_removed(path):
    os.symlink(str(dead_pid()), path + ".lock")
    leave_stale_socket(path)
    listener = UNIXServerEndpoint(path, want_pid=True).bind()
    try:
        assert os.readlink(path + ".lock") == str(os.getpid())
        assert round_trip(UNIXClientEndpoint(path, check_pid=True), listener) == b"echo:hello"
    finally:
        listener.close()
    assert not os.path.lexists(path + ".lock")


def test_stale_lock_never_removes_a_regular_file(path):
    os.symlink(str(dead_pid()), path + ".lock")
    with open(path, "w") as f:
        f.write("precious")
    with pytest.raises(ListenError) as info:
        UNIXServerEndpoint(path, want_pid=True).bind()
    assert "not a socket" in str(info.value)
    with open(path) as f:
        assert f.read() == "precious"
    # The failed bind gave the lock back.
    assert not os.path.lexists(path + ".lock")


def test_lock_held_by_another_endpoint_of_this_process(path):
    first = UNIXServerEndpoint(path, want_pid=True).bind()
    try:
        with pytest.raises(ListenError) as info:
            UNIXServerEndpoint(path, want_pid=True).bind()
        assert "cannot acquire lock" in str(info.value)
        assert str(os.getpid()) in str(info.value)
        assert os.readlink(path + ".lock") == str(os.getpid())
        assert round_trip(UNIXClientEndpoint(path), first) == b"echo:hello"
    finally:
        first.close()


def test_lock_held_by_a_live_child_process(path, live_child):
    os.symlink(str(live_child), path + ".lock")
    with pytest.raises(ListenError) as info:
        UNIXServerEndpoint(path, want_pid=True).bind()
    assert "cannot acquire lock" in str(info.value)
    assert str(live_child) in str(info.value)
    assert os.readlink(path + ".lock") == str(live_child)
    assert not os.path.lexists(path)


def test_lock_that_is_not_a_pid_lock_is_left_alone(path):
    with open(path + ".lock", "w") as f:
        f.write("mine")
    with pytest.raises(ListenError) as info:
        UNIXServerEndpoint(path, want_pid=True).bind()
    assert "not a PID lock" in str(info.value)
    with open(path + ".lock") as f:
        assert f.read() == "mine"


def test_twisted_can_read_our_lock(path):
    lockfile = pytest.importorskip("twisted.python.lockfile")
    listener = UNIXServerEndpoint(path, want_pid=True).bind()
    try:
        assert lockfile.isLocked(path + ".lock")
    finally:
        listener.close()
    assert not lockfile.isLocked(path + ".lock")


# -- check_pid ---------------------------------------------------------------------


def test_check_pid_refuses_a_server_without_a_lock(path):
    listener = UNIXServerEndpoint(path).bind()
    try:
        with pytest.raises(ConnectRefusedError) as info:
            UNIXClientEndpoint(path, check_pid=True).open()
        assert path + ".lock" in str(info.value)
    finally:
        listener.close()


def test_check_pid_refuses_a_stale_lock(path):
    listener = UNIXServerEndpoint(path).bind()
    os.symlink(str(dead_pid()), path + ".lock")
    try:
        with pytest.raises(ConnectRefusedError):
            UNIXClientEndpoint(path, check_pid=True).open()
        # The check only reads: the stale lock is still there.
        assert os.path.lexists(path + ".lock")
    finally:
        listener.close()
        os.unlink(path + ".lock")


def test_check_pid_accepts_a_live_lock(path, live_child):
    listener = UNIXServerEndpoint(path).bind()
    os.symlink(str(live_child), path + ".lock")
    try:
        reply = round_trip(UNIXClientEndpoint(path, check_pid=True), listener)
    finally:
        listener.close()
        os.unlink(path + ".lock")
    assert reply == b"echo:hello"


# -- mode ---------------------------------------------------------------------------


@pytest.mark.parametrize("process_umask", [0o022, 0o000, 0o077])
@pytest.mark.parametrize("mode", [0o600, 0o660, 0o666, 0o700])
def test_mode_is_applied_exactly(path, umask, process_umask, mode):
    umask(process_umask)
    with UNIXServerEndpoint(path, mode=mode).bind():
        assert stat.S_IMODE(os.lstat(path).st_mode) == mode
    # The process umask is back as it was.
    assert os.umask(process_umask) == process_umask


@pytest.mark.parametrize("process_umask", [0o000, 0o022])
def test_socket_file_is_never_looser_than_mode_right_after_bind(
    path, umask, monkeypatch, process_umask
):
    # Look at the file as bind() created it, before the mode is adjusted: under
    # umask 0, a bind-then-chmod approach would show 0o777 here.
    umask(process_umask)
    seen = []
    real_apply_mode = unix_module._apply_mode

    def spy(p, mode):
        seen.append(stat.S_IMODE(os.lstat(p).st_mode))
        real_apply_mode(p, mode)

    monkeypatch.setattr(unix_module, "_apply_mode", spy)
    with UNIXServerEndpoint(path, mode=0o600).bind():
        pass
    assert seen and all(m & ~0o600 == 0 for m in seen), [oct(m) for m in seen]


def test_socket_file_is_never_looser_than_mode_to_a_watcher(tmp_path, umask):
    # A real OS thread stats the path as fast as it can while we bind over and over.
    umask(0)
    path = str(tmp_path / "w.sock")
    modes = set()
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                modes.add(stat.S_IMODE(os.lstat(path).st_mode))
            except FileNotFoundError:
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(50):
            UNIXServerEndpoint(path, mode=0o600).bind().close()
    finally:
        stop.set()
        watcher.join()
    assert all(m & ~0o600 == 0 for m in modes), [oct(m) for m in modes]


# -- abstract namespace -----------------------------------------------------------


@pytest.fixture
def abstract_name():
    return f"greenpoint-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def test_abstract_socket_round_trip(abstract_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = server_from_string(f"unix:@{abstract_name}:lockfile=1:mode=600")
    assert server.path == "\0" + abstract_name
    listener = server.bind()
    try:
        assert str(listener.get_host()) == f"unix:@{abstract_name}"
        client = client_from_string(f"unix:@{abstract_name}:lockfile=1")
        assert round_trip(client, listener) == b"echo:hello"
        # No lock file, no socket file: nothing on the filesystem at all.
        assert os.listdir(tmp_path) == []
    finally:
        listener.close()


def test_abstract_socket_in_use(abstract_name):
    first = UNIXServerEndpoint("@" + abstract_name).bind()
    try:
        with pytest.raises(ListenError) as info:
            UNIXServerEndpoint("\0" + abstract_name).bind()
        assert info.value.errno == errno.EADDRINUSE
        assert f"unix:@{abstract_name}" in str(info.value)
    finally:
        first.close()


def test_abstract_name_is_free_once_closed(abstract_name):
    UNIXServerEndpoint("@" + abstract_name).bind().close()
    UNIXServerEndpoint("@" + abstract_name).bind().close()


# -- descriptions -----------------------------------------------------------------


@pytest.mark.parametrize(
    "description, expected",
    [
        ("unix:/run/app.sock", UNIXClientEndpoint("/run/app.sock")),
        ("UNIX:/run/app.sock", UNIXClientEndpoint("/run/app.sock")),
        (b"unix:/run/app.sock", UNIXClientEndpoint("/run/app.sock")),
        ("unix:path=/run/app.sock", UNIXClientEndpoint("/run/app.sock")),
        ("unix:/a:timeout=2.5", UNIXClientEndpoint("/a", timeout=2.5)),
        ("unix:/a:lockfile=1", UNIXClientEndpoint("/a", check_pid=True)),
        ("unix:@name", UNIXClientEndpoint("\0name")),
        ("unix:\0name", UNIXClientEndpoint("@name")),
        (r"unix:/tmp/a\:b\=c", UNIXClientEndpoint("/tmp/a:b=c")),
        ("unix:./@name", UNIXClientEndpoint("./@name")),
    ],
)
def test_client_descriptions(description, expected):
    endpoint = client_from_string(description)
    assert endpoint == expected
    assert client_from_string(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    "description, expected",
    [
        ("unix:/run/app.sock", UNIXServerEndpoint("/run/app.sock")),
        ("unix:address=/run/app.sock", UNIXServerEndpoint("/run/app.sock")),
        ("unix:path=/run/app.sock", UNIXServerEndpoint("/run/app.sock")),
        ("unix:/a:mode=600:backlog=5", UNIXServerEndpoint("/a", backlog=5, mode=0o600)),
        ("unix:/a:mode=0o640", UNIXServerEndpoint("/a", mode=0o640)),
        ("unix:/a:lockfile=1", UNIXServerEndpoint("/a", want_pid=True)),
        ("unix:/a:lockfile=0", UNIXServerEndpoint("/a")),
        ("unix:@name:lockfile=1", UNIXServerEndpoint("\0name", want_pid=True)),
        (r"unix:/tmp/x\:y\=z:mode=600", UNIXServerEndpoint("/tmp/x:y=z", mode=0o600)),
    ],
)
def test_server_descriptions(description, expected):
    endpoint = server_from_string(description)
    assert endpoint == expected
    assert server_from_string(str(endpoint)) == endpoint


def test_string_and_class_defaults_agree():
    assert server_from_string("unix:/x") == UNIXServerEndpoint("/x")
    assert client_from_string("unix:/x") == UNIXClientEndpoint("/x")
    assert str(UNIXServerEndpoint("/x")) == "unix:/x"
    assert str(UNIXClientEndpoint("/x", timeout=30)) == "unix:/x"


def test_printed_descriptions():
    assert str(UNIXServerEndpoint("@n", mode=0o600, want_pid=True)) == "unix:@n:mode=600:lockfile=1"
    assert str(UNIXClientEndpoint("/a:b", timeout=0.5)) == r"unix:/a\:b:timeout=0.5"
    assert str(UNIXAddress("\0n")) == "unix:@n"


@pytest.mark.parametrize(
    "side, description, parameter",
    [
        ("client", "unix:", "path"),
        ("client", "unix:/a:timeout=soon", "timeout"),
        ("client", "unix:/a:timeout=-1", "timeout"),
        ("client", "unix:/a:lockfile=maybe", "lockfile"),
        ("client", "unix:/a:mode=600", "mode"),
        ("client", "unix:/a:/b", None),
        ("server", "unix:", "address"),
        ("server", "unix:/a:mode=999", "mode"),
        ("server", "unix:/a:mode=rw", "mode"),
        ("server", "unix:/a:backlog=-1", "backlog"),
        ("server", "unix:/a:lockfile=2", "lockfile"),
        ("server", "unix:/a:timeout=1", "timeout"),
        ("server", "unix:/a:path=/b", "path"),
        ("server", "unix:/a\0b", "address"),
    ],
)
def test_bad_descriptions(side, description, parameter):
    parse = client_from_string if side == "client" else server_from_string
    with pytest.raises(DescriptionError) as info:
        parse(description)
    assert info.value.prefix == "unix"
    assert info.value.parameter == parameter


def test_public_names():
    assert greenpoint.UNIXClientEndpoint is UNIXClientEndpoint
    assert greenpoint.UNIXServerEndpoint is UNIXServerEndpoint


def test_bad_constructor_values():
    with pytest.raises(ValueError):
        UNIXServerEndpoint("")
    with pytest.raises(ValueError):
        UNIXServerEndpoint("/a", mode=0o10000)
    with pytest.raises(ValueError, match="permission bits"):
        UNIXServerEndpoint("/a", mode=0o4755)  # setuid: as descriptions refuse it
    assert UNIXClientEndpoint(b"/a") == UNIXClientEndpoint("/a")
