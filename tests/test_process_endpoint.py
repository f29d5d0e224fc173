"""ProcessEndpoint.open(): a child's stdin/stdout as a stream, its exit as a reason."""

from __future__ import annotations

import errno
import gc
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys

import gevent
import gevent.event
import pytest
from _net_helpers import read_all
from _wait_helpers import wait_until

import greenpoint
from greenpoint import (
    ConnectError,
    ConnectionDone,
    ConnectionLost,
    PipeAddress,
    ProcessEndpoint,
    ProcessTerminated,
    StandardErrorBehavior,
)
from greenpoint._process_stream import exit_reason

pytestmark = pytest.mark.timeout(30)

CAT = shutil.which("cat")
SH = shutil.which("sh")


def sh(script: str, **options) -> ProcessEndpoint:
    return ProcessEndpoint("sh", ("sh", "-c", script), **options)


def is_gone(pid: int) -> bool:
    """True once the child is reaped (a zombie still has a /proc entry)."""
    return not os.path.exists(f"/proc/{pid}")


def wait_until_gone(pid: int, seconds: float = 5.0) -> bool:
    with gevent.Timeout(seconds, False):
        while not is_gone(pid):
            gevent.sleep(0.01)
    return is_gone(pid)


# -- the exit reason, as a pure function ------------------------------------------


@pytest.mark.parametrize(
    ("returncode", "kind", "exit_code", "signum", "words"),
    [
        (0, ConnectionDone, None, None, "exited with status 0"),
        (3, ProcessTerminated, 3, None, "exited with status 3"),
        (255, ProcessTerminated, 255, None, "exited with status 255"),
        (-15, ProcessTerminated, None, 15, "killed by signal 15 (SIGTERM)"),
        (-9, ProcessTerminated, None, 9, "killed by signal 9 (SIGKILL)"),
    ],
)
def test_exit_reason_for_each_kind_of_ending(returncode, kind, exit_code, signum, words):
    reason = exit_reason(returncode, "'tool' (pid 42)")
    assert type(reason) is kind
    assert words in str(reason) and "'tool' (pid 42)" in str(reason)
    if kind is ProcessTerminated:
        assert (reason.exit_code, reason.signal) == (exit_code, signum)
        assert isinstance(reason, greenpoint.ConnectionLost)


# -- streams ------------------------------------------------------------------------


def test_cat_echoes_what_is_written():
    with ProcessEndpoint("cat").open() as stream:
        stream.sendall(b"hello, child\n")
        assert stream.recv(100) == b"hello, child\n"
        stream.shutdown(socket.SHUT_WR)
        assert stream.recv(100) == b""
        assert isinstance(stream.exit_reason(timeout=5), ConnectionDone)


def test_closing_the_stream_ends_the_child_and_it_is_reaped():
    stream = ProcessEndpoint("cat").open()
    pid = stream.pid
    stream.close()  # cat sees end-of-file on stdin and exits
    # Nobody calls wait(): gevent reaps the child on SIGCHLD, so no zombie remains.
    assert wait_until_gone(pid)
    assert stream.returncode == 0


def test_a_second_child_does_not_hold_the_first_childs_stdin_open():
    # Our end of each child's stdin must not leak into the next child, or the
    # first child would never see end-of-file while the second one runs.
    first = ProcessEndpoint("cat").open()
    with ProcessEndpoint("cat").open() as second:
        first.close()
        assert wait_until_gone(first.pid)
        assert second.returncode is None


def test_a_stream_dropped_without_close_still_ends_the_child():
    stream = ProcessEndpoint("cat").open()
    pid = stream.pid
    del stream
    gc.collect()
    assert wait_until_gone(pid)


def test_non_zero_exit_status_becomes_process_terminated():
    with sh("exit 3").open() as stream:
        assert stream.recv(10) == b""
        reason = stream.exit_reason(timeout=5)
    assert isinstance(reason, ProcessTerminated)
    assert reason.exit_code == 3 and reason.signal is None
    assert "exited with status 3" in str(reason) and f"pid {stream.pid}" in str(reason)


