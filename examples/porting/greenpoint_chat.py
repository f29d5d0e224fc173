"""greenpoint port of twisted_chat.py (see docs/porting.md): a line-based chat where
idle members are dropped and any member may switch to TLS with STARTTLS.

    python examples/porting/greenpoint_chat.py [DESCRIPTION] [--tls PEM] [--idle SECONDS]

ChatMember and ChatRoom are Twisted's code, unchanged: LineReceiver, TimeoutMixin
(its timer now runs on greenpoint.clock) and transport.startTLS work as they are.
What changed is main(): no reactor, greenpoint's TLS options, a blocking serve loop.
"""

import argparse

from twisted.internet import protocol
from twisted.protocols import basic, policies

import greenpoint
from greenpoint import tls


class ChatMember(basic.LineReceiver, policies.TimeoutMixin):
    """One member: the first line is the name, then every line goes to the room."""

    delimiter = b"\n"
    name = None

    def connectionMade(self):
        self.setTimeout(self.factory.idle)
        self.sendLine(b"welcome! send STARTTLS to encrypt, or your name")

    def lineReceived(self, line):
        self.resetTimeout()
        line = line.rstrip(b"\r").decode("utf-8", "replace")
        if line == "STARTTLS" and self.name is None and self.factory.tls is not None:
            self.sendLine(b"go ahead")  # sent in clear; what follows is encrypted
            self.transport.startTLS(self.factory.tls)
        elif self.name is None:
            self.name = line or "anonymous"
            self.factory.join(self)
        elif line:
            self.factory.broadcast(f"{self.name}: {line}", sender=self)

    def timeoutConnection(self):
        self.sendLine(b"idle too long, bye")
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.setTimeout(None)
        self.factory.leave(self)


class ChatRoom(protocol.Factory):
    protocol = ChatMember

    def __init__(self, tls, idle):
        self.tls = tls
        self.idle = idle
        self.members = set()

    def join(self, member):
        member.sendLine(f"hi {member.name}, {len(self.members)} others here".encode())
        self.members.add(member)
        self.broadcast(f"* {member.name} joined", sender=member)

    def leave(self, member):
        if member in self.members:
            self.members.discard(member)
            self.broadcast(f"* {member.name} left", sender=member)

    def broadcast(self, text, sender):
        for member in self.members:
            if member is not sender:
                member.sendLine(text.encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("description", nargs="?", default="tcp:8002:interface=127.0.0.1")
    parser.add_argument("--tls", metavar="PEM", help="key and certificate for STARTTLS")
    parser.add_argument("--idle", type=float, default=300, help="seconds before dropping")
    args = parser.parse_args()
    # Twisted: ssl.PrivateCertificate.loadPEM(...).options()
    options = tls.options_for_server_tls(args.tls) if args.tls else None
    room = ChatRoom(options, args.idle)
    # Twisted: endpoints.serverFromString(reactor, ...).listen(room) gives a Deferred;
    # here the port comes back bound, and serve_forever() is reactor.run().
    port = greenpoint.server_from_string(args.description).listen(room)
    print(f"chat server listening on {port.get_host()}", flush=True)
    try:
        port.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
