"""How the idle regimes spread N connections over processes (pure: no I/O).

A process here may hold at most 20,000 files (``RLIMIT_NOFILE``'s hard limit, which
no process can raise: bench/README.md, issue 21 section 7), and every connection is a
file in the server and another in the load generator. So 100,000 connections need
several server processes listening on one port with ``SO_REUSEPORT`` (the kernel
spreads connections over them by a hash of the 4-tuple) and several load generator
processes, each with source addresses of its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

# Connections per process: the 20,000-file limit less room for the spread of the
# kernel's hash (a few hundred at 100,000) and the process's own files.
PER_PROCESS = 18_000

# The first source address the split hands out; 127.0.0.1 stays the server's.
FIRST_SOURCE = "127.0.0.2"


def parse_processes(text: str) -> str | int:
    """``auto`` or a positive count of server processes (a command-line value)."""
    value = text.strip().lower()
    if value == "auto":
        return "auto"
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"server processes must be 'auto' or a whole number >= 1, not {text!r}")
    return count


def process_count(
    connections: int, asked: str | int = "auto", per_process: int = PER_PROCESS
) -> int:
    """How many processes share ``connections``: ``asked``, or for ``auto`` as few as
    keep each at ``per_process`` or under."""
    if asked != "auto":
        return int(asked)
    return max(1, -(-connections // per_process))


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` counts that differ by at most one (the larger first)."""
    if parts < 1:
        raise ValueError(f"cannot split {total} over {parts} processes")
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def source_plan(counts: Sequence[int], per_source: int) -> list[list[str | None]]:
    """Loopback source addresses for each load generator, none shared between two.

    Each process gets as many consecutive addresses from 127.0.0.2 on as its count
    needs at ``per_source`` connections per address (the ephemeral ports one address
    has towards one server port, less a share left to others). A single process whose
    count fits one address keeps the kernel's choice (``[None]``: 127.0.0.1), as the
    one-process regime always did.
    """
    if per_source < 1:
        raise ValueError(f"per_source must be >= 1, not {per_source}")
    if len(counts) == 1 and counts[0] <= per_source:
        return [[None]]
    first = ipaddress.IPv4Address(FIRST_SOURCE)
    plan: list[list[str | None]] = []
    used = 0
    for count in counts:
        needed = max(1, -(-count // per_source))
        plan.append([str(first + used + index) for index in range(needed)])
        used += needed
    if first + used - 1 not in ipaddress.IPv4Network("127.0.0.0/8"):
        raise ValueError(f"{used} source addresses do not fit in 127.0.0.0/8")
    return plan


def capacity_problem(connections: int, processes: int, per_process_limit: int) -> str | None:
    """Why ``connections`` cannot be held by ``processes`` server processes, or None."""
    each = -(-connections // processes)
    if each <= per_process_limit:
        return None
    return (
        f"{connections:,} connections over {processes} server process(es) is {each:,} each,"
        f" above the {per_process_limit:,} a process may hold here (open-file limit);"
        f" use --server-processes auto or at least {-(-connections // per_process_limit)}"
    )


def spread_problem(held: Sequence[int], asked: int, fd_limits: Sequence[int]) -> str | None:
    """What went wrong with the connections each server process holds, or None.

    ``held[i]`` is what server process ``i`` gained; together they must make
    ``asked``. A process at its open-file limit has refused connections (EMFILE).
    """
    full = [
        i
        for i, (count, limit) in enumerate(zip(held, fd_limits, strict=True))
        if count >= limit - 10
    ]
    problems = []
    if sum(held) != asked:
        problems.append(f"server processes hold {sum(held):,} connections, {asked:,} asked")
    if full:
        problems.append(
            "at the open-file limit (EMFILE): process(es) " + ", ".join(str(i) for i in full)
        )
    if not problems:
        return None
    return "; ".join(problems) + f" (per process: {', '.join(f'{n:,}' for n in held)})"
