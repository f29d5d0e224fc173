"""The supervisor's decisions (greenpoint.cli._supervision) with plain values, and the
sd_notify datagram (greenpoint.cli._sd_notify) to a socket of the test's own."""

from __future__ import annotations

import os
import random
import signal
import socket

import pytest

from greenpoint.cli import _sd_notify
from greenpoint.cli._supervision import (
    MAX_RESTART_DELAY,
    RESTART_DELAY,
    WorkerState,
    describe_exit,
    old_still_accepting,
    recycle_limit,
    restart_delay,
    timed_out,
    to_retire,
    to_start,
)
from greenpoint.cli._worker_process import heartbeat_interval, listener_layers


def worker(pid: int, generation: int = 0, **state) -> WorkerState:
    return WorkerState(pid, generation, started=0.0, last_beat=0.0, **state)


# -- how many to start, which to stop --------------------------------------------------


def test_start_the_missing_workers():
    assert to_start([], 0, 2) == 2
    assert to_start([worker(1)], 0, 2) == 1
    assert to_start([worker(1), worker(2)], 0, 2) == 0


def test_a_reload_starts_a_full_new_generation():
    old = [worker(1, 0, ready=True), worker(2, 0, ready=True)]
    assert to_start(old, 1, 2) == 2


def test_retiring_and_recycled_workers_are_replaced():
    workers = [worker(1, retiring=True), worker(2, recycle=True, ready=True), worker(3)]
    assert to_start(workers, 0, 3) == 2


def test_old_workers_stop_only_once_every_new_one_is_ready():
    old = [worker(1, 0, ready=True), worker(2, 0, ready=True)]
    booting = [worker(3, 1, ready=True), worker(4, 1)]
    assert to_retire(old + booting, 1, 2) == []
    booting[1].ready = True
    assert [w.pid for w in to_retire(old + booting, 1, 2)] == [1, 2]


def test_a_recycled_worker_stops_once_its_successor_is_ready():
    recycled = worker(1, ready=True, recycle=True)
    successor = worker(2)
    assert to_retire([recycled, successor], 0, 1) == []
    successor.ready = True
    assert to_retire([recycled, successor], 0, 1) == [recycled]


def test_a_reload_is_complete_once_no_old_worker_accepts():
    old = worker(1, 0, ready=True, retiring=True)
    new = worker(2, 1, ready=True)
    assert old_still_accepting([old, new], 1) == [old]
    old.closed = True
    assert old_still_accepting([old, new], 1) == []
    # One still starting holds it up until it is gone; one being killed does not.
    starting = worker(3, 0, retiring=True)
    assert old_still_accepting([starting, new], 1) == [starting]
    assert old_still_accepting([worker(4, 0, ready=True, aborted=True), new], 1) == []


def test_a_worker_already_stopping_is_not_stopped_again():
    workers = [worker(1, 0, ready=True, retiring=True), worker(2, 1, ready=True)]
    assert to_retire(workers, 1, 1) == []


# -- heartbeats, back-off, recycling -------------------------------------------------------


def test_a_silent_worker_times_out_once():
    quiet = WorkerState(1, 0, started=0.0, last_beat=10.0)
    assert timed_out([quiet], now=39.9, timeout=30) == []
    assert timed_out([quiet], now=40.1, timeout=30) == [quiet]
    quiet.aborted = True
    assert timed_out([quiet], now=100.0, timeout=30) == []


def test_a_timeout_of_zero_never_times_out():
    assert timed_out([worker(1)], now=1e9, timeout=0) == []


@pytest.mark.parametrize(
    "quick_deaths, delay",
    [
        (0, 0.0),
        (1, RESTART_DELAY),
        (2, RESTART_DELAY * 2),
        (3, RESTART_DELAY * 4),
        (50, MAX_RESTART_DELAY),
    ],
)
def test_restart_delay_doubles_up_to_its_cap(quick_deaths, delay):
    assert restart_delay(quick_deaths) == delay


def test_recycle_limit_adds_jitter_within_bounds():
    rng = random.Random(1)
    limits = {recycle_limit(100, 10, rng) for _ in range(500)}
    assert limits == set(range(100, 111))
    assert recycle_limit(0, 10, rng) is None
    assert recycle_limit(7, 0, rng) == 7


def test_heartbeats_come_several_times_per_timeout():
    assert heartbeat_interval(30) == 1.0
    assert heartbeat_interval(2) == 0.5
    assert heartbeat_interval(0) == 1.0
    assert heartbeat_interval(0.01) == 0.05


def test_describe_exit():
    assert describe_exit(3 << 8) == "exited with status 3"  # waitpid's encoding on Linux
    assert describe_exit(signal.SIGKILL) == "was killed by SIGKILL"


def test_listener_layers_walks_wrapped_listeners():
    class Layer:
        def __init__(self, **inner):
            self.__dict__.update(inner)

    plain = object()
    tls = Layer(inner=Layer(listener=plain))
    assert list(listener_layers(tls)) == [tls, tls.inner, plain]


# -- sd_notify ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, address",
    [
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@sd-notify-1", b"\0sd-notify-1"),
        ("", None),
        (None, None),
        ("vsock:2:1234", None),
        ("relative/path", None),
    ],
)
def test_notify_address(value, address):
    assert _sd_notify.notify_address(value) == address


def test_reloading_fields_carry_the_monotonic_clock():
    assert _sd_notify.reloading_fields(1234) == ("RELOADING=1", "MONOTONIC_USEC=1234")


def test_notify_sends_one_datagram_to_an_abstract_socket():
    name = f"greenpoint-test-{os.getpid()}-{random.getrandbits(32)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(b"\0" + name.encode())
        sent = _sd_notify.notify("READY=1", "STATUS=ok", environ={"NOTIFY_SOCKET": "@" + name})
        listener.settimeout(5)
        assert sent
        assert listener.recv(4096) == b"READY=1\nSTATUS=ok"


def test_notify_without_a_socket_does_nothing(tmp_path):
    assert not _sd_notify.notify("READY=1", environ={})
    # A socket nobody listens on: logged, not raised.
    assert not _sd_notify.notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "none")})


# -- the supervisor's bookkeeping, with a stand-in worker --------------------------------


def test_a_boot_error_is_read_even_when_the_worker_is_reaped_first(monkeypatch, caplog):
    from greenpoint.cli import _supervisor

    def failing_worker(settings, pipes):
        os.write(pipes.status, b"E cannot import 'app': boom\n")
        os._exit(3)

    monkeypatch.setattr(_supervisor, "run_worker", failing_worker)
    supervisor = _supervisor.Supervisor(_supervisor.WorkerSettings(app="app", listeners=[]))
    caplog.set_level("DEBUG", logger="greenpoint.wsgi")
    try:
        supervisor._spawn(0.0)
        (pid,) = supervisor.workers
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
        supervisor._reap()  # before the loop ever read its status pipe
    finally:
        supervisor._close()
    assert supervisor.workers == {}
    assert supervisor.boot_failures == 1
    assert f"worker {pid} could not start: cannot import 'app': boom" in caplog.messages


@pytest.mark.parametrize(
    "environ, interval",
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # someone else's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ, interval):
    assert _sd_notify.watchdog_interval(environ, 4242) == interval