def test_a_killed_child_reports_the_signal():
    with ProcessEndpoint("cat").open() as stream:
        stream.terminate()
        reason = stream.exit_reason(timeout=5)
    assert isinstance(reason, ProcessTerminated)
    assert reason.signal == signal.SIGTERM and reason.exit_code is None
    assert "SIGTERM" in str(reason)


def test_final_reason_waits_for_the_child_only_after_a_clean_end_or_a_stream_error():
    # The hook a transport calls once the stream is closed (greenpoint._transport
    # knows nothing about processes). An abort answers at once, child still running.
    with sh("read line; exit 4").open() as stream:
        aborted = ConnectionLost("connection aborted")
        assert stream.final_reason(aborted) is aborted
        protocol_error = ValueError("bad message")
        assert stream.final_reason(protocol_error) is protocol_error
        assert stream.returncode is None
        stream.sendall(b"go\n")
        broken = ConnectionLost("connection lost: Broken pipe")
        broken.__cause__ = BrokenPipeError()
        reason = stream.final_reason(broken)  # waits for the exit
    assert isinstance(reason, ProcessTerminated) and reason.exit_code == 4
    assert reason.__context__ is broken
    with sh("exit 0").open() as stream:
        assert isinstance(stream.final_reason(ConnectionDone("eof")), ConnectionDone)


def test_wait_with_a_timeout_raises_timeout_expired_while_running():
    with ProcessEndpoint("cat").open() as stream:
        with pytest.raises(subprocess.TimeoutExpired):
            stream.wait(timeout=0.05)
        assert stream.returncode is None
    assert stream.wait(timeout=5) == 0


def test_a_child_that_exits_early():
    with sh("echo early; exit 0").open() as stream:
        assert read_all(stream) == b"early\n"
        assert isinstance(stream.exit_reason(timeout=5), ConnectionDone)
        # It no longer reads its stdin: writing fails instead of hanging.
        with pytest.raises(BrokenPipeError):
            for _ in range(100):
                stream.sendall(b"x" * 65536)


def test_megabytes_both_ways_at_once_do_not_deadlock():
    data = os.urandom(6 * 1024 * 1024)  # many times the 64 KiB pipe buffers

    with ProcessEndpoint("cat").open() as stream:

        def write():
            stream.sendall(data)
            stream.shutdown(socket.SHUT_WR)

        writer = gevent.spawn(write)
        received = read_all(stream)
        writer.get(timeout=10)
    assert len(received) == len(data)
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()


def test_gevent_timeout_around_a_read_from_a_silent_child():
    with ProcessEndpoint("cat").open() as stream:
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.1):
            stream.recv(10)
        stream.sendall(b"still alive")
        assert stream.recv(100) == b"still alive"


def test_reading_blocks_only_the_calling_greenlet():
    # The child answers when told to (or, never told, after 5 s): a read that blocked
    # the whole process would have returned before anything else here ran again.
    with sh("timeout 5 head -n 1 >/dev/null; echo done").open() as stream:
        reading = gevent.event.Event()

        def read() -> bytes:
            reading.set()  # wakes the test only once this greenlet yields
            return stream.recv(100)

        reader = gevent.spawn(read)
        assert reading.wait(timeout=5)
        other = gevent.spawn(lambda: "ran meanwhile")
        assert other.get(timeout=5) == "ran meanwhile"
        assert not reader.ready()  # still parked in its read while the others ran
        stream.sendall(b"go\n")
        assert reader.get(timeout=5) == b"done\n"


def test_addresses_name_the_process():
    with ProcessEndpoint("cat").open() as stream:
        assert stream.getPeer() == PipeAddress(f"process 'cat' (pid {stream.pid})")
        assert greenpoint._address.peer_address(stream) == stream.getPeer()
        assert isinstance(stream.getHost(), PipeAddress)


