"""What every client contender shares: arguments, the fake resolver's answer, timing.

Two modes, both against a fixed peer on 127.0.0.1 (``loadgen.py first-byte-server``):

* ``latency``: connect to the IP literal 127.0.0.1 and read the peer's first byte;
  each trial is timed from the call that connects to the byte in hand.
* ``happy``: connect to the name ``localhost`` which every contender's resolver hook
  answers, at once, with ``[::1]:port`` first and ``127.0.0.1:port`` second; the
  harness makes ``[::1]:port`` a black hole (SYNs dropped) or a refusal. Each trial is
  timed from the call to the connected socket, so the time is the race alone: no DNS.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

HOST_NAME = "localhost"
UNAVAILABLE_EXIT = 3


def arguments(description: str, extra: list[tuple[str, dict]] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--mode", choices=["latency", "happy"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--attempt-delay", type=float, default=0.25)
    parser.add_argument("--timeout", type=float, default=2.0)
    for flag, options in extra or []:
        parser.add_argument(flag, **options)
    return parser.parse_args()


def answers(port: int) -> list[tuple]:
    """The fake resolver's answer: IPv6 (the broken family) first, then IPv4."""
    return [
        (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::1", port, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port)),
    ]


def fake_getaddrinfo(port: int) -> Callable[..., list[tuple]]:
    """A ``socket.getaddrinfo`` stand-in that honours ``family`` and never blocks."""

    def getaddrinfo(host, _port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        return [a for a in answers(port) if family in (0, socket.AF_UNSPEC, a[0])]

    return getaddrinfo


def unavailable(why: str) -> None:
    sys.stdout.write(f"UNAVAILABLE {why}\n")
    sys.stdout.flush()
    sys.exit(UNAVAILABLE_EXIT)


class Trials:
    """Collects timed trials and prints the ``RESULT`` line."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.times: list[float] = []
        self.errors = 0
        self.first_error = ""
        self.families: dict[str, int] = {}
        self.count = 0

    @property
    def total(self) -> int:
        return self.args.warmup + self.args.trials

    def record(self, started: float, ended: float, family: Any = None) -> None:
        """Keep one trial (warm-up trials are dropped)."""
        self.count += 1
        if self.count > self.args.warmup:
            self.times.append(ended - started)
            if family is not None:
                name = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}.get(family, str(family))
                self.families[name] = self.families.get(name, 0) + 1

    def failed(self, exc: BaseException) -> None:
        self.count += 1
        self.errors += 1
        self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"

    def report(self, **extra: Any) -> None:
        result = {
            "times": self.times,
            "errors": self.errors,
            "first_error": self.first_error,
            "families": self.families,
            **extra,
        }
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        sys.stdout.flush()


now = time.perf_counter
