"""An echo server on any server description, one greenlet per connection.

    python examples/echo_server.py                       # tcp:8000 on 127.0.0.1
    python examples/echo_server.py unix:/tmp/echo.sock
    python examples/echo_server.py systemd:domain=INET   # under socket activation

Try it with:  python examples/echo_client.py tcp:127.0.0.1:8000 hello
Stops on Ctrl-C or SIGTERM, letting open connections finish for a second.
"""

import signal
import sys

import gevent

import greenpoint


def echo(stream, address):
    """Send back everything until the client half-closes; the server closes the stream."""
    while data := stream.recv(65536):
        stream.sendall(data)


def main(description="tcp:8000:interface=127.0.0.1"):
    port = greenpoint.server_from_string(description).serve(echo)
    print("echo server listening on", port.get_host(), flush=True)
    gevent.signal_handler(signal.SIGTERM, port.stop_listening, 1.0)
    try:
        port.serve_forever()
    except KeyboardInterrupt:
        pass
    print("echo server stopped", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:2])
