"""Which address to try next, and how long to wait: RFC 8305's schedule. Pure.

Nothing here sleeps or touches a socket; the racer in ``_happy_eyeballs`` asks these
questions and does the waiting.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

__all__ = [
    "DEFAULT_ATTEMPT_DELAY",
    "MAX_ADDRESSES",
    "MAX_ATTEMPT_DELAY",
    "MIN_ATTEMPT_DELAY",
    "RESOLUTION_DELAY",
    "AddressQueue",
    "clamp_attempt_delay",
    "interleave",
]

DEFAULT_ATTEMPT_DELAY = 0.25  # RFC 8305 §5: recommended Connection Attempt Delay
MIN_ATTEMPT_DELAY = 0.01  # RFC 8305 §5: MUST NOT be less than 10 ms
MAX_ATTEMPT_DELAY = 2.0  # RFC 8305 §5: SHOULD NOT be more than 2 seconds
RESOLUTION_DELAY = 0.05  # RFC 8305 §3: recommended Resolution Delay, 50 ms
# Ours: hostile or broken DNS can return thousands of records (python/cpython#106283);
# trying them all would open thousands of sockets. 32 covers any sane dual-stack setup.
MAX_ADDRESSES = 32

Target = tuple[int, Any]  # (family, sockaddr)


def clamp_attempt_delay(delay: float) -> float:
    """``delay`` held within RFC 8305 §5's bounds, 10 ms to 2 s."""
    return min(max(float(delay), MIN_ATTEMPT_DELAY), MAX_ATTEMPT_DELAY)


class AddressQueue:
    """The addresses still to try, handed out interleaved by family.

    RFC 8305 §4 with a First Address Family Count of 1: alternate families, one
    address at a time; within a family keep the resolver's order (its RFC 6724
    sorting). The first address is IPv6 when IPv6 addresses are known (§3–4);
    answers that arrive late join the queue and take the next free turn of their
    family (§3: "incorporated into the list of candidates"). At most
    ``max_addresses`` addresses are handed out in all, and no more than that are
    kept per family; an address seen twice is tried once.
    """

    def __init__(self, max_addresses: int = MAX_ADDRESSES) -> None:
        if max_addresses < 1:
            raise ValueError(f"max_addresses must be at least 1, not {max_addresses}")
        self.max_addresses = max_addresses
        self._pending: dict[int, list[Any]] = {}
        self._seen: set[Target] = set()
        self._kept: dict[int, int] = {}
        self._last_family: int | None = None
        self.handed_out = 0

    def add(self, family: int, sockaddrs: Iterable[Any]) -> int:
        """Queue ``sockaddrs`` of ``family`` in the given order; returns how many were new."""
        pending = self._pending.setdefault(family, [])
        added = 0
        for sockaddr in sockaddrs:
            target = (family, _hashable(sockaddr))
            if target in self._seen:
                continue
            if self._kept.get(family, 0) >= self.max_addresses:
                break
            self._seen.add(target)
            self._kept[family] = self._kept.get(family, 0) + 1
            pending.append(sockaddr)
            added += 1
        return added

    def __bool__(self) -> bool:
        return self.handed_out < self.max_addresses and any(self._pending.values())

    def __len__(self) -> int:
        waiting = sum(len(addresses) for addresses in self._pending.values())
        return min(waiting, self.max_addresses - self.handed_out)

    def pop(self) -> Target | None:
        """The next ``(family, sockaddr)`` to try, or ``None`` when there is none."""
        if not self:
            return None
        family = self._next_family()
        self._last_family = family
        self.handed_out += 1
        return family, self._pending[family].pop(0)

    def _next_family(self) -> int:
        ready = [family for family, addresses in self._pending.items() if addresses]
        if self._last_family is None:
            return socket.AF_INET6 if socket.AF_INET6 in ready else ready[0]
        others = [family for family in ready if family != self._last_family]
        return others[0] if others else self._last_family


def interleave(targets: Iterable[Target], max_addresses: int = MAX_ADDRESSES) -> list[Target]:
    """All of ``targets`` in the order an :class:`AddressQueue` tries them."""
    queue = AddressQueue(max_addresses)
    for family, sockaddr in targets:
        queue.add(family, [sockaddr])
    ordered = []
    while (target := queue.pop()) is not None:
        ordered.append(target)
    return ordered


def _hashable(sockaddr: Any) -> Any:
    return tuple(sockaddr) if isinstance(sockaddr, list) else sockaddr
