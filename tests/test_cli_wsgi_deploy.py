"""``greenpoint wsgi`` flags for production, as child processes: --monkey-patch (default)
and --no-monkey-patch, --pid, --user/--group, --forwarded-allow-ips,
--access-log-format, --log-level."""

from __future__ import annotations

import os
import re
import socket
import sys
import textwrap

import gevent
import gevent.event
import gevent.server
import pytest
from _cli_helpers import (
    EXAMPLES,
    STARTUP_TIMEOUT,
    Child,
    greenpoint_command,
    run,
    run_greenpoint,
)
from _wait_helpers import wait_until

from greenpoint.cli._privileges import Identity, PrivilegeError, drop_privileges
from tests.test_cli_wsgi import EndpointHTTPConnection, fetch, served_ports

# Bounds a hang; generous, as a child may take STARTUP_TIMEOUT to come up.
pytestmark = pytest.mark.timeout(STARTUP_TIMEOUT + 60)

# Blocking standard-library calls, as a database driver or `requests` makes them.
BLOCKING_APP = textwrap.dedent(
    """
    import socket
    import sys
    import time
    from urllib.parse import parse_qs


    def application(environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        path = environ["PATH_INFO"]
        if path == "/sleep":
            print("app: blocking", file=sys.stderr, flush=True)
            time.sleep(float(query["seconds"][0]))
            body = b"slept"
        elif path == "/socket":
            print("app: blocking", file=sys.stderr, flush=True)
            address = ("127.0.0.1", int(query["port"][0]))
            with socket.create_connection(address, timeout=20) as connection:
                body = connection.recv(100)
        else:
            body = b"fast"
        # When the app returned, on this process's clock: which came first is then
        # decided by the server, not by how the test's greenlets were scheduled.
        body += b" %.6f" % time.monotonic()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    """
)

BLOCK_SECONDS = 2.0  # long enough that a fast request never waits for it by chance


def wsgi_child(*args: str, cwd=EXAMPLES, **kwargs) -> Child:
    return Child(greenpoint_command("wsgi", *args), cwd=cwd, **kwargs)


def serving(child: Child) -> None:
    """Wait until the child answers a request (its stop signals are handled by then)."""
    (address,) = tcp_served(child)
    assert fetch(EndpointHTTPConnection(address), "/")[0] == 200


def tcp_served(child: Child, count: int = 1) -> list[str]:
    """Client descriptions for the TCP addresses the child says it serves (once its
    workers are up: that can take a while on a loaded machine)."""
    return [
        f"tcp:127.0.0.1:{address.rsplit(':', 1)[1]}"
        for address in served_ports(child, count)
        if not address.startswith("unix:")
    ]