def children_running(marker: str) -> list[int]:
    """Our child processes whose command line contains ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat_file:
                parent = int(stat_file.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as cmdline_file:
                cmdline = cmdline_file.read()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and marker.encode() in cmdline:
            found.append(int(name))
    return found


@pytest.mark.parametrize("seconds", [0, 0.001, 0.003])
def test_cancelling_open_kills_the_child_being_started(seconds):
    marker = "29.4817"  # an unusual sleep length that names our children
    endpoint = ProcessEndpoint("sleep", ("sleep", marker))
    opened = []
    for _ in range(10):
        with gevent.Timeout(seconds, False):
            opened.append(endpoint.open())
    for stream in opened:  # the ones that finished starting in time
        stream.kill()
        stream.close()
    wait_until(lambda: children_running(marker) == [], what="every child to be gone")


MONKEY_PATCHED_CLIENT = """
import sys, time
from gevent import monkey
monkey.patch_all()
sys.path.insert(0, sys.argv[1])
import greenpoint

stream = greenpoint.ProcessEndpoint("cat").open()
stream.sendall(b"patched")
assert stream.recv(100) == b"patched"
stream.close()
started = time.monotonic()
reason = stream.exit_reason(timeout=10)
print(type(reason).__name__, round(time.monotonic() - started, 3))
"""


def test_works_the_same_under_monkey_patching():
    # gevent's patched os.close defers closing a pipe to the next loop turn, which
    # would leave cat waiting for end-of-file until some timer wakes the loop.
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = (sys.executable, "-c", MONKEY_PATCHED_CLIENT, repo)
    with ProcessEndpoint(sys.executable, script, err_flag="inherit").open() as stream:
        output = read_all(stream).split()
        assert isinstance(stream.exit_reason(timeout=20), ConnectionDone)
    assert output[0] == b"ConnectionDone"
    assert float(output[1]) < 2.0


# -- stderr ---------------------------------------------------------------------------


def test_stderr_is_logged_line_by_line_by_default(caplog):
    caplog.set_level(logging.WARNING, logger="greenpoint.process")
    with sh("echo first >&2; printf 'second\\nno newline' >&2").open() as stream:
        assert stream.recv(10) == b""
        stream.wait(timeout=5)
        stream.stderr_logger.join(timeout=5)
    messages = [r.getMessage() for r in caplog.records if r.name == "greenpoint.process"]
    assert len(messages) == 3
    assert messages[0].endswith("wrote to stderr: first")
    assert messages[1].endswith("wrote to stderr: second")
    assert messages[2].endswith("wrote to stderr: no newline")
    assert all(f"(pid {stream.pid})" in message for message in messages)


def test_stderr_dropped(caplog):
    caplog.set_level(logging.DEBUG)
    with sh("echo secret >&2; echo out", err_flag=StandardErrorBehavior.DROP).open() as stream:
        assert read_all(stream) == b"out\n"
        stream.wait(timeout=5)
        assert stream.stderr_logger is None
    gevent.sleep(0.05)  # the sleep is the check: nothing logs the dropped stderr later
    assert "secret" not in caplog.text


def test_stderr_inherited_goes_to_our_fd_2(capfd):
    endpoint = sh("echo to-our-stderr >&2", err_flag=StandardErrorBehavior.INHERIT)
    with endpoint.open() as stream:
        stream.wait(timeout=5)
    assert "to-our-stderr" in capfd.readouterr().err


def test_err_flag_may_be_given_by_name():
    assert ProcessEndpoint("cat", err_flag="drop").err_flag is StandardErrorBehavior.DROP
    with pytest.raises(ValueError, match="LOG, DROP, INHERIT"):
        ProcessEndpoint("cat", err_flag="loud")


# -- environment and working directory ----------------------------------------------


def test_env_none_inherits_our_environment(monkeypatch):
    monkeypatch.setenv("GREENPOINT_TEST_MARK", "inherited")
    with sh('printf %s "$GREENPOINT_TEST_MARK"').open() as stream:
        assert read_all(stream) == b"inherited"


def test_env_given_is_the_whole_environment(monkeypatch):
    monkeypatch.setenv("GREENPOINT_TEST_MARK", "must not leak")
    python = ProcessEndpoint(
        sys.executable,
        (sys.executable, "-c", "import os, sys; sys.stdout.write(repr(sorted(os.environ)))"),
        env={"ONLY": "this"},
    )
    with python.open() as stream:
        names = read_all(stream)
    # (Python may add LC_CTYPE itself when it coerces the C locale)
    assert b"'ONLY'" in names and b"GREENPOINT_TEST_MARK" not in names


def test_empty_env_is_empty_as_in_twisted():
    with ProcessEndpoint(SH, (SH, "-c", "env"), env={}).open() as stream:
        lines = [line for line in read_all(stream).splitlines() if line]
    # sh sets PWD (and some shells SHLVL, _) itself; nothing comes from us.
    assert set(line.split(b"=")[0] for line in lines) <= {b"PWD", b"SHLVL", b"_", b"OLDPWD"}


def test_the_endpoint_keeps_a_snapshot_of_env():
    env = {"A": "1"}
    endpoint = ProcessEndpoint("cat", env=env)
    env["A"] = "2"
    assert endpoint.env == {"A": "1"}


def test_path_is_the_working_directory(tmp_path):
    with ProcessEndpoint("pwd", path=str(tmp_path)).open() as stream:
        assert read_all(stream).strip() == os.fsencode(os.path.realpath(tmp_path))


# -- bad input ------------------------------------------------------------------------


def test_missing_executable_is_a_connect_error_naming_it():
    with pytest.raises(ConnectError) as caught:
        ProcessEndpoint("/no/such/greenpoint-tool").open()
    assert "/no/such/greenpoint-tool" in str(caught.value)
    assert caught.value.errno == errno.ENOENT
    assert isinstance(caught.value, OSError)


def test_executable_not_found_on_path_is_a_connect_error_naming_it():
    with pytest.raises(ConnectError, match="greenpoint-no-such-program"):
        ProcessEndpoint("greenpoint-no-such-program").open()


def test_not_executable_is_a_connect_error(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(ConnectError, match="script") as caught:
        ProcessEndpoint(str(script)).open()
    assert caught.value.errno == errno.EACCES


def test_missing_working_directory_is_a_connect_error_naming_it(tmp_path):
    missing = str(tmp_path / "gone")
    with pytest.raises(ConnectError, match="working directory") as caught:
        ProcessEndpoint("cat", path=missing).open()
    assert missing in str(caught.value)


def test_args_as_one_string_is_refused_with_a_hint():
    with pytest.raises(TypeError, match=r"argv sequence .*'cat', '-u'"):
        ProcessEndpoint("cat", "-u")


def test_empty_executable_is_refused():
    with pytest.raises(ValueError, match="empty"):
        ProcessEndpoint("")


# -- the endpoint as a value -----------------------------------------------------------


def test_argv_defaults_to_the_executable_and_args_include_argv0():
    assert ProcessEndpoint("cat").argv == ("cat",)
    assert ProcessEndpoint("/bin/sh", ["sh", "-c", "true"]).argv == ("sh", "-c", "true")


def test_argv0_is_what_the_child_sees():
    endpoint = ProcessEndpoint(SH, ("custom-name", "-c", 'printf %s "$0"'))
    with endpoint.open() as stream:
        assert read_all(stream) == b"custom-name"


def test_endpoints_compare_by_value():
    assert ProcessEndpoint("cat", ["cat", "-u"]) == ProcessEndpoint("cat", ("cat", "-u"))
    assert ProcessEndpoint("cat") != ProcessEndpoint("cat", path="/")


def test_there_is_no_description_string_but_str_is_readable():
    endpoint = ProcessEndpoint("sh", ("sh", "-c", "exit 3"))
    with pytest.raises(greenpoint.DescriptionError, match="no description"):
        endpoint.description_parts()
    assert str(endpoint) == "process sh [sh -c 'exit 3']"


def test_exported_from_the_package():
    assert greenpoint.ProcessEndpoint is ProcessEndpoint
    assert issubclass(ProcessEndpoint, greenpoint.ClientEndpoint)
    assert set(StandardErrorBehavior.__members__) == {"LOG", "DROP", "INHERIT"}
