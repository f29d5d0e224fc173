"""``greenpoint wsgi``'s supervisor and workers, with real signals to real processes.

Each server runs in its own session (``start_new_session=True``) so that a signal
can go to its whole process group (``os.killpg``), as systemd's
``KillMode=control-group``, Ctrl-C and ``timeout`` send them; the fixture kills
the group and every test checks that no process is left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import ssl
import sys
import tempfile
import textwrap
import time

import gevent
import pytest
import trustme
from _cli_helpers import EXAMPLES, Child, child_env, greenpoint_command, run
from _wait_helpers import wait_until
from gevent import socket

import greenpoint

pytestmark = pytest.mark.timeout(60)

WRK = shutil.which("wrk")

# Test applications, written into the test's directory and run from there.
APPS = {
    # /block blocks the worker's whole hub: the real time.sleep, whatever is patched.
    "block_app.py": """
        import os
        from gevent import monkey

        real_sleep = monkey.get_original("time", "sleep")

        def application(environ, start_response):
            if environ["PATH_INFO"] == "/block":
                # Says so first: the test waits for this file, not a guessed time.
                here = os.path.dirname(os.path.abspath(__file__))
                open(os.path.join(here, f"blocked.{os.getpid()}"), "w").close()
                real_sleep(60)
            body = f"{os.getpid()}\\n".encode()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
    """,
    # Takes SLOW_IMPORT seconds to import: a new worker is not ready for that long.
    "slow_start_app.py": """
        import os
        import time

        time.sleep(float(os.environ.get("SLOW_IMPORT", "0")))

        def application(environ, start_response):
            body = f"{os.getpid()}\\n".encode()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
    """,
    # examples/hello_app.py's /slow, and a file per request once it is in the
    # application: the tests wait for those, not for a guessed time.
    "marking_slow_app.py": """
        import os
        import uuid
        from urllib.parse import parse_qs

        import gevent

        HERE = os.path.dirname(os.path.abspath(__file__))

        def application(environ, start_response):
            open(os.path.join(HERE, f"in-app.{uuid.uuid4().hex}"), "w").close()
            seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("seconds", ["1"])[0])
            gevent.sleep(seconds)
            body = f"slept {seconds:g} s\\n".encode()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
    """,
    "environ_app.py": """
        def application(environ, start_response):
            body = environ.get("test.option", "absent").encode()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
    """,
    # serve_wsgi() called by a program of its own, with options for every worker.
    "own_supervisor.py": """
        import logging
        import sys

        import greenpoint
        from greenpoint.cli._workers import serve_wsgi

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        listener = greenpoint.server_from_string("tcp:0:interface=127.0.0.1").bind()
        options = {"environ": {"test.option": "given"}, "log": None}
        sys.exit(serve_wsgi([listener], "environ_app", server_options=options))
    """,
    # As if PR_SET_PDEATHSIG did not exist (not Linux): only the lifeline is left.
    "no_pdeathsig_supervisor.py": """
        import logging
        import sys

        import greenpoint
        from greenpoint.cli import _worker_process
        from greenpoint.cli._workers import serve_wsgi

        _worker_process.set_parent_death_signal = lambda signum: False
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        listener = greenpoint.server_from_string("tcp:0:interface=127.0.0.1").bind()
        sys.exit(serve_wsgi([listener], "environ_app", workers=2))
    """,
    # time.sleep as an app calls it: cooperative only if the worker monkey-patched.
    "sleepy_app.py": """
        import time

        def application(environ, start_response):
            time.sleep(1)
            start_response("200 OK", [("Content-Length", "5")])
            return [b"slept"]
    """,
    "patching_supervisor.py": """
        import logging
        import sys

        import greenpoint
        from greenpoint.cli._workers import serve_wsgi

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        listener = greenpoint.server_from_string("tcp:0:interface=127.0.0.1").bind()
        sys.exit(serve_wsgi([listener], "sleepy_app", monkey_patch=True, access_log=False))
    """,
    "broken_app.py": """
        raise RuntimeError("boom")
    """,
    # Dies while being imported, without a word (a C extension aborting, os._exit).
    "vanishing_app.py": """
        import os

        os._exit(7)
    """,
}


@pytest.fixture
def app_dir(tmp_path):
    for name, source in APPS.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    return tmp_path


class Server:
    """``greenpoint wsgi`` in a session of its own; ``close()`` kills the whole group."""

    def __init__(self, *args: str, cwd, env=None, server="tcp:0:interface=127.0.0.1") -> None:
        self.child = Child(
            greenpoint_command("wsgi", server, *args),
            cwd=cwd,
            env=env or child_env(),
            start_new_session=True,
        )
        self.pid = self.child.process.pid

    def port(self) -> int:
        return int(self.child.wait_for(r"serving \S+ on 127\.0\.0\.1:(\d+)").group(1))

    def workers(self) -> list[int]:
        return [int(p) for p in self.child.wait_for(r"started \d+ workers?: ([\d ]+)")[1].split()]

    def group_signal(self, signum: int) -> None:
        os.killpg(self.pid, signum)

    def close(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.child.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def live_processes_in_group(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies waiting for init do not)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            found.append(int(name))
    return found


def children_of(pid: int) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.add(int(name))
    return found


def get(port: int, path: str = "/", timeout: float = 10) -> tuple[int, bytes]:
    """One HTTP/1.1 request on its own connection: (status, body)."""
    with greenpoint.client_from_string(f"tcp:127.0.0.1:{port}").open(timeout=5) as stream:
        stream.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        with gevent.Timeout(timeout):
            while chunk := stream.recv(65536):
                data += chunk
    if not data:
        raise ConnectionResetError("closed without a response")
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def wait_until_gone(pgid: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := live_processes_in_group(pgid)) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    return left


# -- stopping ------------------------------------------------------------------------


def in_application(app_dir, count: int = 1) -> None:
    """Wait until ``count`` requests are in marking_slow_app's application."""
    wait_until(
        lambda: len(list(app_dir.glob("in-app.*"))) >= count,
        timeout=10,
        what=f"{count} requests in the application",
    )


