"""``greenpoint wsgi`` against a real slow-HTTP attack tool: Debian's ``slowhttptest``.

Slow headers (``-H``, slowloris) and slow body (``-B``, R-U-Dead-Yet) against a
``greenpoint wsgi`` child with short timeouts. While the attack runs:

* plain requests (``http.client``) keep getting 200, with a median under 100 ms;
* the server's open descriptors stay under its ``--max-connections`` plus a constant;
* no connection lives longer than its timeouts plus one second: header_timeout for
  a slow head, header_timeout and then idle_timeout for a slow body (server-side
  sockets are sampled from ``/proc/net/tcp`` every 0.1 s).

``make test`` runs a scaled-down attack (150 connections, 8 s); ``make load`` the full
size (500 connections, 30 s). Where ``slowhttptest`` is not installed, :class:`SlowClients`
does the same in Python (CI installs the real one: ``.ci/install-programs``).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import threading
import time
from typing import Any

import pytest
from _cli_helpers import EXAMPLES, child_env, greenpoint_command

SLOWHTTPTEST = shutil.which("slowhttptest") or (
    "/usr/bin/slowhttptest" if os.access("/usr/bin/slowhttptest", os.X_OK) else None
)

TIMEOUT = 2.0  # --header-timeout, --idle-timeout and --keepalive-timeout of the server
FD_SLACK = 40  # listener, log pipes, the interpreter's own files
_LIVE_STATES = {"01", "08"}  # ESTABLISHED, CLOSE_WAIT: the server still holds the socket


def _server_sockets(port: int) -> set[int]:
    """Remote ports of the server-side TCP sockets on ``port`` that are still held."""
    remotes = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.split(":")[1], 16) == port and state in _LIVE_STATES:
                remotes.add(int(remote.split(":")[1], 16))
    return remotes


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a supervisor and its workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in (
            os.listdir(f"/proc/{current}/task") if os.path.isdir(f"/proc/{current}") else []
        ):
            try:
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
            except OSError:
                pass
    return found


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Sampler(threading.Thread):
    """Watches the server's sockets and descriptors until stopped (a real thread)."""

    def __init__(self, port: int, pid: int) -> None:
        super().__init__(daemon=True)
        self.port, self.pid = port, pid
        self.first_seen: dict[int, float] = {}
        self.last_seen: dict[int, float] = {}
        self.max_fds = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            now = time.monotonic()
            for remote in _server_sockets(self.port):
                self.first_seen.setdefault(remote, now)
                self.last_seen[remote] = now
            fds = max(_open_fds(pid) for pid in _process_tree(self.pid))
            self.max_fds = max(self.max_fds, fds)

    def longest_life(self) -> tuple[float, int]:
        """The longest time a socket was seen, and its client's port."""
        return max((self.last_seen[r] - self.first_seen[r], r) for r in self.first_seen)


class SlowClients(threading.Thread):
    """What slowhttptest does, where it is not installed (CI installs it).

    ``connections`` clients each send a request head (``headers``: without its end,
    then one more header line every ``interval``; ``body``: complete, announcing a
    4096-byte body, then one body byte every ``interval``). Same interface as the
    ``Popen`` of the real tool: ``poll``, ``terminate``, ``wait``.
    """

    def __init__(self, mode: str, port: int, connections: int, interval: float, seconds: float):
        super().__init__(daemon=True)
        self.mode, self.port, self.connections = mode, port, connections
        self.interval, self.seconds = interval, seconds
        self.stopping = threading.Event()

    def run(self) -> None:
        head = b"GET / HTTP/1.1\r\nHost: x\r\n"
        if self.mode == "body":
            head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n"
        clients = []
        for _ in range(self.connections):
            client = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            client.sendall(head)
            clients.append(client)
        ended = time.monotonic() + self.seconds
        try:
            while clients and not self.stopping.wait(self.interval) and time.monotonic() < ended:
                for client in list(clients):
                    try:
                        client.sendall(b"X-a: b\r\n" if self.mode == "headers" else b"a")
                    except OSError:  # the server closed it
                        clients.remove(client)
                        client.close()
        finally:
            for client in clients:
                client.close()

    def poll(self) -> int | None:
        return None if self.is_alive() else 0

    def terminate(self) -> None:
        self.stopping.set()

    def wait(self, timeout: float | None = None) -> None:
        self.join(timeout)


