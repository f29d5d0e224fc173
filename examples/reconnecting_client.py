"""A client that comes back: the server goes away and returns, the client reconnects.

Runs on loopback only and exits by itself:  python examples/reconnecting_client.py
"""

import logging
import sys

import gevent
from gevent.event import Event

import greenpoint


class Echo(greenpoint.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Greeter(greenpoint.Protocol):
    """Says hello on each new connection and waits for the echo."""

    def connectionMade(self):
        self.answered = Event()
        self.transport.write(b"hello")

    def dataReceived(self, data):
        print("  echo:", data.decode())
        self.answered.set()


def serve(port=0):
    return greenpoint.server_from_string(f"tcp:{port}:interface=127.0.0.1").listen(
        greenpoint.Factory.forProtocol(Echo)
    )


def main():
    # The client logs why it reconnects: each failure with its error, each delay.
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="  [log] %(message)s")
    server = serve()
    port = server.get_host().port
    client = greenpoint.ReconnectingClient(
        f"tcp:127.0.0.1:{port}",
        greenpoint.Factory.forProtocol(Greeter),
        initial_delay=0.05,
        max_delay=0.4,
    )
    with client:
        client.when_connected(timeout=5).answered.wait(5)
        print("connected to port", port)

        server.stop_listening(timeout=0)  # the server goes down for half a second...
        print("server stopped")
        gevent.sleep(0.5)
        server = serve(port)  # ...and comes back on the same port
        print("server restarted")

        client.when_connected(timeout=5).answered.wait(5)
        print("reconnected to port", port)
    server.stop_listening()


if __name__ == "__main__":
    main()
