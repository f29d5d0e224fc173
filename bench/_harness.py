"""Processes and measurements: start a contender in a fresh process, pin it, read its CPU.

Every measurement runs in fresh processes: the server (or client) under test on one
core, the fixed load generator on another (when the machine has two), so the two do not
fight for one CPU and only the contender differs between measurements. The server's CPU
is read by this process from ``/proc/<pid>/`` before and after the load, so the server
needs no instrumentation of its own.
"""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# Which checkout the greenpoint contenders import. The default is this repository;
# BENCH_GREENPOINT_ROOT lets one measure another tree (an unmerged branch) as is.
GREENPOINT_ROOT = Path(os.environ.get("BENCH_GREENPOINT_ROOT", REPO_ROOT)).resolve()

# The contender gets core 0 and the load generator core 1 on a machine with two or
# more; on one core neither is pinned.
CONTENDER_CPU = 0
LOADGEN_CPU = 1

# Exit status a contender uses to say "the greenpoint API I need is not there yet".
UNAVAILABLE_EXIT = 3

# How long a contender gets to import and print its READY line.
START_TIMEOUT = 30.0

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A measurement could not be made (a child died, timed out or spoke nonsense)."""


def pinning_available() -> bool:
    """Whether contender and load generator can each have a core of their own."""
    try:
        return len(os.sched_getaffinity(0)) >= 2 and hasattr(os, "sched_setaffinity")
    except (AttributeError, OSError):
        return False


def raise_fd_limit(wanted: int = 0) -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit.

    With ``wanted`` above the hard limit, first try to raise the hard limit itself to
    ``wanted`` (allowed to root, up to ``/proc/sys/fs/nr_open``): the ``idle-100k``
    regime needs more files than this machine's default hard limit of 20,000.
    Children inherit the raised hard limit, and each raises its soft limit to it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if wanted > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            soft = hard = wanted
        except (ValueError, OSError):
            pass  # not root, or above nr_open: the caller sees the lower limit
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


# Set by ``run.py --realtime``: children run under SCHED_FIFO, above every ordinary
# process, so that the rest of a shared machine cannot take their core mid-run.
REALTIME_ENV = "BENCH_REALTIME"
REALTIME_PRIORITY = 10


def _child_setup(cpu: int | None) -> None:
    # Runs in the child between fork and exec.
    raise_fd_limit()
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    if os.environ.get(REALTIME_ENV):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))


def child_env() -> dict[str, str]:
    """The environment of every child: the greenpoint checkout first on ``sys.path``."""
    env = dict(os.environ)
    paths = [str(GREENPOINT_ROOT), str(BENCH_DIR)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    # A bench never wants gevent's debugging aids (they cost CPU).
    env.pop("GEVENT_MONITOR_THREAD_ENABLE", None)
    return env


@dataclass
class CPUSample:
    """CPU time of one process: ``/proc/<pid>/stat`` ticks and per-thread schedstat ns."""

    stat_seconds: float
    sched_ns: dict[str, int] = field(default_factory=dict)


def cpu_sample(pid: int) -> CPUSample:
    """Read user+system CPU of ``pid`` (every thread, dead ones included, for ``stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        # The command name may hold spaces; fields after the closing parenthesis are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of proc(5), i.e. 11 and 12 after "state".
    stat_seconds = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    sched: dict[str, int] = {}
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
                sched[task] = int(f.read().split()[0])
    except OSError:
        sched = {}
    return CPUSample(stat_seconds, sched)


def user_system_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` (``/proc/<pid>/stat`` ticks)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS


def cpu_between(before: CPUSample, after: CPUSample) -> float:
    """CPU seconds used between two samples of one process.

    The per-thread schedstat counters have nanosecond resolution and are used when no
    thread that existed before has gone; otherwise the tick-based ``stat`` total (which
    keeps the time of exited threads) is the honest answer.
    """
    if before.sched_ns and after.sched_ns and set(before.sched_ns) <= set(after.sched_ns):
        used = sum(after.sched_ns.values()) - sum(before.sched_ns.values())
        return used / 1e9
    return after.stat_seconds - before.stat_seconds


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (``VmRSS``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def memory_rollup(pid: int) -> dict[str, int]:
    """``Rss``, ``Pss`` and ``Uss`` (private clean + dirty) of ``pid`` in bytes.

    From ``/proc/<pid>/smaps_rollup``. USS is what the process alone holds; PSS adds
    its share of pages mapped by others too (libraries), and moves when other
    processes map or unmap them.
    """
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[name] = int(parts[0]) * 1024
    return {
        "rss": fields.get("Rss", 0),
        "pss": fields.get("Pss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


def open_files(pid: int) -> int:
    """How many file descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_file_limit(pid: int) -> int:
    """The soft ``RLIMIT_NOFILE`` of ``pid`` (``Max open files`` in ``/proc/<pid>/limits``)."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise BenchError(f"no open-file limit for pid {pid}")


class Child:
    """A child process that speaks in lines: ``READY``, ``WARM``, ``RESULT {...}``..."""

    def __init__(self, argv: Sequence[str], *, cpu: int | None, name: str, log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.{os.getpid()}.{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=child_env(),
            cwd=str(BENCH_DIR),
            preexec_fn=lambda: _child_setup(cpu),
        )
        self.pid = self.proc.pid
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)

    def read_line(self, timeout: float) -> str:
        """The next line the child prints; raises :class:`BenchError` on timeout or exit."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.name}: no answer within {timeout:.0f} s{self.log_tail()}")
            if not self._selector.select(left):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.proc.wait(timeout=5)
                missing = self.missing_module()
                if missing:
                    raise Unavailable(f"{missing} is not installed in this environment")
                raise BenchError(
                    f"{self.name}: exited with status {self.proc.returncode}{self.log_tail()}"
                )
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace").strip()

    def expect(self, word: str, timeout: float) -> str:
        """Read lines until one starts with ``word``; return the rest of that line."""
        while True:
            line = self.read_line(timeout)
            head, _, rest = line.partition(" ")
            if head == word:
                return rest
            if head == "UNAVAILABLE":
                raise Unavailable(rest)

    def send_line(self, text: str = "GO") -> None:
        """Tell the child to go on."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def missing_module(self) -> str | None:
        """The module named by a ``ModuleNotFoundError`` the child died of, if any."""
        try:
            self._log.flush()
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return None
        match = re.search(r"ModuleNotFoundError: No module named '([^']+)'", text)
        return match.group(1) if match else None

    def log_tail(self, limit: int = 1500) -> str:
        """The end of the child's stderr, for error messages."""
        try:
            self._log.flush()
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return f"\n--- {self.name} stderr ---\n{text[-limit:]}" if text.strip() else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child (SIGTERM, then SIGKILL) and release its pipes."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._selector.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._log.close()
        # Logs of clean runs are noise; keep the ones that say something.
        try:
            if self.log_path.stat().st_size == 0:
                self.log_path.unlink()
        except OSError:
            pass

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Unavailable(Exception):
    """The contender's API is not in this greenpoint yet (it printed ``UNAVAILABLE``)."""


@dataclass
class Context:
    """What every scenario needs: where to log, which cores, certificates, settings."""

    log_dir: Path
    quick: bool
    pin: bool
    cert_dir: Path
    python: str = sys.executable
    # Server processes for the idle regimes (run.py --server-processes): "auto" or a count.
    server_processes: str | int = "auto"

    @property
    def contender_cpu(self) -> int | None:
        return CONTENDER_CPU if self.pin else None

    @property
    def loadgen_cpu(self) -> int | None:
        return LOADGEN_CPU if self.pin else None

    def tls_files(self) -> tuple[Path, Path]:
        """``(certificate, key)`` PEM files for 127.0.0.1 and localhost, made once."""
        cert = self.cert_dir / "server.pem"
        key = self.cert_dir / "server.key"
        if not cert.exists():
            import trustme

            self.cert_dir.mkdir(parents=True, exist_ok=True)
            ca = trustme.CA()
            server = ca.issue_cert("127.0.0.1", "localhost")
            server.private_key_pem.write_to_path(str(key))
            server.cert_chain_pems[0].write_to_path(str(cert))
            for extra in server.cert_chain_pems[1:]:
                with open(cert, "ab") as f:
                    f.write(extra.bytes())
            ca.cert_pem.write_to_path(str(self.cert_dir / "ca.pem"))
        return cert, key

    def start(self, name: str, script: str, args: Sequence[str], cpu: int | None) -> Child:
        """Start ``bench/<script>`` with ``args`` as a fresh pinned child."""
        argv = [self.python, str(BENCH_DIR / script), *args]
        return Child(argv, cpu=cpu, name=name, log_dir=self.log_dir)

    def loadgen(self, args: Sequence[str]) -> Child:
        """Start the fixed load generator on its own core."""
        return self.start("loadgen", "loadgen.py", args, self.loadgen_cpu)


def parse_json(text: str, who: str) -> dict[str, Any]:
    """Decode a child's JSON line, naming the child when it is not JSON."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BenchError(f"{who}: bad result line {text[:200]!r}") from exc
    if not isinstance(value, dict):
        raise BenchError(f"{who}: result is not an object: {text[:200]!r}")
    return value
