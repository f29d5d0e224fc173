"""Scenario 4: happy eyeballs, time to connected when the first address family is broken.

Every contender connects to ``localhost``; its resolver hook answers at once with
``[::1]:P`` first and ``127.0.0.1:P`` second. ``[::1]:P`` is either a black hole (SYNs
dropped: the racer must start IPv4 after ``attempt_delay``) or refuses (the racer
should start IPv4 at once, RFC 8305 §5). ``attempt_delay`` is 0.25 s for all;
gevent's ``create_connection`` has no race and waits out its 1 s timeout per address.
"""

from __future__ import annotations

import statistics
from typing import Any

from _clientbench import ClientContender, broken_ipv6, ipv6_loopback, run_client
from _harness import BenchError, Context
from _scenario import Metric, Scenario, Target

ATTEMPT_DELAY = 0.25
GEVENT_TIMEOUT = 1.0

CONTENDERS = [
    ClientContender("gevent", "gevent_client.py"),
    ClientContender("greenpoint", "greenpoint_client.py", ("--variant", "hostname")),
    ClientContender("twisted", "twisted_client.py"),
    ClientContender("trio", "trio_client.py"),
    ClientContender("asyncio", "asyncio_client.py"),
]


def settings(quick: bool) -> dict[str, Any]:
    return {
        "blackhole_trials": 2 if quick else 5,
        "refused_trials": 5 if quick else 20,
        "warmup": 1 if quick else 2,
        "attempt_delay": ATTEMPT_DELAY,
    }


def happy_measure(ctx: Context, contender: ClientContender, settings: dict) -> dict:
    if not ipv6_loopback():
        return {"unavailable": "this machine cannot bind ::1"}
    result: dict[str, Any] = {}
    for kind in ("blackhole", "refused"):
        trials = settings[f"{kind}_trials"]
        try:
            with broken_ipv6(kind, ctx) as (_peer, port):
                args = [
                    "--mode=happy",
                    f"--port={port}",
                    f"--trials={trials}",
                    f"--warmup={settings['warmup']}",
                    f"--attempt-delay={settings['attempt_delay']}",
                    f"--timeout={GEVENT_TIMEOUT if contender.name == 'gevent' else 5.0}",
                ]
                one = run_client(ctx, contender, args, timeout=60 + trials * 6)
        except BenchError as exc:
            one = {"error": str(exc)}
        result[kind] = one
        if "unavailable" in one:
            return {"unavailable": one["unavailable"]}
        if one.get("times"):
            result[f"{kind}_ms"] = statistics.median(one["times"]) * 1000
        if one.get("errors"):
            result["error"] = f"{kind}: {one['errors']} failed: {one['first_error']}"
        elif "error" in one:
            result["error"] = f"{kind}: {one['error']}"
    return result


SCENARIO = Scenario(
    name="happy",
    title="Happy eyeballs: time to connected, IPv6 broken",
    baseline="gevent",
    contenders=CONTENDERS,
    metrics=[
        Metric("blackhole_ms", "black hole ms", ".1f"),
        Metric("refused_ms", "refused ms", ".2f"),
    ],
    measure=happy_measure,
    settings=settings,
    targets=[
        Target(
            "greenpoint",
            "blackhole_ms",
            ATTEMPT_DELAY * 1000 + 10,
            kind="value",
            text="black hole: <= attempt_delay + 10 ms",
        ),
        Target("greenpoint", "refused_ms", 2.0, kind="value", text="refusal: <= 2 ms"),
    ],
    notes="gevent create_connection has a 1 s timeout per address and no race.",
)