def accepts_on(path) -> bool:
    """Whether something listens on the UNIX socket ``path`` (the file exists from
    ``bind()`` on, but connecting is refused until ``listen()``)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    finally:
        probe.close()
    return True


class SlowServer:
    """Accepts, says so, waits BLOCK_SECONDS, answers ``late``: a slow database."""

    def __init__(self) -> None:
        self.accepted = gevent.event.Event()
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.server_port

    def _handle(self, connection, address) -> None:
        self.accepted.set()
        gevent.sleep(BLOCK_SECONDS)
        connection.sendall(b"late")

    def close(self) -> None:
        self.server.stop(timeout=1)


@pytest.mark.parametrize("call", ["sleep", "socket"])
@pytest.mark.parametrize("patch", [True, False])
def test_a_blocking_call_blocks_the_worker_only_without_monkey_patching(tmp_path, call, patch):
    (tmp_path / "blocking_app.py").write_text(BLOCKING_APP)
    slow_server = SlowServer() if call == "socket" else None
    flags = [] if patch else ["--no-monkey-patch"]
    target = (
        f"/sleep?seconds={BLOCK_SECONDS}" if call == "sleep" else f"/socket?port={slow_server.port}"
    )
    try:
        with wsgi_child(
            "tcp:0:interface=127.0.0.1", "blocking_app:application", *flags, cwd=tmp_path
        ) as child:
            (address,) = tcp_served(child)
            slow = gevent.spawn(fetch, EndpointHTTPConnection(address), target)
            child.wait_for("app: blocking")  # the slow request is inside the blocking call
            if slow_server is not None:
                assert slow_server.accepted.wait(10)
            fast_status, fast_body, _ = fetch(EndpointHTTPConnection(address), "/fast")
            slow_status, slow_body, _ = slow.get(timeout=15)
            assert (fast_status, slow_status) == (200, 200)
            fast_word, fast_time = fast_body.split()
            slow_word, slow_time = slow_body.split()
            assert (fast_word, slow_word) == ("fast", "slept" if call == "sleep" else "late")
            # Patched: the worker served /fast while /slow waited. Not patched: the
            # whole worker waited for the blocking call to end.
            assert (float(fast_time) < float(slow_time)) is patch
            assert child.stop()[0] == 0
    finally:
        if slow_server is not None:
            slow_server.close()


def test_pid_file_is_written_and_removed(tmp_path):
    pid_path = tmp_path / "run" / "gp.pid"
    pid_path.parent.mkdir()
    with wsgi_child(
        "tcp:0:interface=127.0.0.1", "hello_app:application", "--pid", str(pid_path)
    ) as child:
        served_ports(child, 1)
        assert pid_path.read_text() == f"{child.process.pid}\n"
        serving(child)
        status, _, _ = child.stop()
    assert status == 0
    assert not pid_path.exists()
    assert os.listdir(pid_path.parent) == []  # no temporary file left either


def test_pid_file_of_a_running_process_is_refused(tmp_path):
    pid_path = tmp_path / "gp.pid"
    pid_path.write_text(f"{os.getpid()}\n")  # this test process: alive
    result = run_greenpoint(
        "wsgi",
        "tcp:0:interface=127.0.0.1",
        "hello_app:application",
        "--pid",
        str(pid_path),
        cwd=EXAMPLES,
    )
    assert result.returncode == 1
    assert f"already running as process {os.getpid()}" in result.stderr.decode()
    assert pid_path.read_text() == f"{os.getpid()}\n"  # left alone


def test_stale_pid_file_is_replaced(tmp_path):
    pid_path = tmp_path / "gp.pid"
    pid_path.write_text("999999999\n")  # beyond pid_max: no such process
    with wsgi_child(
        "tcp:0:interface=127.0.0.1", "hello_app:application", "--pid", str(pid_path)
    ) as child:
        serving(child)
        assert pid_path.read_text() == f"{child.process.pid}\n"
        assert child.stop()[0] == 0


def proc_ids(pid: int) -> tuple[list[int], list[int], list[int]]:
    """Real, effective, saved and filesystem uids and gids, and the groups, of ``pid``."""
    with open(f"/proc/{pid}/status") as file:
        status = file.read()

    def numbers(name: str) -> list[int]:
        return [int(x) for x in re.search(rf"^{name}:\s*(.*)$", status, re.M).group(1).split()]

    return numbers("Uid"), numbers("Gid"), numbers("Groups")


@pytest.mark.skipif(os.geteuid() != 0, reason="binding as root and dropping to nobody needs root")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_user_and_group_drop_root_after_binding(tmp_path, workers):
    import grp
    import pwd

    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrgid(nobody.pw_gid)
    socket_dir = tmp_path / "sockets"
    socket_dir.mkdir()
    socket_path = socket_dir / "app.sock"
    with wsgi_child(
        "tcp:0:interface=127.0.0.1",
        "hello_app:application",
        "--listen",
        f"unix:{socket_path}",
        "--user",
        "nobody",
        "--group",
        nogroup.gr_name,
        "--workers",
        workers,
    ) as child:
        (tcp,) = tcp_served(child, 2)
        child.wait_for("running as uid")
        for _ in range(int(workers) * 3):
            status, body, _ = fetch(EndpointHTTPConnection(tcp), "/pid")
            assert status == 200
            uids, gids, groups = proc_ids(int(body))
            assert uids == [nobody.pw_uid] * 4
            assert gids == [nobody.pw_gid] * 4
            assert 0 not in groups
        main_uids, _, _ = proc_ids(child.process.pid)
        assert main_uids == [nobody.pw_uid] * 4  # the main process gave root up too
        owner = os.stat(socket_path)
        assert (owner.st_uid, owner.st_gid) == (nobody.pw_uid, nobody.pw_gid)
        status, _, _ = child.stop(timeout=STARTUP_TIMEOUT)
    assert status == 0


def test_unknown_user_and_group_are_clear_errors():
    for flag, name, message in [
        ("--user", "no-such-user-gp", "--user no-such-user-gp: no such user"),
        ("--group", "no-such-group-gp", "--group no-such-group-gp: no such group"),
    ]:
        result = run_greenpoint(
            "wsgi", "tcp:0:interface=127.0.0.1", "hello_app:application", flag, name, cwd=EXAMPLES
        )
        assert result.returncode == 1
        assert result.stderr.decode().strip() == f"greenpoint wsgi: {message}"


def test_switching_user_needs_root(monkeypatch):
    # Whoever runs the tests: the check is on the effective uid.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PrivilegeError) as caught:
        drop_privileges(Identity(uid=65534, gid=65534, user_name="nobody"))
    assert str(caught.value) == (
        "--user/--group: switching to uid 65534 (nobody), gid 65534 needs root; running as uid 1000"
    )


@pytest.mark.skipif(
    os.geteuid() == 0, reason="running as root (test_user_and_group_drop_root_after_binding runs)"
)
def test_user_without_root_is_a_clear_error():
    kwargs = {}
    target = "nobody" if os.geteuid() != 65534 else "root"
    result = run_greenpoint(
        "wsgi",
        "tcp:0:interface=127.0.0.1",
        "hello_app:application",
        "--user",
        target,
        cwd=EXAMPLES,
        **kwargs,
    )
    assert result.returncode == 1
    assert re.search(
        r"greenpoint wsgi: --user/--group: switching to .* needs root; running as uid \d+",
        result.stderr.decode(),
    )


def test_forwarded_headers_believed_from_loopback_by_default_and_only_from_allowed_peers():
    headers = "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
    for flags, expected in [
        ([], "hello 203.0.113.9 over https\n"),
        (["--forwarded-allow-ips", "10.0.0.0/8"], "hello 127.0.0.1 over http\n"),
        (["--forwarded-allow-ips", "*"], "hello 203.0.113.9 over https\n"),
    ]:
        with wsgi_child("tcp:0:interface=127.0.0.1", "hello_app:application", *flags) as child:
            (address,) = served_ports(child, 1)
            port = int(address.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(
                    f"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode()
                )
                raw = b""
                while data := client.recv(65536):
                    raw += data
            assert raw.partition(b"\r\n\r\n")[2].decode() == expected, flags
            assert child.stop()[0] == 0


def test_access_log_format_and_log_level(tmp_path):
    socket_path = tmp_path / "app.sock"
    log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    with wsgi_child(
        f"unix:{socket_path}",
        "hello_app:application",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--access-log-format",
        log_format,
        "--log-level",
        "warning",
    ) as child:
        # --log-level warning hides "serving ... on"; wait until the socket listens
        # instead (its file exists a moment before: connecting then is refused).
        wait_until(
            lambda: accepts_on(socket_path),
            timeout=STARTUP_TIMEOUT,
            what=f"something listening on {socket_path}",
        )
        status, body, _ = fetch(EndpointHTTPConnection(f"unix:{socket_path}"), "/?x=1")
        assert status == 200
        line = child.wait_for(r'"GET ').string
        status, _, rest = child.stop(timeout=STARTUP_TIMEOUT)
    assert status == 0
    # UNIX socket peers have no address: %(h)s is "-"; the user agent is http.client's.
    assert re.fullmatch(
        r'- - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /\?x=1 HTTP/1.1" 200 '
        + str(len(body))
        + r' "-" "-"',
        line,
    ), line
    assert not any("serving" in text for text in child.lines)  # INFO, below warning


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--forwarded-allow-ips", "10.0.0.1,nope"], "--forwarded-allow-ips: 'nope' is not an IP"),
        (["--access-log-format", "%(h"], "bad access log format '%(h'"),
        (["--log-level", "loud"], "invalid choice: 'loud'"),
    ],
)
def test_bad_flags_are_clear_errors(flags, message):
    result = run_greenpoint(
        "wsgi", "tcp:0:interface=127.0.0.1", "hello_app:application", *flags, cwd=EXAMPLES
    )
    assert result.returncode in (1, 2)
    assert message in result.stderr.decode()


def test_monkey_patching_is_not_done_by_importing_greenpoint():
    code = (
        "import greenpoint, greenpoint.wsgi, greenpoint.cli._main, greenpoint.cli._worker_app\n"
        "from gevent import monkey\n"
        "print(monkey.is_module_patched('socket'), monkey.is_module_patched('time'))\n"
    )

    result = run([sys.executable, "-c", code])
    assert result.stdout.decode().split() == ["False", "False"], result.stderr
