"""`make demo`: greenpoint's main jobs on loopback, with a short report.

An echo over TCP, TLS (certificates made on the spot with trustme) and a UNIX
socket, each through a description string, then a happy-eyeballs race against a
black-holed IPv6 address with each attempt's timing. Nothing leaves this machine.
Exits 0 when everything worked, 1 otherwise.
"""

import os
import sys
import tempfile
import time

from echo_client import echo_once
from echo_server import echo
from happy_eyeballs import ipv6_loopback_works, race
from tls_echo import make_certificates

import greenpoint


def echo_through(server_description, client_for, message):
    """Serve echo on ``server_description``; echo ``message`` through ``client_for(port)``."""
    with greenpoint.server_from_string(server_description).serve(echo) as port:
        client = client_for(port.get_host())
        started = time.perf_counter()
        answer = echo_once(client, message)
        elapsed = time.perf_counter() - started
    if answer != message:
        raise AssertionError(f"sent {message!r}, got back {answer!r}")
    return client, elapsed


def main():
    print("greenpoint demo: everything on loopback\n")
    failures = 0
    with tempfile.TemporaryDirectory() as directory:
        ca_pem, server_pem = make_certificates(directory)
        quote = greenpoint.quote_string_argument
        cases = [
            ("TCP", "tcp:0:interface=127.0.0.1", lambda host: f"tcp:127.0.0.1:{host.port}"),
            (
                "TLS",
                f"ssl:0:interface=127.0.0.1:privateKey={quote(str(server_pem))}",
                lambda host: f"tls:localhost:{host.port}:trustRoots={quote(str(ca_pem))}",
            ),
            (
                "UNIX",
                f"unix:{quote(os.path.join(directory, 'echo.sock'))}",
                lambda host: str(host),
            ),
        ]
        for name, server, client_for in cases:
            message = f"hello over {name}".encode()
            try:
                client, elapsed = echo_through(server, client_for, message)
            except Exception as exc:
                failures += 1
                print(f"  FAIL echo over {name}: {type(exc).__name__}: {exc}")
                continue
            print(f"  ok   echo over {name:<4}  {elapsed * 1000:6.1f} ms  {client}")

    dark = "::1" if ipv6_loopback_works() else "127.0.0.2"  # containers without IPv6
    print(f"\nhappy eyeballs: demo.test is {dark} (black-holed) and 127.0.0.1 (listening)")
    try:
        info = race(dark=dark)
    except Exception as exc:
        failures += 1
        print(f"  FAIL {type(exc).__name__}: {exc}")
    else:
        for line in info.describe().splitlines():
            print("  " + line.strip())
        if info.winner.host != "127.0.0.1":
            failures += 1
            print("  FAIL the IPv4 address should have won")

    print("\nall good" if not failures else f"\n{failures} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