def test_sigterm_to_the_group_lets_20_slow_requests_finish_and_exits_0(app_dir):
    with Server("marking_slow_app", "--workers", "2", "--no-access-log", cwd=app_dir) as server:
        port = server.port()
        server.workers()
        requests = [gevent.spawn(get, port, "/slow?seconds=2") for _ in range(20)]
        in_application(app_dir, 20)
        server.group_signal(signal.SIGTERM)
        gevent.sleep(0.3)  # the behaviour: a second signal a little later
        server.group_signal(signal.SIGTERM)  # again: an impatient stop changes nothing
        results = [r.get(timeout=15) for r in requests]
        status, _, _ = server.child.finish(timeout=15)
        assert results == [(200, b"slept 2 s\n")] * 20
        assert status == 0
        assert wait_until_gone(server.pid, 2) == []
    assert sum("SIGTERM: stopping 2 workers" in line for line in server.child.lines) == 1
    assert not [line for line in server.child.lines if "killed" in line or "Traceback" in line]


def test_sigint_to_the_group_stops_at_once(app_dir):
    with Server("marking_slow_app", "--workers", "2", "--no-access-log", cwd=app_dir) as server:
        port = server.port()
        server.workers()
        slow = gevent.spawn(get, port, "/slow?seconds=30")
        in_application(app_dir)
        started = time.monotonic()
        server.group_signal(signal.SIGINT)  # Ctrl-C in a terminal
        status, _, _ = server.child.finish(timeout=10)
        took = time.monotonic() - started
        assert status == 0
        assert took < 5  # not the 30 s graceful timeout
        # The request was cut: pywsgi answers a request killed in the app with a 500.
        try:
            outcome = slow.get(timeout=5)
        except OSError:  # or the connection simply closed
            outcome = None
        assert outcome is None or outcome[0] == 500
        assert wait_until_gone(server.pid, 2) == []


