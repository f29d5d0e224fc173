"""The reconnection delay policy: exact values with a scripted random source."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenpoint._backoff import (
    DEFAULT_FACTOR,
    DEFAULT_INITIAL_DELAY,
    DEFAULT_JITTER,
    DEFAULT_MAX_DELAY,
    Backoff,
)

SETTINGS = settings(deadline=None, database=None)


def constant(value):
    """A random source that always draws ``value``, and counts its calls."""

    def draw():
        draw.calls += 1
        return value

    draw.calls = 0
    return draw


def test_defaults():
    policy = Backoff()
    assert (policy.initial_delay, policy.max_delay, policy.factor, policy.jitter) == (
        1.0,
        60.0,
        2.0,
        0.2,
    )
    assert (DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY, DEFAULT_FACTOR, DEFAULT_JITTER) == (
        1.0,
        60.0,
        2.0,
        0.2,
    )


def test_unjittered_schedule_starts_at_initial_delay_and_stops_at_the_cap():
    policy = Backoff(jitter=0)
    assert [policy(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_first_retry_waits_exactly_initial_delay():
    # Twisted's ClientService waits 1.5-2.5 s here (its count is already incremented).
    assert Backoff(initial_delay=0.5, factor=3, jitter=0)(1) == 0.5
    assert Backoff(initial_delay=2.0, factor=1.5, max_delay=10, jitter=0)(1) == 2.0


@pytest.mark.parametrize(
    ("draw", "expected"),
    [
        (0.0, [1.0, 2.0, 4.0, 60.0]),  # nothing taken off
        (0.5, [0.9, 1.8, 3.6, 54.0]),  # 10 % off with the default 20 % jitter
        (1.0, [0.8, 1.6, 3.2, 48.0]),  # the most taken off
    ],
)
def test_default_jitter_takes_off_up_to_a_fifth(draw, expected):
    policy = Backoff(random=constant(draw))
    assert [policy(n) for n in (1, 2, 3, 20)] == pytest.approx(expected)


def test_full_jitter_spreads_between_zero_and_the_base_delay():
    assert Backoff(jitter=1, random=constant(0.25))(3) == pytest.approx(3.0)  # 4 s, a quarter off
    assert Backoff(jitter=1, random=constant(1.0))(3) == 0.0
    assert Backoff(jitter=1, random=constant(0.0))(30) == 60.0


def test_at_the_cap_clients_stay_spread_out():
    # A symmetric jitter clipped at the cap would put half of them at exactly 60 s.
    delays = [Backoff(random=constant(u / 10))(50) for u in range(11)]
    assert delays == sorted(delays, reverse=True)
    assert len(set(delays)) == 11
    assert max(delays) == 60.0 and min(delays) == pytest.approx(48.0)


@pytest.mark.parametrize("draw", [-5.0, -0.1, 1.5, 1e9])
def test_a_random_source_out_of_range_cannot_break_the_bounds(draw):
    policy = Backoff(jitter=1, random=constant(draw))
    for attempt in (1, 5, 100):
        assert 0.0 <= policy(attempt) <= 60.0


def test_random_source_is_called_once_per_delay_and_never_without_jitter():
    draw = constant(0.5)
    policy = Backoff(random=draw)
    for attempt in range(1, 6):
        policy(attempt)
    assert draw.calls == 5
    quiet = constant(0.5)
    Backoff(jitter=0, random=quiet)(3)
    assert quiet.calls == 0


def test_a_seeded_source_gives_a_reproducible_schedule():
    one = Backoff(random=random.Random(7).random)
    two = Backoff(random=random.Random(7).random)
    assert [one(n) for n in range(1, 20)] == [two(n) for n in range(1, 20)]


def test_huge_attempt_numbers_stay_at_the_cap_quickly():
    assert Backoff(jitter=0)(10**12) == 60.0
    assert Backoff(factor=2, jitter=0)(10**9) == 60.0  # an int factor must not build 2**10**9
    assert Backoff(initial_delay=0, jitter=0)(10**12) == 0.0


def test_factor_one_is_a_constant_delay():
    policy = Backoff(initial_delay=5, max_delay=5, factor=1, jitter=0)
    assert {policy(n) for n in range(1, 50)} == {5.0}


def test_delays_are_floats():
    assert type(Backoff(initial_delay=1, max_delay=8, factor=2, jitter=0)(2)) is float
    assert type(Backoff(initial_delay=1, max_delay=8, factor=2, jitter=0)(9)) is float


@pytest.mark.parametrize(
    ("attempt", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (1.5, TypeError),
        ("1", TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
def test_attempt_numbers_start_at_one(attempt, error):
    with pytest.raises(error):
        Backoff()(attempt)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"initial_delay": -1}, "initial_delay must be 0 or more"),
        ({"initial_delay": 10, "max_delay": 5}, "must be at least initial_delay"),
        ({"factor": 0.5}, "factor must be 1 or more"),
        ({"jitter": -0.1}, "jitter is a fraction"),
        ({"jitter": 1.5}, "jitter is a fraction"),
        ({"max_delay": float("inf")}, "max_delay must be a finite number, not inf"),
        ({"initial_delay": float("nan")}, "initial_delay must be a finite number, not nan"),
        ({"factor": "2"}, "factor must be a number, not str '2'"),
        ({"jitter": True}, "jitter must be a number, not bool True"),
    ],
)
def test_bad_parameters_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        Backoff(**kwargs)


def test_policies_compare_by_their_numbers():
    assert Backoff(random=constant(0.1)) == Backoff(random=constant(0.9))
    assert Backoff(factor=3) != Backoff()
    assert "random" not in repr(Backoff())


# Properties over any valid policy, attempt and draw.

policies = st.builds(
    lambda initial, extra, factor, jitter, draw: Backoff(
        initial_delay=initial,
        max_delay=initial + extra,
        factor=factor,
        jitter=jitter,
        random=constant(draw),
    ),
    st.floats(0, 100),
    st.floats(0, 10_000),
    st.floats(1, 10),
    st.floats(0, 1),
    st.floats(0, 1),
)
attempts = st.integers(1, 10**6)


@SETTINGS
@given(policies, attempts)
def test_never_negative_never_above_the_cap(policy, attempt):
    delay = policy(attempt)
    assert 0.0 <= delay <= policy.max_delay


@SETTINGS
@given(policies, attempts)
def test_jitter_only_shortens_and_by_at_most_its_fraction(policy, attempt):
    base = policy.base_delay(attempt)
    delay = policy(attempt)
    assert delay <= base
    assert delay >= base * (1 - policy.jitter) - 1e-9 * base


@SETTINGS
@given(policies)
def test_without_jitter_the_first_delay_is_initial_delay(policy):
    exact = Backoff(policy.initial_delay, policy.max_delay, policy.factor, jitter=0)
    assert exact(1) == policy.initial_delay


@SETTINGS
@given(policies, attempts, attempts)
def test_unjittered_delays_never_shrink(policy, one, two):
    exact = Backoff(policy.initial_delay, policy.max_delay, policy.factor, jitter=0)
    low, high = sorted((one, two))
    assert exact(low) <= exact(high)
    assert exact(low) == policy.base_delay(low)
