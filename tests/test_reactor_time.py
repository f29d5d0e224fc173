"""greenpoint.clock: Twisted's IReactorTime shape on gevent timers."""

from __future__ import annotations

import subprocess
import sys

import gevent
import pytest
from _wait_helpers import wait_until

import greenpoint
from greenpoint._reactor_time import AlreadyCalled, AlreadyCancelled, Clock


def test_call_later_runs_the_call_with_its_arguments():
    seen = []
    call = greenpoint.clock.callLater(0.01, lambda *a, **k: seen.append((a, k)), 1, two=2)
    assert call.active()
    wait_until(lambda: seen, what="the call")
    assert seen == [((1,), {"two": 2})]
    assert call.called and not call.active()


def test_cancelled_call_never_runs_and_leaves_the_pending_list():
    clock = Clock()
    seen = []
    call = clock.callLater(0.01, seen.append, 1)
    assert clock.getDelayedCalls() == [call]
    call.cancel()
    assert clock.getDelayedCalls() == []
    # A later call has run, so the loop is past the cancelled call's time.
    clock.callLater(0.05, seen.append, "later")
    wait_until(lambda: seen, what="the later call")
    assert seen == ["later"]
    assert call.cancelled and not call.active()


def test_reset_and_delay_move_the_due_time():
    clock = Clock()
    ran_at: list[float] = []
    call = clock.callLater(0.02, lambda: ran_at.append(clock.seconds()))
    # Bracketed by the clock: a loaded machine may stall between any two lines.
    before = clock.seconds()
    call.reset(0.3)
    after = clock.seconds()
    assert before + 0.3 <= call.getTime() <= after + 0.3
    due = call.getTime()
    call.delay(0.1)
    assert call.getTime() == pytest.approx(due + 0.1)
    wait_until(lambda: ran_at, what="the call")
    assert len(ran_at) == 1
    # The original 0.02 s arming did not fire: it ran at the moved time.
    assert ran_at[0] >= due + 0.1


@pytest.mark.parametrize("method", ["cancel", "reset", "delay"])
def test_using_a_spent_call_raises_already_called(method):
    call = greenpoint.clock.callLater(0, lambda: None)
    wait_until(lambda: call.called, what="the call")
    args = () if method == "cancel" else (1,)
    with pytest.raises(AlreadyCalled):
        getattr(call, method)(*args)


def test_using_a_cancelled_call_raises_already_cancelled():
    call = greenpoint.clock.callLater(1, lambda: None)
    call.cancel()
    with pytest.raises(AlreadyCancelled):
        call.cancel()


def test_errors_are_also_twisteds_when_twisted_is_loaded():
    from twisted.internet import error

    call = greenpoint.clock.callLater(1, lambda: None)
    call.cancel()
    with pytest.raises(error.AlreadyCancelled):
        call.reset(1)


@pytest.mark.parametrize("delay", [-1, float("nan")])
def test_bad_delay_is_refused(delay):
    with pytest.raises(ValueError, match="delay"):
        greenpoint.clock.callLater(delay, lambda: None)


def test_a_callback_that_raises_is_logged_and_others_still_run(caplog):
    seen = []
    greenpoint.clock.callLater(0, lambda: 1 / 0)
    greenpoint.clock.callLater(0.01, seen.append, "after")
    wait_until(lambda: seen, what="the second call")
    assert seen == ["after"]
    assert "ZeroDivisionError" in caplog.text


def test_seconds_is_monotonic_and_matches_get_time():
    before = greenpoint.clock.seconds()
    call = greenpoint.clock.callLater(2, lambda: None)
    assert before + 2 <= call.getTime() <= greenpoint.clock.seconds() + 2
    call.cancel()


def test_reset_to_an_earlier_time_fires_early():
    seen = []
    call = greenpoint.clock.callLater(5, seen.append, "early")
    call.reset(0.01)
    wait_until(lambda: seen, timeout=2, what="the call, long before its first time (5 s)")
    assert seen == ["early"]


def test_many_resets_run_the_call_once_at_the_last_time():
    clock = Clock()
    ran_at: list[float] = []
    call = clock.callLater(0.05, lambda: ran_at.append(clock.seconds()))
    for _ in range(100):  # as TimeoutMixin.resetTimeout does per line
        last_reset = clock.seconds()
        call.reset(0.2)
    # Times, not sleeps: a loaded machine may stall anywhere, but the call must
    # not run before its last reset's due time, whenever the test gets to look.
    wait_until(lambda: ran_at, what="the call")
    gevent.sleep(0.05)  # the sleep is the check: a leaked arming due as early runs too
    assert len(ran_at) == 1
    assert ran_at[0] >= last_reset + 0.2  # not the first 0.05 s nor an earlier reset's


# Run in a fresh process: the loop must not have turned since the hub was made.
_STALE_LOOP_CALL = """
import time, gevent, greenpoint
gevent.get_hub()  # the loop's clock is read here...
time.sleep(0.6)  # ...and left behind: the process computes without yielding
began = time.monotonic()
fired = []
greenpoint.clock.callLater(0.3, lambda: fired.append(time.monotonic() - began))
while not fired:
    gevent.sleep(0.01)
print(fired[0])
"""


def test_a_call_counts_its_delay_from_now_even_if_the_loop_was_blocked():
    child = subprocess.run(
        [sys.executable, "-c", _STALE_LOOP_CALL], capture_output=True, text=True, timeout=15
    )
    assert child.returncode == 0, child.stderr
    # Before: the timer counted from the loop's last reading, and fired at once.
    assert 0.25 <= float(child.stdout) < 2.0
