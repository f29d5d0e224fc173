"""Per-round ratios to any contender of a results file, medians over rounds.

    python bench/ratio_to.py RESULTS.json latency median_us gevent-socket
    python bench/ratio_to.py RESULTS.json echo cpu_s_per_gb greenpoint-serve

``run.py`` divides by the scenario's baseline; this divides by another contender
measured in the same rounds (e.g. the latency target against a bare gevent
``connect()``), so the machine's quick and slow phases still cancel out.
"""

from __future__ import annotations

import json
import statistics
import sys


def ratios_to(rounds: list[dict], metric: str, reference: str) -> dict[str, list[float]]:
    """``{contender: [ratio per round]}`` for rounds where both have ``metric``."""
    found: dict[str, list[float]] = {}
    for one in rounds:
        base = one.get(reference, {}).get(metric)
        if not base:
            continue
        for name, result in one.items():
            value = result.get(metric)
            if value is not None:
                found.setdefault(name, []).append(value / base)
    return found


def main() -> None:
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    path, scenario, metric, reference = sys.argv[1:]
    with open(path) as file:
        rounds = json.load(file)["scenarios"][scenario]["rounds"]
    print(f"{scenario} {metric}: ratio to {reference} (median of per-round ratios, range)")
    for name, values in ratios_to(rounds, metric, reference).items():
        print(
            f"  {name:26s} {statistics.median(values):6.2f}x"
            f"   ({min(values):.2f}-{max(values):.2f}, {len(values)} rounds)"
        )


if __name__ == "__main__":
    main()
