"""The results file (machine, versions, every round) and the table printed at the end."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import ssl
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from _harness import GREENPOINT_ROOT, REPO_ROOT
from _scenario import Scenario
from _stats import median, round_ratios, verdict

PACKAGES = [
    "gevent",
    "greenlet",
    "twisted",
    "trio",
    "uvloop",
    "pyOpenSSL",
    "cryptography",
    "gunicorn",
]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": os.getloadavg(),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    return info


def _git(*args: str, cwd: Any = REPO_ROOT) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, Any]:
    """Python, OpenSSL, every peer package, and the greenpoint commit measured."""
    found: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "openssl": ssl.OPENSSL_VERSION,
    }
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    try:
        from OpenSSL import SSL

        found["pyopenssl_openssl"] = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    except ImportError:
        found["pyopenssl_openssl"] = None
    found["greenpoint_root"] = str(GREENPOINT_ROOT)
    found["greenpoint_commit"] = _git("rev-parse", "--short", "HEAD", cwd=GREENPOINT_ROOT)
    found["greenpoint_dirty"] = bool(
        _git("status", "--porcelain", "greenpoint", cwd=GREENPOINT_ROOT)
    )
    return found


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"


def first_line(text: str, limit: int = 70) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def scenario_table(scenario: Scenario, data: dict[str, Any]) -> list[str]:
    """The rows of one scenario: medians over rounds, and the median per-round ratio."""
    summary = data["summary"]
    rounds = data["rounds"]
    head = f"{'contender':<24}"
    for metric in scenario.metrics:
        head += f" {metric.label:>22} {'ratio':>7}"
    lines = [
        f"== {scenario.name}: {scenario.title} (rounds: {len(rounds)}; ratio to {scenario.baseline})",
        head,
    ]
    measured = {name for one_round in rounds for name in one_round}
    for contender in scenario.contenders:
        name = contender.name
        if name not in measured:
            continue
        results = [r.get(name, {}) for r in rounds]
        usable = summary.get(name, {})
        if not any(m.get("rounds") for m in usable.values()):
            reason = next((r["unavailable"] for r in results if "unavailable" in r), None)
            if reason is not None:
                lines.append(f"{name:<24} not available yet: {first_line(reason)}")
                continue
            error = next((r["error"] for r in results if "error" in r), "no result")
            lines.append(f"{name:<24} failed: {first_line(error)}")
            continue
        row = f"{name:<24}"
        for metric in scenario.metrics:
            cell = usable.get(metric.key, {})
            row += f" {_cell(cell.get('median'), metric.fmt):>22} {_ratio(cell.get('ratio')):>7}"
        failed = sum(1 for r in results if "error" in r)
        if failed:
            row += f"  ({failed} round(s) with errors)"
        lines.append(row)
    if scenario.notes:
        lines.append(f"   note: {scenario.notes}")
    return lines


def evaluate_targets(
    scenario: Scenario, summary: dict[str, Any], rounds: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """Each target of the scenario with the value it was judged on and the verdict."""
    judged = []
    for target in scenario.targets:
        cell = summary.get(target.contender, {}).get(target.metric, {})
        value = cell.get("ratio") if target.kind == "ratio" else cell.get("median")
        if target.reference is not None:
            ratios = [round_ratios(one, target.reference, target.metric) for one in rounds]
            usable = [r.get(target.contender) for r in ratios]
            value = median(x for x in usable if x is not None)
        judged.append(
            {
                "scenario": scenario.name,
                "contender": target.contender,
                "metric": target.metric,
                "kind": target.kind,
                "limit": target.limit,
                "at_most": target.at_most,
                "value": value,
                "verdict": verdict(value, target.limit, at_most=target.at_most),
                "text": target.text,
                "reference": target.reference or scenario.baseline,
            }
        )
    return judged


def targets_table(judged: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["== targets (medians over rounds)"]
    for t in judged:
        sign = "<=" if t["at_most"] else ">="
        unit = "x" if t["kind"] == "ratio" else ""
        value = "-" if t["value"] is None else f"{t['value']:.3g}{unit}"
        lines.append(
            f"{t['verdict']:<7} {t['scenario']:<9} {t['contender']:<22} {t['metric']:<20}"
            f" {value:>9} {sign} {t['limit']:g}{unit}   ({t['text']})"
        )
    return lines
