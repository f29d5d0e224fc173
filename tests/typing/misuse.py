"""Mistakes mypy --strict must reject: each line marked ``# expect: CODE`` is an error.

tests/test_typing.py checks that mypy reports exactly these lines, with these codes.
It is never run.
"""

from __future__ import annotations

import greenpoint
from greenpoint import ListeningPort, Stream


def misuse() -> None:
    client = greenpoint.client_from_string("tcp:127.0.0.1:8000")
    client.serve(print)  # expect: attr-defined
    server = greenpoint.server_from_string("tcp:8000")
    server.open()  # expect: attr-defined
    stream: Stream = client.open()
    stream.sendall("text, not bytes")  # expect: arg-type
    text: str = stream.recv(100)  # expect: assignment
    port: ListeningPort = client  # expect: assignment
    del text, port
