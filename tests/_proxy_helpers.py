"""Run real proxies (microsocks, dante, tinyproxy) on loopback for the proxy tests.

Each runner picks a free port, writes its configuration into the test's temporary
folder, starts the program, waits until the port accepts connections, and stops
and reaps it afterwards. A missing program skips the test, saying which.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import gevent
import pytest
from gevent import subprocess as gsubprocess

LOOPBACK = "127.0.0.1"


# The account .ci/install-programs makes for dante's username/password tests: a system
# account with no shell and no home, whose password is no secret.
DANTE_USER = "greenpoint-socks"
DANTE_PASSWORD = "gp-socks-test"


def find_program(name: str, *fallbacks: str) -> str:
    """The program's path, or skip the test naming the Debian package to install."""
    found = shutil.which(name)
    if found:
        return found
    for path in fallbacks:
        if os.access(path, os.X_OK):
            return path
    pytest.skip(f"{name} not installed: the proxy tests need it (.ci/install-programs)")


def free_port() -> int:
    """A port that was free a moment ago (the program binds it itself)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _wait_until_listening(port: int, process: gsubprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited at once:\n{_read(log)}")
        with socket.socket() as probe:
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        gevent.sleep(0.02)
    pytest.fail(f"{process.args[0]} did not listen on {port} within 10 s:\n{_read(log)}")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running(argv: Sequence[str], port: int, log: Path) -> Iterator[int]:
    """Start ``argv`` (output to ``log``), wait for ``port``, yield it; stop after."""
    with open(log, "ab") as out:
        process = gsubprocess.Popen(list(argv), stdin=gsubprocess.DEVNULL, stdout=out, stderr=out)
    try:
        _wait_until_listening(port, process, log)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except gsubprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def microsocks(tmp_path: Path, user: str | None = None, password: str | None = None):
    """microsocks (SOCKS5), with ``-u``/``-P`` authentication when given."""
    program = find_program("microsocks", "/usr/bin/microsocks")
    port = free_port()
    argv = [program, "-i", LOOPBACK, "-p", str(port)]
    if user is not None:
        argv += ["-u", user, "-P", password or ""]
    with running(argv, port, tmp_path / "microsocks.log") as bound:
        yield bound


@contextlib.contextmanager
def dante(tmp_path: Path, username_auth: bool = False):
    """dante's danted (SOCKS5 and SOCKS4), loopback only; no authentication, or with
    ``username_auth`` SOCKS5 username/password checked against the system's accounts
    (the only way dante checks them: see ``DANTE_USER``)."""
    program = find_program("danted", "/usr/sbin/danted")
    if username_auth:
        try:
            pwd.getpwnam(DANTE_USER)
        except KeyError:
            pytest.skip(
                f"dante checks SOCKS5 passwords against system accounts and there is no "
                f"{DANTE_USER!r} account ({DANTE_USER}:{DANTE_PASSWORD}); "
                ".ci/install-programs creates it when run as root"
            )
        if os.getuid() != 0:
            pytest.skip("dante reads /etc/shadow to check SOCKS5 passwords: needs root")
    port = free_port()
    log = tmp_path / "danted.log"
    lines = [
        f"logoutput: {log}",
        f"internal: {LOOPBACK} port = {port}",
        f"external: {LOOPBACK}",
        "clientmethod: none",
        f"socksmethod: {'username' if username_auth else 'none'}",
    ]
    if os.getuid() == 0:
        # danted refuses to run as root without knowing whom to switch to.
        lines += ["user.privileged: root", "user.unprivileged: nobody"]
    lines += [
        "client pass {\n from: 127.0.0.0/8 to: 0.0.0.0/0\n log: error\n}",
        "socks pass {\n from: 127.0.0.0/8 to: 0.0.0.0/0\n command: connect\n log: error\n}",
    ]
    config = tmp_path / "danted.conf"
    config.write_text("\n".join(lines) + "\n")
    pid_file = tmp_path / "danted.pid"
    argv = [program, "-f", str(config), "-p", str(pid_file), "-N", "1"]
    with running(argv, port, log) as bound:
        yield bound


@contextlib.contextmanager
def tinyproxy(
    tmp_path: Path, connect_ports: Sequence[int], user: str | None = None, password: str = ""
):
    """tinyproxy (HTTP CONNECT) allowing CONNECT to ``connect_ports`` only."""
    program = find_program("tinyproxy", "/usr/bin/tinyproxy")
    port = free_port()
    log = tmp_path / "tinyproxy.log"
    lines = [
        f"Port {port}",
        f"Listen {LOOPBACK}",
        "Timeout 30",
        f'LogFile "{log}"',
        "LogLevel Info",
        "MaxClients 20",
        f"Allow {LOOPBACK}",
        *(f"ConnectPort {allowed}" for allowed in connect_ports),
    ]
    if os.getuid() == 0:
        lines += ["User nobody", "Group nogroup"]
        os.chmod(tmp_path, 0o777)  # the unprivileged user writes the log there
    if user is not None:
        lines.append(f"BasicAuth {user} {password}")
    config = tmp_path / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    with running([program, "-d", "-c", str(config)], port, log) as bound:
        yield bound
