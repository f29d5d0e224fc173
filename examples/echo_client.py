"""Send a message to an echo server over any client description and print the answer.

python examples/echo_client.py tcp:127.0.0.1:8000 hello
python examples/echo_client.py unix:/tmp/echo.sock "hello over UNIX"
python examples/echo_client.py tls:localhost:8443:trustRoots=ca.pem hello
"""

import socket
import sys

import greenpoint


def echo_once(description, message, timeout=10):
    """Connect, send ``message``, half-close, and return everything the server sent back."""
    with greenpoint.client_from_string(description).open(timeout=timeout) as stream:
        stream.sendall(message)
        stream.shutdown(socket.SHUT_WR)  # "that was all": the server sees end-of-file
        received = b""
        while data := stream.recv(65536):
            received += data
    return received


def main(description, message="hello"):
    answer = echo_once(description, message.encode())
    print("sent", repr(message), "got back", repr(answer.decode()))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(*sys.argv[1:3])