def test_sigint_cuts_a_graceful_stop_short(app_dir):
    with Server("marking_slow_app", "--workers", "2", "--no-access-log", cwd=app_dir) as server:
        port = server.port()
        server.workers()
        slow = gevent.spawn(get, port, "/slow?seconds=30")
        in_application(app_dir)
        server.group_signal(signal.SIGTERM)  # graceful: would wait up to 30 s
        server.child.wait_for("SIGTERM: stopping 2 workers")
        gevent.sleep(0.3)  # the behaviour: the second signal comes during the drain
        started = time.monotonic()
        os.kill(server.pid, signal.SIGINT)  # to the supervisor only: it passes it on
        status, _, _ = server.child.finish(timeout=10)
        assert status == 0
        assert time.monotonic() - started < 5
        try:
            outcome = slow.get(timeout=5)
        except OSError:
            outcome = None
        assert outcome is None or outcome[0] == 500
    assert any(line.startswith("SIGINT: stopping") for line in server.child.lines)


def test_sigkill_to_the_supervisor_leaves_no_worker_even_a_blocked_one(app_dir):
    # --timeout 0: the supervisor itself would not kill the blocked worker.
    with Server("block_app", "--workers", "2", "--timeout", "0", cwd=app_dir) as server:
        port = server.port()
        workers = server.workers()
        blocked = gevent.spawn(get, port, "/block", 30)
        # One worker's hub is stuck in time.sleep(60) once its marker file exists.
        (marker,) = wait_until(lambda: list(app_dir.glob("blocked.*")), what="a blocked worker")
        assert int(marker.suffix[1:]) in workers
        os.kill(server.pid, signal.SIGKILL)
        assert wait_until_gone(server.pid, 2) == []
        for pid in workers:
            assert pid not in live_processes_in_group(server.pid)
        with pytest.raises((ConnectionResetError, OSError)):
            blocked.get(timeout=5)


def test_without_pdeathsig_the_lifeline_stops_the_workers(app_dir):
    command = [sys.executable, "no_pdeathsig_supervisor.py"]
    with Child(command, cwd=app_dir, start_new_session=True) as child:
        try:
            child.wait_for(r"started 2 workers")
            os.kill(child.process.pid, signal.SIGKILL)
            assert wait_until_gone(child.process.pid, 2) == []
            child.wait_for(r"the supervisor is gone; stopping", count=2)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)  # whatever is left


# -- worker lifecycle ------------------------------------------------------------------


def test_a_worker_whose_hub_is_blocked_is_replaced_after_the_timeout(app_dir):
    with Server(
        "block_app", "--workers", "1", "--timeout", "1.5", "--no-access-log", cwd=app_dir
    ) as server:
        port = server.port()
        (first,) = server.workers()
        assert get(port, "/pid") == (200, f"{first}\n".encode())
        blocked = gevent.spawn(get, port, "/block", 30)
        server.child.wait_for(rf"worker {first} timed out \(no heartbeat for 1.5 s\)", timeout=15)
        with pytest.raises((ConnectionResetError, OSError)):
            blocked.get(timeout=10)  # the stuck request ends with its worker
        status, body = get(port, "/pid")  # queued until the new worker accepts
        assert status == 200
        assert int(body) != first
        # faulthandler showed where the hub was stuck.
        server.child.wait_for(r'File ".*block_app\.py", line \d+ in application')
        server.group_signal(signal.SIGTERM)
        assert server.child.finish(timeout=15)[0] == 0, server.child.lines


def test_a_worker_that_dies_is_replaced():
    with Server(APPS_HELLO, "--workers", "1", "--no-access-log", cwd=EXAMPLES) as server:
        port = server.port()
        (first,) = server.workers()
        os.kill(first, signal.SIGKILL)
        server.child.wait_for(rf"worker {first} was killed by SIGKILL; starting another")
        status, body = get(port, "/pid")
        assert status == 200
        assert int(body) not in (first, server.pid)
        server.group_signal(signal.SIGTERM)
        assert server.child.finish(timeout=15)[0] == 0, server.child.lines


