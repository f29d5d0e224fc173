"""The Twisted original of greenpoint_chat.py (see docs/porting.md): a line-based chat
where idle members are dropped and any member may switch to TLS with STARTTLS.

    python examples/porting/twisted_chat.py [DESCRIPTION] [--tls PEM] [--idle SECONDS]

Needs Twisted (pip install twisted[tls]). The protocol and factory classes are copied
unchanged into the port; only main() differs.
"""

import argparse

from twisted.internet import endpoints, protocol, reactor, ssl
from twisted.protocols import basic, policies


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
    tls = None
    if args.tls:
        with open(args.tls) as pem:
            tls = ssl.PrivateCertificate.loadPEM(pem.read()).options()
    room = ChatRoom(tls, args.idle)
    listening = endpoints.serverFromString(reactor, args.description).listen(room)

    def report(port):
        host = port.getHost()
        print(f"chat server listening on {host.host}:{host.port}", flush=True)

    listening.addCallback(report)
    reactor.run()


if __name__ == "__main__":
    main()
