"""A small program typed against greenpoint's public API: mypy --strict must accept it.

It also runs: an echo server on loopback and one client round trip
(tests/test_typing.py runs it as well as type-checking it).
"""

from __future__ import annotations

from typing import Any

import greenpoint
from greenpoint import ClientEndpoint, ListeningPort, ServerEndpoint, Stream


def echo(stream: Stream, address: Any) -> None:
    while data := stream.recv(65536):
        stream.sendall(data)


def round_trip(client: ClientEndpoint, message: bytes) -> bytes:
    with client.open(timeout=10) as stream:
        stream.sendall(message)
        stream.shutdown(1)  # socket.SHUT_WR
        received = b""
        while chunk := stream.recv(65536):
            received += chunk
        return received


def main() -> None:
    server: ServerEndpoint = greenpoint.server_from_string("tcp:0:interface=127.0.0.1")
    port: ListeningPort = server.serve(echo)
    try:
        number = port.get_host().port
        client = greenpoint.client_from_string(f"tcp:127.0.0.1:{number}")
        answer = round_trip(client, b"typed hello")
        assert answer == b"typed hello", answer
        print(answer.decode())
    finally:
        port.stop_listening(timeout=5)


if __name__ == "__main__":
    main()