def test_max_requests_recycles_workers_without_losing_a_request():
    with Server(
        APPS_HELLO, "--workers", "1", "--max-requests", "5", "--no-access-log", cwd=EXAMPLES
    ) as server:
        port = server.port()
        (first,) = server.workers()
        pids: list[int] = []
        with gevent.Timeout(20):
            while len(set(pids)) < 3:  # recycled twice; every request answered
                status, body = get(port, "/pid")
                assert status == 200
                pids.append(int(body))
        # A worker serves on until its successor accepts: at least 5 requests each.
        assert pids[:5] == [first] * 5
        second = next(pid for pid in pids if pid != first)
        assert pids.count(second) >= 5
        assert server.child.wait_for(r"worker \d+ served its --max-requests; replacing it")
        server.group_signal(signal.SIGTERM)
        assert server.child.finish(timeout=15)[0] == 0, server.child.lines


def test_an_application_that_fails_to_import_stops_with_one_error_line(app_dir):
    result = run(
        greenpoint_command("wsgi", "tcp:0:interface=127.0.0.1", "broken_app", "--workers", "2"),
        cwd=app_dir,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "greenpoint wsgi: cannot import 'broken_app': RuntimeError: boom\n"
    )


def test_a_worker_that_dies_before_it_is_ready_stops_the_supervisor_after_a_few_tries(app_dir):
    started = time.monotonic()
    result = run(
        greenpoint_command("wsgi", "tcp:0:interface=127.0.0.1", "vanishing_app"),
        cwd=app_dir,
        timeout=30,
    )
    took = time.monotonic() - started
    assert result.returncode == 1
    assert re.fullmatch(
        r"greenpoint wsgi: worker \d+ exited with status 7 before it was ready\n",
        result.stderr.decode(),
    )
    assert took > 0.5 + 1.0  # two back-off delays between the three tries


def test_a_crash_looping_import_is_tried_a_few_times_then_given_up(app_dir):
    result = run(
        greenpoint_command("-vv", "wsgi", "tcp:0:interface=127.0.0.1", "broken_app"),
        cwd=app_dir,
        timeout=30,
    )
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len([line for line in lines if "could not start" in line]) == 3
    assert lines[-1] == "greenpoint wsgi: cannot import 'broken_app': RuntimeError: boom"


# -- reloading ---------------------------------------------------------------------------


def test_sighup_starts_new_workers_that_import_the_application_afresh(app_dir):
    (app_dir / "version_app.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '3')])\n"
        "    return [b'v1\\n']\n"
    )
    # Without .pyc files: v1 and v2 have the same size and may have the same mtime.
    env = child_env(PYTHONDONTWRITEBYTECODE="1")
    with Server("version_app", "--workers", "2", "--no-access-log", cwd=app_dir, env=env) as server:
        port = server.port()
        old = server.workers()
        assert get(port) == (200, b"v1\n")
        source = (app_dir / "version_app.py").read_text().replace("v1", "v2")
        (app_dir / "version_app.py").write_text(source)
        os.kill(server.pid, signal.SIGHUP)
        new = [
            int(p) for p in server.child.wait_for(r"reloaded: 2 new workers: ([\d ]+)")[1].split()
        ]
        assert not set(new) & set(old)
        # "reloaded" (and READY=1) only once no old worker accepts: the new code answers.
        assert [get(port) for _ in range(10)] == [(200, b"v2\n")] * 10
        wait_until(
            lambda: not set(old) & children_of(server.pid),
            timeout=10,
            what="the old workers to drain and exit",
        )
        server.group_signal(signal.SIGTERM)
        assert server.child.finish(timeout=15)[0] == 0, server.child.lines


def test_a_reload_whose_application_is_broken_keeps_the_old_workers(app_dir):
    (app_dir / "version_app.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '3')])\n"
        "    return [b'v1\\n']\n"
    )
    with Server("version_app", "--workers", "1", "--no-access-log", cwd=app_dir) as server:
        port = server.port()
        (old,) = server.workers()
        (app_dir / "version_app.py").write_text("raise RuntimeError('half-deployed')\n")
        os.kill(server.pid, signal.SIGHUP)
        server.child.wait_for(
            r"reload failed: cannot import 'version_app': RuntimeError: half-deployed; "
            r"the previous workers keep serving",
            timeout=20,
        )
        assert get(port, "/") == (200, b"v1\n")
        assert children_of(server.pid) >= {old}
        server.group_signal(signal.SIGTERM)
        assert server.child.finish(timeout=15)[0] == 0, server.child.lines


