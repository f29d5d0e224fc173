"""Scenario 5: connect + first byte latency to an IP literal (127.0.0.1).

The fixed peer writes one byte as soon as it accepts; each trial times the call that
connects until that byte is in hand. The median over trials is one process's result.
"""

from __future__ import annotations

import statistics
from typing import Any

from _clientbench import ClientContender, run_client, start_peer
from _harness import BenchError, Context
from _scenario import Metric, Scenario, Target

CONTENDERS = [
    ClientContender("gevent", "gevent_client.py", ("--variant", "create_connection")),
    ClientContender("gevent-control", "gevent_client.py", ("--variant", "create_connection")),
    ClientContender("gevent-socket", "gevent_client.py", ("--variant", "socket")),
    ClientContender("greenpoint-hostname", "greenpoint_client.py", ("--variant", "hostname")),
    ClientContender("greenpoint-tcp4", "greenpoint_client.py", ("--variant", "tcp4")),
    ClientContender("greenpoint-description", "greenpoint_client.py", ("--variant", "description")),
    ClientContender("twisted", "twisted_client.py"),
    ClientContender("asyncio", "asyncio_client.py"),
    ClientContender("trio", "trio_client.py"),
    # tls: against the TLS first-byte peer; judged against the bare pyOpenSSL client.
    ClientContender("gevent-pyopenssl", "gevent_client.py", ("--variant", "pyopenssl"), tls=True),
    ClientContender(
        "gevent-pyopenssl-control", "gevent_client.py", ("--variant", "pyopenssl"), tls=True
    ),
    ClientContender("greenpoint-tls", "greenpoint_client.py", ("--variant", "tls"), tls=True),
]


def settings(quick: bool) -> dict[str, Any]:
    return {"trials": 50 if quick else 500, "warmup": 10 if quick else 50}


def latency_measure(ctx: Context, contender: ClientContender, settings: dict) -> dict:
    try:
        peer, port = start_peer(ctx, tls=contender.tls)
    except BenchError as exc:
        return {"error": str(exc)}
    with peer:
        args = [
            "--mode=latency",
            f"--port={port}",
            f"--trials={settings['trials']}",
            f"--warmup={settings['warmup']}",
        ]
        if contender.tls:
            args.append(f"--ca={ctx.cert_dir / 'ca.pem'}")
        result = run_client(ctx, contender, args, timeout=120)
    times = result.get("times")
    if times:
        result["median_us"] = statistics.median(times) * 1e6
        result["p90_us"] = statistics.quantiles(times, n=10)[-1] * 1e6
        del result["times"]  # thousands of numbers; the summary keeps what matters
    if result.get("errors"):
        result["error"] = f"{result['errors']} failed: {result['first_error']}"
    return result


_TARGET = "IP-literal connect+first byte <= 0.70x gevent create_connection"
_BARE = "IP-literal connect+first byte <= 1.10x a bare gevent connect() (issue 21)"
_BARE_TLS = "tls: connect+handshake+first byte <= 1.10x a bare pyOpenSSL handshake (issue 21)"

SCENARIO = Scenario(
    name="latency",
    title="Connect + first byte to an IP literal",
    baseline="gevent",
    contenders=CONTENDERS,
    metrics=[
        Metric("median_us", "median us", ".0f"),
        Metric("p90_us", "p90 us", ".0f"),
    ],
    measure=latency_measure,
    settings=settings,
    targets=[
        Target("greenpoint-hostname", "median_us", 0.70, text=_TARGET),
        Target("greenpoint-tcp4", "median_us", 0.70, text=_TARGET),
        Target("greenpoint-description", "median_us", 0.70, text=_TARGET),
        *(
            Target(name, "median_us", 1.10, text=_BARE, reference="gevent-socket")
            for name in ("greenpoint-hostname", "greenpoint-tcp4", "greenpoint-description")
        ),
        Target("greenpoint-tls", "median_us", 1.10, text=_BARE_TLS, reference="gevent-pyopenssl"),
    ],
)