def _probe(port: int) -> float:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200, (response.status, body)
    return time.monotonic() - started


def _attack(mode: str, connections: int, seconds: int, cap: int, tmp_path) -> None:
    server = subprocess.Popen(
        greenpoint_command(
            "wsgi",
            "-v",  # each limit-caused close, with the peer: shown when an assertion fails
            "--header-timeout",
            str(TIMEOUT),
            "--idle-timeout",
            str(TIMEOUT),
            "--keepalive-timeout",
            str(TIMEOUT),
            "--max-connections",
            str(cap),
            "--no-access-log",
            "tcp:0:interface=127.0.0.1:backlog=1024",
            "hello_app:application",
        ),
        cwd=EXAMPLES,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log_lines: list[str] = []
    try:
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            assert line, f"the server ended: {log_lines}"
            log_lines.append(line)
            if match := re.search(r"serving .* on 127\.0\.0\.1:(\d+)", line):
                port = int(match.group(1))
        assert port is not None, log_lines
        reader = threading.Thread(
            target=lambda: log_lines.extend(iter(server.stderr.readline, "")), daemon=True
        )
        reader.start()
        _probe(port)  # the server is up
        sampler = Sampler(port, server.pid)
        sampler.start()
        interval = 1.0 if mode == "headers" else TIMEOUT + 1
        if SLOWHTTPTEST is not None:
            attack: Any = subprocess.Popen(
                [
                    SLOWHTTPTEST,
                    "-H" if mode == "headers" else "-B",
                    "-c",
                    str(connections),
                    "-r",
                    str(connections),
                    "-i",
                    str(int(interval)),
                    "-l",
                    str(seconds),
                    "-u",
                    f"http://127.0.0.1:{port}/",
                    "-p",
                    "3",
                ],
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            attack = SlowClients(mode, port, connections, interval, seconds)
            attack.start()
        latencies = []
        try:
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                latencies.append(_probe(port))
                time.sleep(0.1)  # the behaviour: a probe every 0.1 s during the attack
        finally:
            if attack.poll() is None:
                attack.terminate()
            attack.wait(timeout=10)
            sampler.stopping.set()
            sampler.join(timeout=5)
        # The attack really happened: the server held many attacking sockets.
        assert len(sampler.first_seen) >= connections * 0.8, len(sampler.first_seen)
        assert statistics.median(latencies) < 0.1, sorted(latencies)
        assert sampler.max_fds <= cap + FD_SLACK, sampler.max_fds
        # A slow head has header_timeout from the accept; a slow body first has its
        # head (up to header_timeout), then idle_timeout after its last byte. Plus
        # one second, plus 0.2 s for the sampling interval at both ends.
        allowed = TIMEOUT if mode == "headers" else 2 * TIMEOUT
        longest, remote = sampler.longest_life()
        assert longest <= allowed + 1.0 + 0.2, (
            longest,
            [line for line in log_lines if f":{remote} " in line],
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stderr.close()
    assert not [line for line in log_lines if "Traceback" in line], log_lines[:20]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["headers", "body"])
def test_slowhttptest_scaled_down(mode, tmp_path):
    _attack(mode, connections=150, seconds=8, cap=300, tmp_path=tmp_path)


@pytest.mark.load
@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["headers", "body"])
def test_slowhttptest_full_size(mode, tmp_path):
    _attack(mode, connections=500, seconds=30, cap=1000, tmp_path=tmp_path)