def test_a_unix_socket_file_outlives_reloads_and_goes_with_the_stop():
    directory = tempfile.mkdtemp(prefix="gp-unix-")  # short: AF_UNIX paths are limited
    path = os.path.join(directory, "app.sock")
    try:
        with Server(APPS_HELLO, "--no-access-log", cwd=EXAMPLES, server=f"unix:{path}") as server:
            (first,) = server.workers()
            os.kill(server.pid, signal.SIGHUP)
            server.child.wait_for(r"reloaded: ")
            wait_until(
                lambda: first not in children_of(server.pid),
                timeout=10,
                what="the old worker to exit (it closed its copy)",
            )
            assert os.path.exists(path)
            with greenpoint.client_from_string(f"unix:{path}").open(timeout=5) as stream:
                stream.sendall(b"GET /pid HTTP/1.0\r\n\r\n")
                with gevent.Timeout(10):
                    assert stream.recv(100).startswith(b"HTTP/1.1 200")
            server.group_signal(signal.SIGTERM)
            assert server.child.finish(timeout=15)[0] == 0, server.child.lines
        assert not os.path.exists(path)
    finally:
        shutil.rmtree(directory)


def test_sighup_rereads_tls_certificates(tmp_path):
    authority = trustme.CA()
    pem = tmp_path / "server.pem"
    authority.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    first = pem.read_text()
    # reloadInterval=0: the files are read again only when told (here: by SIGHUP).
    server_description = f"ssl:0:interface=127.0.0.1:privateKey={pem}:reloadInterval=0"
    with Server(APPS_HELLO, cwd=EXAMPLES, server=server_description) as server:
        port = server.port()
        server.workers()
        assert served_certificate(port) in first
        authority.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
        second = pem.read_text()
        assert served_certificate(port) in first  # not re-read on its own
        os.kill(server.pid, signal.SIGHUP)
        server.child.wait_for(r"reloaded: ")
        assert served_certificate(port) in second
        server.group_signal(signal.SIGTERM)
        assert server.child.finish(timeout=15)[0] == 0, server.child.lines


def served_certificate(port: int) -> str:
    """The PEM certificate the server on ``port`` presents (not verified)."""
    return ssl.get_server_certificate(("127.0.0.1", port), timeout=5).strip()


@pytest.mark.skipif(WRK is None, reason="wrk is not installed (Debian package: wrk)")
def test_wrk_sees_no_error_through_three_reloads_and_a_killed_worker(app_dir):
    # New workers take 0.5 s to import the app: the one killed is surely not serving yet.
    env = child_env(SLOW_IMPORT="0.5")
    with Server(
        "slow_start_app", "--workers", "2", "--no-access-log", cwd=app_dir, env=env
    ) as server:
        port = server.port()
        server.workers()
        load = Child([WRK, "-t1", "-c8", "-d10s", f"http://127.0.0.1:{port}/"], merge=True, env=env)
        with load:
            gevent.sleep(1.5)
            os.kill(server.pid, signal.SIGHUP)
            gevent.sleep(2.5)
            before = children_of(server.pid)
            os.kill(server.pid, signal.SIGHUP)
            fresh = wait_until(lambda: children_of(server.pid) - before, what="a new worker")
            killed = min(fresh)
            os.kill(killed, signal.SIGKILL)  # while it imports the application
            gevent.sleep(3)
            os.kill(server.pid, signal.SIGHUP)
            _, _, report = load.finish(timeout=30)
        server.child.wait_for(r"reloaded: ", count=3, timeout=20)
        server.group_signal(signal.SIGTERM)
        assert server.child.finish(timeout=15)[0] == 0, server.child.lines
    requests = int(re.search(r"(\d+) requests in", report).group(1))
    assert requests > 1000, report
    errors = re.search(r"Socket errors: (.*)", report)
    assert errors is None or set(re.findall(r"\d+", errors.group(1))) == {"0"}, report
    assert "Non-2xx" not in report, report
    assert any(f"worker {killed} " in line for line in server.child.lines)


# -- systemd -------------------------------------------------------------------------------


