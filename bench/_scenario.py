"""What a scenario is: contenders, a baseline, metrics, targets and one measure function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Metric:
    """One number a scenario reports per contender and round."""

    key: str
    label: str
    fmt: str = ".2f"
    lower_is_better: bool = True


@dataclass(frozen=True)
class Target:
    """An issue-10 goal for a greenpoint contender.

    ``kind="ratio"`` compares the median over rounds of the per-round ratio to the
    baseline with ``limit``; ``kind="value"`` compares the median raw value.
    """

    contender: str
    metric: str
    limit: float
    kind: str = "ratio"
    at_most: bool = True
    text: str = ""
    # Judge the ratio to this contender of the same round instead of the baseline
    # (issue 21: the latency target is against a bare gevent connect()).
    reference: str | None = None


@dataclass
class Scenario:
    """A benchmark scenario; ``measure(ctx, contender, settings)`` makes one measurement."""

    name: str
    title: str
    baseline: str
    contenders: Sequence[Any]
    metrics: Sequence[Metric]
    measure: Callable[[Any, Any, dict[str, Any]], dict[str, Any]]
    settings: Callable[[bool], dict[str, Any]]
    targets: Sequence[Target] = field(default_factory=list)
    # Metrics shown in the ratio column of the summary table (default: all).
    notes: str = ""
