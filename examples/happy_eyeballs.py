"""Happy eyeballs on loopback: IPv6 is black-holed, IPv4 answers; see each attempt.

"demo.test" resolves (through a fake resolver) to ::1, where a listener with a full
accept queue silently drops connection attempts, and to 127.0.0.1, where a server
accepts. The IPv6 attempt starts first, hangs, and 250 ms later (RFC 8305's
Connection Attempt Delay) the IPv4 attempt starts and wins.

    python examples/happy_eyeballs.py
"""

import contextlib
import socket

from greenpoint import HostnameEndpoint
from greenpoint.testing import FakeResolver


@contextlib.contextmanager
def black_hole(host="::1"):
    """A port on ``host`` where connect() hangs: listen(0) with a full accept queue."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = [socket.socket(family)]
    try:
        sockets[0].bind((host, 0))
        sockets[0].listen(0)
        address = sockets[0].getsockname()
        for _ in range(2):  # the first fills the queue; the second already hangs
            filler = socket.socket(family)
            sockets.append(filler)
            filler.setblocking(False)
            filler.connect_ex(address)
        yield address[1]
    finally:
        for sock in sockets:
            sock.close()


def ipv6_loopback_works():
    """Whether ::1 can be bound here (some containers have IPv6 switched off)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def race(attempt_delay=0.25, dark="::1"):
    """Connect to demo.test and return the ``ConnectInfo`` describing the race.

    ``dark`` is the black-holed address: ``::1``, or without IPv6 another IPv4
    loopback address such as ``127.0.0.2`` (then both addresses are A records).
    """
    with black_hole(dark) as dark_port, socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen(1)
        live_address = ("127.0.0.1", live.getsockname()[1])
        resolver = FakeResolver()
        if ":" in dark:
            resolver.add("demo.test", socket.AF_INET6, [(dark, dark_port)])
            resolver.add("demo.test", socket.AF_INET, [live_address])
        else:
            resolver.add("demo.test", socket.AF_INET6, [])
            resolver.add("demo.test", socket.AF_INET, [(dark, dark_port), live_address])
        endpoint = HostnameEndpoint(
            "demo.test", 80, timeout=5, attempt_delay=attempt_delay, resolver=resolver
        )
        stream, info = endpoint.open_with_info()
        stream.close()
        return info


def main():
    info = race() if ipv6_loopback_works() else race(dark="127.0.0.2")
    print(info.describe())


if __name__ == "__main__":
    main()