def test_sd_notify_says_ready_reloading_ready_stopping():
    directory = tempfile.mkdtemp(prefix="gp-notify-")  # short: AF_UNIX paths are limited
    path = os.path.join(directory, "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(path)

        def next_message() -> dict[str, str]:
            with gevent.Timeout(20):
                data = listener.recv(4096).decode()
            return dict(line.split("=", 1) for line in data.splitlines())

        env = child_env(NOTIFY_SOCKET=path, WATCHDOG_USEC="")  # no watchdog pings here
        with Server(APPS_HELLO, "--workers", "2", cwd=EXAMPLES, env=env) as server:
            assert next_message()["READY"] == "1"
            os.kill(server.pid, signal.SIGHUP)
            reloading = next_message()
            now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            assert reloading["RELOADING"] == "1"
            assert 0 <= now - int(reloading["MONOTONIC_USEC"]) < 20_000_000
            assert next_message()["READY"] == "1"
            server.group_signal(signal.SIGTERM)
            assert next_message() == {"STOPPING": "1"}
            assert server.child.finish(timeout=15)[0] == 0, server.child.lines
    finally:
        listener.close()
        shutil.rmtree(directory)


APPS_HELLO = "hello_app:application"  # examples/hello_app.py


def test_serve_wsgi_passes_server_options_to_every_worker(app_dir):
    command = [sys.executable, "own_supervisor.py"]
    with Child(command, cwd=app_dir, start_new_session=True) as child:
        port = int(child.wait_for(r"serving \S+ on 127\.0\.0\.1:(\d+)").group(1))
        assert get(port) == (200, b"given")
        child.process.terminate()
        assert child.finish(timeout=15)[0] == 0


def test_a_worker_that_monkey_patches_serves_blocking_calls_side_by_side(app_dir):
    command = [sys.executable, "patching_supervisor.py"]
    with Child(command, cwd=app_dir, start_new_session=True) as child:
        port = int(child.wait_for(r"serving \S+ on 127\.0\.0\.1:(\d+)").group(1))
        started = time.monotonic()
        sleepers = [gevent.spawn(get, port) for _ in range(5)]
        assert [s.get(timeout=10) for s in sleepers] == [(200, b"slept")] * 5
        assert time.monotonic() - started < 3  # not 5 x 1 s one after another
        child.process.terminate()
        assert child.finish(timeout=15)[0] == 0
        assert not [line for line in child.lines if "Warning" in line]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--max-requests", "-1", "expected a number >= 0, not '-1'"),
        ("--max-requests-jitter", "x", "expected a whole number, not 'x'"),
        ("--timeout", "-5", "expected a finite number of seconds >= 0, not '-5'"),
        ("--graceful-timeout", "nan", "expected a finite number of seconds >= 0, not 'nan'"),
    ],
)
def test_bad_supervision_flags_are_usage_errors(flag, value, message):
    result = run(greenpoint_command("wsgi", "tcp:0", APPS_HELLO, flag, value))
    assert result.returncode == 2
    assert f"argument {flag}" in result.stderr.decode()
    assert message in result.stderr.decode()


def test_sd_notify_pings_the_watchdog_systemd_asks_for():
    directory = tempfile.mkdtemp(prefix="gp-notify-")
    path = os.path.join(directory, "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(path)
        env = child_env(NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")  # WatchdogSec=1
        with Server(APPS_HELLO, cwd=EXAMPLES, env=env) as server:
            pings = 0
            with gevent.Timeout(20):  # until it is serving: READY=1
                while listener.recv(4096) != b"READY=1\nSTATUS=serving with 1 worker":
                    pass
            deadline = time.monotonic() + 2.0
            while (left := deadline - time.monotonic()) > 0:
                try:
                    with gevent.Timeout(left):
                        pings += listener.recv(4096) == b"WATCHDOG=1"
                except gevent.Timeout:
                    break
            assert 2 <= pings <= 8  # every 0.5 s: 4 in 2 s
            server.group_signal(signal.SIGTERM)
            assert server.child.finish(timeout=15)[0] == 0, server.child.lines
    finally:
        listener.close()
        shutil.rmtree(directory)
