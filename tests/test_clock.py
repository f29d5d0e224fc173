"""The one time seam: the real clock, deadlines, and refusing what is not a clock."""

from __future__ import annotations

import time

import pytest
from _tls_helpers import make_certs

from greenpoint._clock import MONOTONIC, Clock, check_clock, deadline_after, time_left
from greenpoint.cli._pump import Pump
from greenpoint.testing import FakeClock
from greenpoint.tls import ServerTLSOptions, SNIServerOptions


def test_the_real_clock_is_monotonic_time_and_sleeps_the_greenlet():
    before = time.monotonic()
    MONOTONIC.sleep(0.01)
    assert before + 0.01 <= MONOTONIC.now() <= time.monotonic()


def test_deadlines_on_the_real_clock():
    assert deadline_after(None) is None and time_left(None) is None
    when = deadline_after(60)
    assert 59 < time_left(when) <= 60
    assert time_left(deadline_after(-1)) < 0  # passed


def test_the_fake_clock_fits_the_seam():
    clock: Clock = FakeClock(5.0, autojump=False)
    check_clock(clock)
    assert clock.now() == 5.0


@pytest.mark.parametrize("not_a_clock", [time.monotonic, 1000.0, None])
def test_what_is_not_a_clock_is_refused_when_given(tmp_path, not_a_clock):
    certs = make_certs(tmp_path)
    with pytest.raises(TypeError, match="clock must be a clock with now"):
        ServerTLSOptions(certs.server_pem, clock=not_a_clock)
    with pytest.raises(TypeError, match="clock must be a clock with now"):
        SNIServerOptions(certs.directory, clock=not_a_clock)


def test_pump_times_on_the_clock_it_is_given():
    class Ended:
        def recv(self, size):
            return b""

        def shutdown(self, how):
            pass

    clock = FakeClock(100.0, autojump=False)
    pump = Pump(Ended(), Ended(), clock=clock)
    clock.advance(2.5)
    assert pump.elapsed == 2.5
    pump.run()
    clock.advance(1)
    assert pump.elapsed == 2.5  # stopped when the pump finished
