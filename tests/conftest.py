"""Shared fixtures. Every test is checked for leaked file descriptors."""

from __future__ import annotations

import gc
import os
import time

import gevent
import pytest


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each points at."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the fd listdir itself used, already closed
    return fds


def _settle(collect: bool) -> None:
    # Let greenlets that are closing sockets run, and collect dropped objects.
    for _ in range(3):
        gevent.sleep(0)
    if collect:
        gc.collect()


@pytest.fixture(autouse=True)
def no_fd_leak(request):
    """Fail the test if it leaves a file descriptor open."""
    _settle(collect=False)
    before = open_fds()
    yield
    deadline = time.monotonic() + 2.0
    collect = False  # a full gc costs ~80 ms; only pay it when fds are still open
    while True:
        _settle(collect)
        leaked = {fd: target for fd, target in open_fds().items() if fd not in before}
        if not leaked or time.monotonic() > deadline:
            break
        collect = True
        gevent.sleep(0.02)
    assert not leaked, f"file descriptors leaked: {leaked}"
