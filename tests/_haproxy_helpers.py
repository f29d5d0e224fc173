"""Run a real HAProxy for the PROXY-protocol tests (Debian package: haproxy)."""

from __future__ import annotations

import contextlib
import os
import shutil

import gevent
import pytest
from gevent import subprocess as gsubprocess

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
)


@contextlib.contextmanager
def haproxy_process(tmp_path, config_lines, pass_fds, settle=0.05):
    """Start ``haproxy -db`` with this configuration; stop it (and reap it) on exit.

    ``pass_fds`` are the pre-bound listening sockets the configuration names as
    ``bind fd@N``, so there is no race for a port. Fails the test if HAProxy exits at
    once, showing its log.
    """
    config = tmp_path / "haproxy.cfg"
    config.write_text("\n".join(config_lines) + "\n")
    log_path = tmp_path / "haproxy.log"
    with open(log_path, "wb") as log:
        process = gsubprocess.Popen(
            [HAPROXY, "-f", str(config), "-db"],
            pass_fds=list(pass_fds),
            stdin=gsubprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        gevent.sleep(settle)
        if process.poll() is not None:
            pytest.fail(f"haproxy exited at once:\n{log_path.read_text()}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except gsubprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
