"""Scenario wsgi: ``greenpoint wsgi`` against ``gunicorn -k gevent`` and bare gevent.pywsgi.

The same application (``servers/wsgi_app.py``: a hello world, or 64 KiB) served by
1 or 2 worker processes, driven by wrk (Debian's HTTP load generator) with
keep-alive or with ``Connection: close`` on every request: eight scenarios
``wsgi-<hello|64k>-w<1|2>-<ka|close>``. Metrics: requests/s and p99 latency as wrk
reports them, and server CPU per request: the user+system time of every server
process (the main one and its workers) read from ``/proc`` before and after the
measured run.

Each run: start the server, wait until it answers, a one-second wrk warm-up (not
measured), read the CPU, the measured wrk run, read the CPU again, SIGTERM.
With one worker the server (all its processes) runs on core 0 and wrk on core 1;
with two workers nothing is pinned, so that the workers can use both cores.
greenpoint runs with ``--no-access-log`` (gunicorn and the bare server log nothing
by default) and its default ``--monkey-patch``, as ``gunicorn -k gevent`` patches.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from _harness import (
    BENCH_DIR,
    BenchError,
    Context,
    Unavailable,
    _child_setup,
    child_env,
    cpu_between,
    cpu_sample,
)
from _scenario import Metric, Scenario
from _wrk import parse_wrk

WRK = shutil.which("wrk")
CONNECTIONS = 32
WARMUP_SECONDS = 1


@dataclass(frozen=True)
class WSGIContender:
    """A WSGI server; ``argv(python, port, workers)`` is its command line."""

    name: str
    kind: str

    def argv(self, python: str, port: int, workers: int) -> list[str]:
        app = "wsgi_app:application"
        if self.kind.startswith("pywsgi"):
            argv = [python, "pywsgi_prefork.py", "--port", str(port), "--workers", str(workers)]
            return argv + (["--nodelay"] if self.kind == "pywsgi-nodelay" else [])
        if self.kind == "gunicorn":
            return [
                python, "-m", "gunicorn", "-k", "gevent", "-w", str(workers),
                "-b", f"127.0.0.1:{port}", "--backlog", "1024", app,
            ]  # fmt: skip
        return [
            python, "-m", "greenpoint", "wsgi", f"tcp:{port}:interface=127.0.0.1:backlog=1024",
            app, "--workers", str(workers), "--no-access-log",
        ]  # fmt: skip


# The baseline is bare pywsgi with TCP_NODELAY on accepted sockets: pywsgi as shipped
# writes a response's headers and body apart without it, and on keep-alive connections
# the body then waits for the client's delayed ACK (~40 ms); "pywsgi-as-shipped" shows it.
CONTENDERS = [
    WSGIContender("pywsgi", "pywsgi-nodelay"),
    WSGIContender("pywsgi-control", "pywsgi-nodelay"),
    WSGIContender("pywsgi-as-shipped", "pywsgi"),
    WSGIContender("greenpoint-wsgi", "greenpoint"),
    WSGIContender("gunicorn-gevent", "gunicorn"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            return client.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the workers), from ``/proc``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def _wrk(ctx: Context, port: int, path: str, seconds: float, close: bool, pin: bool) -> str:
    argv = [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://127.0.0.1:{port}{path}")
    cpu = ctx.loadgen_cpu if pin else None
    done = subprocess.run(
        argv,
        capture_output=True,
        timeout=seconds + 30,
        preexec_fn=lambda: _child_setup(cpu),
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed: {done.stderr.decode(errors='replace')[-500:]}")
    return done.stdout.decode(errors="replace")


def measure(ctx: Context, contender: WSGIContender, settings: dict[str, Any]) -> dict[str, Any]:
    if WRK is None:
        raise Unavailable("wrk is not installed (Debian package: wrk)")
    workers, close, path = settings["workers"], settings["close"], settings["path"]
    pin = ctx.pin and workers == 1
    port = _free_port()
    log_path = ctx.log_dir / f"{contender.name}.{os.getpid()}.{time.monotonic_ns()}.log"
    ctx.log_dir.mkdir(parents=True, exist_ok=True)
    cpu = ctx.contender_cpu if pin else None
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            contender.argv(ctx.python, port, workers),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=child_env(),
            cwd=str(BENCH_DIR / "servers"),
            preexec_fn=lambda: _child_setup(cpu),
        )
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            if server.poll() is not None:
                text = log_path.read_text(errors="replace")
                if "No module named gunicorn" in text:
                    return {"unavailable": "gunicorn is not installed (make bench installs it)"}
                raise BenchError(f"{contender.name} exited: {text[-800:]}")
            if time.monotonic() > deadline:
                raise BenchError(f"{contender.name} did not answer within 30 s")
            time.sleep(0.1)
        time.sleep(0.3)  # let every worker start accepting
        _wrk(ctx, port, path, WARMUP_SECONDS, close, pin)
        tree = _process_tree(server.pid)
        before = {pid: cpu_sample(pid) for pid in tree}
        report = parse_wrk(_wrk(ctx, port, path, settings["seconds"], close, pin))
        after = {pid: cpu_sample(pid) for pid in tree}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    server_cpu = sum(cpu_between(before[pid], after[pid]) for pid in tree)
    result: dict[str, Any] = {**report, "server_cpu_s": server_cpu, "processes": len(tree)}
    if report.get("requests"):
        result["cpu_us_per_req"] = server_cpu / report["requests"] * 1e6
    if report.get("errors"):
        result["error"] = report.get("error_detail", f"{report['errors']} errors")
    if os.path.getsize(log_path) == 0:
        log_path.unlink()
    return result


def _settings(path: str, workers: int, close: bool):
    def settings(quick: bool) -> dict[str, Any]:
        return {
            "path": path,
            "workers": workers,
            "close": close,
            "seconds": 2 if quick else 5,
            "connections": CONNECTIONS,
        }

    return settings


METRICS = [
    Metric("rps", "requests/s", ".0f", lower_is_better=False),
    Metric("p99_ms", "p99 ms", ".2f"),
    Metric("cpu_us_per_req", "server CPU us/req", ".1f"),
]

SCENARIOS = [
    Scenario(
        name=f"wsgi-{app}-w{workers}-{'close' if close else 'ka'}",
        title=f"WSGI {'hello world' if app == 'hello' else '64 KiB'}, {workers} worker(s), "
        + ("Connection: close" if close else "keep-alive"),
        baseline="pywsgi",
        contenders=CONTENDERS,
        metrics=METRICS,
        measure=measure,
        settings=_settings("/" if app == "hello" else "/64k", workers, close),
    )
    for app in ("hello", "64k")
    for workers in (1, 2)
    for close in (False, True)
]
