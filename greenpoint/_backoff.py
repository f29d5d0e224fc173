"""How long to wait before the next reconnection attempt. Pure: no I/O, no clock.

A delay policy is any callable ``(attempt) -> seconds``, where ``attempt`` is 1 for the
first retry (the wait after the first failure), 2 for the second, and so on. The
reconnecting client counts attempts and sleeps; the policy only decides how long.
:class:`Backoff` is the default policy; anything with the same call signature can
replace it.

:class:`Backoff` grows the delay exponentially and spreads it with jitter:

    base(n)  = min(initial_delay * factor ** (n - 1), max_delay)
    delay(n) = base(n) * (1 - jitter * u)        with u drawn from [0, 1]

so the first retry waits ``initial_delay`` (less its jitter), the delay never
exceeds ``max_delay`` and is never negative. ``jitter`` is the largest fraction
taken off: 0 turns jitter off, 1 is "full jitter" (uniform between 0 and the base
delay). The jitter only ever shortens a delay, which has two effects worth having:
the cap needs no clipping after jitter, and clients that have all reached the cap
keep being spread out, instead of half of them piling up at exactly ``max_delay``
as a symmetric jitter clipped at the cap would do.

What Twisted gets wrong, and this does not (see ANCHORS.md §1.10):

* ``ReconnectingClientFactory`` applies jitter *after* the cap, so delays exceed
  ``maxDelay``; its ``normalvariate`` jitter can go negative and compounds because
  the jittered delay is stored; its 1 h cap is reached after about 8 failures; and
  a subclass's ``initialDelay`` is ignored until ``resetDelay()``.
* ``ClientService``'s ``backoffPolicy`` is called with the failure count already
  incremented, so its first retry waits 1.5-2.5 s instead of 1 s.
"""

from __future__ import annotations

import dataclasses
import operator
import random as _random
from collections.abc import Callable

from greenpoint._checks import finite_number, whole_number

__all__ = [
    "DEFAULT_FACTOR",
    "DEFAULT_INITIAL_DELAY",
    "DEFAULT_JITTER",
    "DEFAULT_MAX_DELAY",
    "Backoff",
    "DelayPolicy",
    "retry_policy",
]

DelayPolicy = Callable[[int], float]
"""``(attempt) -> seconds``: ``attempt`` is 1 for the first retry."""

DEFAULT_INITIAL_DELAY = 1.0  # seconds before the first retry, as Twisted's initialDelay
DEFAULT_MAX_DELAY = 60.0  # a minute; Twisted's 1 h cap leaves a service down for an hour
DEFAULT_FACTOR = 2.0  # 1, 2, 4, ... 32, 60: the cap is reached on the 7th retry
DEFAULT_JITTER = 0.2  # up to 20 % shorter: the first retry waits 0.8-1.0 s


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential back-off with jitter; call it with the attempt number.

    Args:
        initial_delay: seconds before the first retry (before jitter), ``>= 0``.
        max_delay: no delay is ever longer, ``>= initial_delay``.
        factor: each retry waits this many times longer than the last, ``>= 1``.
        jitter: the largest fraction of a delay taken off at random, in ``[0, 1]``;
            ``0`` for exact delays, ``1`` for full jitter.
        random: the random source, a callable returning a float in ``[0, 1]``
            (``random.random`` by default); replace it to get exact delays in tests
            or a seeded ``random.Random(seed).random`` for a reproducible schedule.
            It is called once per delay, and only when ``jitter`` is not 0.

    Raises:
        ValueError: for a parameter outside its range or not finite.
    """

    initial_delay: float = DEFAULT_INITIAL_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    factor: float = DEFAULT_FACTOR
    jitter: float = DEFAULT_JITTER
    random: Callable[[], float] = dataclasses.field(
        default=_random.random, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for name in ("initial_delay", "max_delay", "factor", "jitter"):
            finite_number(name, getattr(self, name))
        if self.initial_delay < 0:
            raise ValueError(f"initial_delay must be 0 or more, not {self.initial_delay!r}")
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay!r}) must be at least initial_delay "
                f"({self.initial_delay!r})"
            )
        if self.factor < 1:
            raise ValueError(f"factor must be 1 or more (delays never shrink), not {self.factor!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction between 0 and 1, not {self.jitter!r}")

    def base_delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` without jitter (capped)."""
        exponent = _attempt_number(attempt) - 1
        if self.initial_delay == 0:
            return 0.0
        try:
            # float, so a huge exponent overflows at once instead of building a
            # giant int (2 ** 10**9 would run for minutes).
            growth = float(self.factor) ** exponent
        except OverflowError:  # long past the cap
            return float(self.max_delay)
        return float(min(self.initial_delay * growth, self.max_delay))

    def __call__(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
        delay = self.base_delay(attempt)
        if self.jitter:
            # Clamp the draw, so that a random source slightly out of range cannot
            # break the guarantees below.
            draw = min(max(float(self.random()), 0.0), 1.0)
            delay *= 1.0 - self.jitter * draw
        # Jitter only shortens a delay, so this is a guarantee, not a correction:
        # never negative, never above the cap.
        return min(max(delay, 0.0), float(self.max_delay))


def _attempt_number(attempt: int) -> int:
    if isinstance(attempt, bool):
        raise TypeError("the attempt number must be an int, not a bool")
    number = operator.index(attempt)  # TypeError for 1.5, "1", None
    if number < 1:
        raise ValueError(f"attempt numbers start at 1 (the first retry), not {number}")
    return number


def retry_policy(
    max_retries: int | None,
    policy: DelayPolicy | None,
    initial_delay: float,
    max_delay: float,
    factor: float,
    jitter: float,
) -> DelayPolicy:
    """The delay policy a reconnecting client was given, its arguments checked:
    ``policy`` or the four knobs (not both), and ``max_retries`` ``None`` or >= 0."""
    if max_retries is not None:
        whole_number("max_retries", max_retries, 0)
    knobs = (initial_delay, max_delay, factor, jitter)
    defaults = (DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY, DEFAULT_FACTOR, DEFAULT_JITTER)
    if policy is None:
        return Backoff(initial_delay, max_delay, factor, jitter)
    if not callable(policy):
        raise TypeError(f"policy must be a callable (attempt) -> seconds, not {policy!r}")
    if knobs != defaults:
        raise ValueError("give either policy= or initial_delay/max_delay/factor/jitter")
    return policy
