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


split = _load("_split")


def test_server_processes_are_auto_or_a_positive_count():
    assert split.parse_processes("auto") == "auto"
    assert split.parse_processes(" AUTO ") == "auto"
    assert split.parse_processes("3") == 3
    for bad in ("0", "-2", "many", ""):
        with pytest.raises(ValueError, match="server processes must be 'auto'"):
            split.parse_processes(bad)


def test_auto_takes_as_few_processes_as_keep_each_under_the_share():
    assert split.process_count(100_000) == 6  # 16,667 each
    assert split.process_count(19_900) == 2
    assert split.process_count(18_000) == 1
    assert split.process_count(10) == 1
    assert split.process_count(100_000, 8) == 8


def test_connections_are_split_evenly_and_completely():
    counts = split.split_evenly(100_000, 6)
    assert sum(counts) == 100_000
    assert max(counts) - min(counts) <= 1
    assert counts == sorted(counts, reverse=True)
    assert split.split_evenly(5, 3) == [2, 2, 1]
    with pytest.raises(ValueError):
        split.split_evenly(5, 0)


def test_every_load_generator_gets_source_addresses_of_its_own():
    # One process whose count fits one address keeps the kernel's choice.
    assert split.source_plan([10_000], per_source=11_292) == [[None]]
    plan = split.source_plan([16_667] * 6, per_source=11_292)
    assert [len(sources) for sources in plan] == [2] * 6
    flat = [address for sources in plan for address in sources]
    assert len(set(flat)) == len(flat) == 12  # none shared
    assert flat[0] == "127.0.0.2" and flat[-1] == "127.0.0.13"
    assert "127.0.0.1" not in flat  # the server's
    # One process past one address's ports gets several.
    assert split.source_plan([19_900], per_source=11_292) == [["127.0.0.2", "127.0.0.3"]]
    assert split.source_plan([9_950, 9_950], per_source=11_292) == [["127.0.0.2"], ["127.0.0.3"]]


def test_too_few_server_processes_for_the_connections_is_said_before_any_start():
    assert split.capacity_problem(100_000, 6, 19_900) is None
    problem = split.capacity_problem(100_000, 2, 19_900)
    assert "50,000 each" in problem and "at least 6" in problem


def test_an_uneven_or_refused_spread_fails_with_the_count_of_every_process():
    assert split.spread_problem([16_700, 16_600, 16_700], 50_000, [20_000] * 3) is None
    short = split.spread_problem([16_700, 16_600, 16_000], 50_000, [20_000] * 3)
    assert "49,300 connections, 50,000 asked" in short and "16,000" in short
    full = split.spread_problem([19_995, 10_000], 29_995, [20_000, 20_000])
    assert "EMFILE" in full and "process(es) 0" in full


@pytest.mark.timeout(120)
def test_quick_idle_run_over_two_server_processes_holds_every_connection(tmp_path):
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--scenarios", "idle"]
        + ["--contenders", "gevent", "--server-processes", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(out.read_text())
    assert report["server_processes"] == 2
    scenario = report["scenarios"]["idle"]
    (one_round,) = scenario["rounds"]
    result = one_round["gevent"]
    assert "error" not in result, result["error"]
    assert result["server_processes"] == 2
    per_process = [p["connections"] for p in result["per_process"]]
    # Both processes got a share (SO_REUSEPORT), and together they hold every one.
    assert len(per_process) == 2 and min(per_process) > 0
    assert sum(per_process) == result["connections"] == scenario["settings"]["connections_asked"]
    assert result["kib_per_conn"] > 0


def test_a_bad_server_process_count_is_refused_by_name():
    completed = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--server-processes", "none"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "server processes must be 'auto'" in completed.stderr
