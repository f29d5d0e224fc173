"""The benchmark harness: its pure arithmetic, and one tiny real run against raw gevent.

No timing is asserted here (the machine is shared): the run only has to produce a
results file whose numbers exist and make sense.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stats = _load("_stats")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        ([3.0], 3.0),
        ([3.0, 1.0, 2.0], 2.0),
        ([4.0, 1.0, 3.0, 2.0], 2.5),
        ([None, 5.0, float("nan"), 1.0], 3.0),
    ],
)
def test_median_ignores_missing_values(values, expected):
    assert stats.median(values) == expected


def test_rotation_gives_every_contender_every_slot():
    names = ["a", "b", "c"]
    orders = [stats.rotated(names, r) for r in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert stats.rotated(names, 4) == ["b", "c", "a"]
    assert stats.rotated([], 2) == []


def test_ratios_are_taken_within_a_round():
    one_round = {
        "base": {"cpu": 2.0},
        "fast": {"cpu": 1.0},
        "missing": {"unavailable": "not yet"},
    }
    assert stats.round_ratios(one_round, "base", "cpu") == {
        "base": 1.0,
        "fast": 0.5,
        "missing": None,
    }
    # Without a baseline value nothing can be compared.
    assert stats.round_ratios({"base": {}, "x": {"cpu": 1.0}}, "base", "cpu") == {
        "base": None,
        "x": None,
    }


def test_summary_is_the_median_of_per_round_ratios_not_the_ratio_of_medians():
    # The machine got twice as slow in round 2: per-round ratios stay 1.5 for "x".
    rounds = [
        {"base": {"cpu": 1.0}, "x": {"cpu": 1.5}},
        {"base": {"cpu": 2.0}, "x": {"cpu": 3.0}},
        {"base": {"cpu": 1.0}, "x": {"cpu": 1.5}},
    ]
    summary = stats.summarise(rounds, "base", ["cpu"])
    assert summary["x"]["cpu"] == {"median": 1.5, "ratio": 1.5, "rounds": 3}
    assert summary["base"]["cpu"] == {"median": 1.0, "ratio": 1.0, "rounds": 3}


@pytest.mark.parametrize(
    ("value", "limit", "at_most", "expected"),
    [
        (1.04, 1.05, True, "met"),
        (1.06, 1.05, True, "MISSED"),
        (0.96, 0.95, False, "met"),
        (0.90, 0.95, False, "MISSED"),
        (None, 1.0, True, "n/a"),
    ],
)
def test_verdict(value, limit, at_most, expected):
    assert stats.verdict(value, limit, at_most=at_most) == expected


@pytest.mark.timeout(120)
def test_quick_connection_run_against_raw_gevent_writes_a_results_file(tmp_path):
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--quick",
            "--scenarios",
            "connrate",
            "--contenders",
            "gevent",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(out.read_text())
    assert report["versions"]["gevent"]
    assert report["machine"]["cpu_count"] >= 1
    (one_round,) = report["scenarios"]["connrate"]["rounds"]
    result = one_round["gevent"]
    assert result["errors"] == 0
    assert result["connections"] == report["scenarios"]["connrate"]["settings"]["connections"]
    assert result["cpu_us_per_conn"] > 0
    assert report["scenarios"]["connrate"]["summary"]["gevent"]["cpu_us_per_conn"]["ratio"] == 1.0
    assert "connrate" in completed.stdout and "gevent" in completed.stdout


def test_quick_bulk_and_reqresp_runs_against_raw_gevent_give_their_numbers(tmp_path):
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--scenarios", "bulk,reqresp"]
        + ["--contenders", "gevent", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert completed.returncode == 0, completed.stderr
    scenarios = json.loads(out.read_text())["scenarios"]
    (bulk,) = scenarios["bulk"]["rounds"]
    assert bulk["gevent"]["bytes"] == scenarios["bulk"]["settings"]["bytes"]
    assert bulk["gevent"]["cpu_s_per_gb"] > 0
    (reqresp,) = scenarios["reqresp"]["rounds"]
    for count in scenarios["reqresp"]["settings"]["counts"]:
        assert reqresp["gevent"][f"us_per_req_{count}"] > 0
    assert "error" not in reqresp["gevent"]


def test_ratios_to_another_contender_are_taken_within_each_round():
    ratio_to = _load("ratio_to")
    rounds = [
        {"base": {"us": 100.0}, "bare": {"us": 50.0}, "ours": {"us": 40.0}},
        {"base": {"us": 200.0}, "bare": {"us": 100.0}, "ours": {"us": 120.0}},
        {"base": {"us": 100.0}, "ours": {"us": 10.0}},  # no reference: skipped
    ]
    assert ratio_to.ratios_to(rounds, "us", "bare") == {
        "base": [2.0, 2.0],
        "bare": [1.0, 1.0],
        "ours": [0.8, 1.2],
    }
