"""Pure arithmetic of the benchmark: rotation, ratios within a round, medians over rounds.

Nothing here does I/O, so ``tests/test_bench_smoke.py`` checks it with plain values.

The machine is shared and noisy, so a result is never a raw number compared across
rounds: within one round every contender runs once, each ratio is taken against the
baseline of that same round, and only then is the median taken over rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "median",
    "rotated",
    "round_ratios",
    "summarise",
    "verdict",
]


def median(values: Iterable[float]) -> float | None:
    """The median of the finite values, or ``None`` when there are none."""
    finite = sorted(v for v in values if v is not None and math.isfinite(v))
    if not finite:
        return None
    middle = len(finite) // 2
    if len(finite) % 2:
        return finite[middle]
    return (finite[middle - 1] + finite[middle]) / 2


def rotated(items: Sequence[Any], round_index: int) -> list[Any]:
    """``items`` rotated left by ``round_index``: each contender takes each slot in turn.

    Rotation spreads slow drifts of the shared machine (another job starting, thermal
    limits) over every contender instead of always hitting the one measured last.
    """
    if not items:
        return []
    shift = round_index % len(items)
    return list(items[shift:]) + list(items[:shift])


def round_ratios(
    results: Mapping[str, Mapping[str, Any]], baseline: str, metric: str
) -> dict[str, float | None]:
    """Each contender's ``metric`` divided by the baseline's, within one round.

    ``results`` maps contender name to its result dict for this round. A contender
    without the metric (unavailable, failed) gets ``None``; so does everyone when the
    baseline itself has no usable value.
    """
    base = results.get(baseline, {}).get(metric)
    ratios: dict[str, float | None] = {}
    for name, result in results.items():
        value = result.get(metric)
        if value is None or base is None or base == 0:
            ratios[name] = None
        else:
            ratios[name] = value / base
    return ratios


def summarise(
    rounds: Sequence[Mapping[str, Mapping[str, Any]]], baseline: str, metrics: Sequence[str]
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per contender and metric: median of the raw values and median of the per-round ratios.

    Returns ``{contender: {metric: {"median": m, "ratio": r, "rounds": n}}}`` where ``n``
    counts the rounds that gave a value.
    """
    names: list[str] = []
    for one_round in rounds:
        for name in one_round:
            if name not in names:
                names.append(name)
    summary: dict[str, dict[str, dict[str, float | None]]] = {name: {} for name in names}
    for metric in metrics:
        per_round = [round_ratios(one_round, baseline, metric) for one_round in rounds]
        for name in names:
            values = [r.get(name, {}).get(metric) for r in rounds]
            ratios = [r.get(name) for r in per_round]
            usable = [v for v in values if v is not None]
            summary[name][metric] = {
                "median": median(usable),
                "ratio": median(x for x in ratios if x is not None),
                "rounds": len(usable),
            }
    return summary


def verdict(value: float | None, limit: float, *, at_most: bool = True) -> str:
    """``"met"``, ``"MISSED"`` or ``"n/a"`` for a target ``value <= limit`` (or ``>=``)."""
    if value is None:
        return "n/a"
    ok = value <= limit if at_most else value >= limit
    return "met" if ok else "MISSED"
