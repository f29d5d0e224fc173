"""Running ``python -m greenpoint`` and the examples as child processes, cooperatively.

Children are started with ``gevent.subprocess`` so that a server running in the test
process keeps serving while the test waits for a child, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from pathlib import Path

import gevent
from gevent import subprocess

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# How long a child may take to come up (or to stop its workers): importing
# greenpoint takes ~0.5 s on an idle machine but 4-5 s while other test suites load
# both cores, and `wsgi --workers N` then starts N more interpreters.
STARTUP_TIMEOUT = 30.0


def child_env(**extra: str) -> dict[str, str]:
    """The environment for children: the checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_PID", None)
    env.update(extra)
    return env


def greenpoint_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "greenpoint", *args]


def run(
    args: list[str], *, input: bytes = b"", timeout: float = 20, **kwargs
) -> subprocess.CompletedProcess:
    """Run a child to completion, feeding ``input``; bounded by ``timeout``."""
    kwargs.setdefault("env", child_env())
    return subprocess.run(args, input=input, capture_output=True, timeout=timeout, **kwargs)


def run_greenpoint(*args: str, input: bytes = b"", timeout: float = 20, **kwargs):
    return run(greenpoint_command(*args), input=input, timeout=timeout, **kwargs)


class Child:
    """A running child whose stderr is read line by line (kept in ``lines``)."""

    def __init__(
        self, args: list[str], *, stdin=subprocess.DEVNULL, merge: bool = False, **kwargs
    ) -> None:
        kwargs.setdefault("env", child_env())
        stderr = subprocess.STDOUT if merge else subprocess.PIPE
        self.process = subprocess.Popen(
            args, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, **kwargs
        )
        # What wait_for reads: stderr, or stdout with stderr merged into it.
        self._watched = self.process.stdout if merge else self.process.stderr
        self.lines: list[str] = []

    def wait_for(self, pattern: str, timeout: float = 10, count: int = 1) -> re.Match:
        """Read stderr until ``count`` lines matched ``pattern``; return the last match."""
        regex = re.compile(pattern)
        found = 0
        for line in self.lines:
            if match := regex.search(line):
                found += 1
                if found == count:
                    return match
        with gevent.Timeout(timeout, AssertionError(f"no {pattern!r} in {self.lines!r}")):
            while True:
                raw = self._watched.readline()
                if not raw:
                    raise AssertionError(f"child ended without {pattern!r}: {self.lines!r}")
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                if match := regex.search(line):
                    found += 1
                    if found == count:
                        return match

    def port(self, pattern: str = r"(?:listening on|relaying|on) 127\.0\.0\.1:(\d+)") -> int:
        return int(self.wait_for(pattern).group(1))

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, bytes, str]:
        """Signal the child and wait; returns (status, stdout, rest of stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.finish(timeout)

    def finish(self, timeout: float = 10) -> tuple[int, bytes, str]:
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
        if self._watched is self.process.stdout:
            out, err = b"", out
        rest = err.decode(errors="replace")
        self.lines.extend(rest.splitlines())
        return self.process.returncode, out, rest

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.communicate(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
