"""bench/_wrk.py: reading wrk's report (pure), for the wsgi benchmark scenarios."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
_spec = importlib.util.spec_from_file_location("bench_wrk", BENCH / "_wrk.py")
wrk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wrk)

REPORT = """\
Running 5s test @ http://127.0.0.1:40123/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.61ms    3.08ms  48.02ms   86.71%
    Req/Sec     3.35k   240.51     3.70k    72.00%
  Latency Distribution
     50%    8.91ms
     75%   10.37ms
     90%   12.66ms
     99%  950.00us
  16683 requests in 5.01s, 2.02MB read
  Socket errors: connect 0, read 12, write 1, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   3329.94
Transfer/sec:    412.02KB
"""


def test_parse_wrk_report():
    result = wrk.parse_wrk(REPORT)
    assert result["rps"] == 3329.94
    assert result["requests"] == 16683
    assert result["seconds"] == pytest.approx(5.01)
    assert result["p50_ms"] == pytest.approx(8.91)
    assert result["p99_ms"] == pytest.approx(0.95)
    assert result["errors"] == 12 + 1 + 2 + 3
    assert "read 12" in result["error_detail"] and "Non-2xx" in result["error_detail"]


def test_parse_wrk_clean_report_has_no_errors():
    clean = "\n".join(
        line for line in REPORT.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    result = wrk.parse_wrk(clean)
    assert result["errors"] == 0
    assert "error_detail" not in result


def test_durations_in_every_unit():
    assert wrk._ms("250us") == pytest.approx(0.25)
    assert wrk._ms("1.50s") == pytest.approx(1500)
    assert wrk._ms("2m") == pytest.approx(120_000)
    with pytest.raises(ValueError, match="not a wrk duration"):
        wrk._ms("12 parsecs")
