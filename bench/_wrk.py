"""Run wrk (Debian's HTTP load generator) and read its report; the parsing is pure."""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, request count, latency percentiles (ms) and errors from ``wrk --latency``.

    ``errors`` counts socket errors (connect, read, write, timeout) and non-2xx/3xx
    responses together; ``error_detail`` says which.
    """
    result: dict[str, Any] = {}
    if match := re.search(r"Requests/sec:\s*([\d.]+)", text):
        result["rps"] = float(match.group(1))
    if match := re.search(r"(\d+) requests in ([\d.]+\w+)", text):
        result["requests"] = int(match.group(1))
        result["seconds"] = _ms(match.group(2)) / 1000
    for percent, value in re.findall(r"^\s*(50|75|90|99)%\s+([\d.]+\w+)\s*$", text, re.M):
        result[f"p{percent}_ms"] = _ms(value)
    errors = 0
    detail = []
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        counts = [int(x) for x in match.groups()]
        errors += sum(counts)
        detail.append(match.group(0))
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(match.group(1))
        detail.append(match.group(0))
    result["errors"] = errors
    if detail:
        result["error_detail"] = "; ".join(detail)
    return result
