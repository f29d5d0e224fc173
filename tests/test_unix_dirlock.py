"""greenpoint._dirlock: the directory lock held while a stale UNIX socket is removed."""

from __future__ import annotations

import fcntl
import os

import gevent
import pytest

from greenpoint._dirlock import directory_lock

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def held(tmp_path):
    """Another holder of the lock on tmp_path (flock: another open description)."""
    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield fd
    os.close(fd)


def test_a_free_directory_is_locked_and_released(tmp_path):
    with directory_lock(str(tmp_path), wait=1.0) as locked:
        assert locked
        probe = os.open(tmp_path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)
    with directory_lock(str(tmp_path), wait=0) as locked:
        assert locked  # released on the way out


def test_a_waiter_gets_the_lock_once_it_is_released(tmp_path, held):
    gevent.spawn_later(0.05, fcntl.flock, held, fcntl.LOCK_UN)
    with directory_lock(str(tmp_path), wait=10.0) as locked:
        assert locked


def test_a_lock_held_too_long_lets_the_block_run_unlocked(tmp_path, held):
    with directory_lock(str(tmp_path), wait=0.05) as locked:
        assert not locked


def test_a_directory_that_cannot_be_opened_runs_the_block_unlocked(tmp_path):
    with directory_lock(str(tmp_path / "missing"), wait=1.0) as locked:
        assert not locked
