"""A plain-text picture of the ``reqresp`` scenario: CPU per request as N grows.

    python bench/ascii_chart.py RESULTS.json

One bar per contender and connection count, the median over rounds (raw µs per
request, not ratios); matplotlib is not needed.
"""

from __future__ import annotations

import json
import statistics
import sys

WIDTH = 50


def medians(rounds: list[dict], metric: str) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for one in rounds:
        for name, result in one.items():
            if result.get(metric) is not None:
                values.setdefault(name, []).append(result[metric])
    return {name: statistics.median(v) for name, v in values.items()}


def chart(rounds: list[dict], counts: list[int]) -> str:
    per_count = {n: medians(rounds, f"us_per_req_{n}") for n in counts}
    top = max((v for m in per_count.values() for v in m.values()), default=1.0)
    lines = [
        f"server CPU us per request (median over {len(rounds)} rounds); '#' = {top / WIDTH:.2f} us"
    ]
    for n in counts:
        lines.append(f"{n:,} connections")
        for name, value in per_count[n].items():
            bar = "#" * max(1, round(value / top * WIDTH))
            lines.append(f"  {name:22s} {value:6.1f} {bar}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as file:
        scenario = json.load(file)["scenarios"]["reqresp"]
    print(chart(scenario["rounds"], scenario["settings"]["counts"]))


if __name__ == "__main__":
    main()
