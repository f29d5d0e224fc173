"""Waiting on a condition instead of sleeping a guessed time.

A test that sleeps 50 ms "so the other greenlet has run" is slow when the machine is
idle and flaky when it is loaded. :func:`wait_until` polls the condition itself,
yielding to the other greenlets between polls, and fails with a message that names
what it waited for.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

import gevent

T = TypeVar("T")

POLL_INTERVAL = 0.002


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, what: str | None = None) -> T:
    """Poll ``predicate`` until it returns something true, and return that.

    Fails with ``AssertionError`` after ``timeout`` seconds; the message is ``what``, or
    else the source line of the predicate, so a failure says what never happened.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or _text(predicate)}"
            )
        gevent.sleep(POLL_INTERVAL)


def _text(predicate: Callable[[], object]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)
