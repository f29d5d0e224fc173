"""A line-based chat server in Twisted's protocol style: every line a client sends
goes to every other client, prefixed with the sender's name.

    python examples/chat_server.py                     # tcp:8001 on 127.0.0.1
    python examples/chat_server.py unix:/tmp/chat.sock

Join with two terminals:  python -m greenpoint connect tcp:127.0.0.1:8001
The first line a client sends is its name.
"""

import sys

import greenpoint


class ChatClient(greenpoint.Protocol):
    """One member: collects bytes into lines, then hands each line to the room."""

    name = None

    def connectionMade(self):
        self.buffer = b""
        self.transport.write(b"welcome! what is your name?\n")

    def dataReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.lineReceived(line.rstrip(b"\r").decode("utf-8", "replace"))

    def lineReceived(self, line):
        if self.name is None:
            self.name = line or "anonymous"
            others = len(self.factory.members)
            self.factory.members.add(self)
            self.transport.write(f"hi {self.name}, {others} others here\n".encode())
            self.factory.broadcast(f"* {self.name} joined", sender=self)
        elif line:
            self.factory.broadcast(f"{self.name}: {line}", sender=self)

    def connectionLost(self, reason):
        if self in self.factory.members:
            self.factory.members.discard(self)
            self.factory.broadcast(f"* {self.name} left", sender=self)


class ChatRoom(greenpoint.Factory):
    protocol = ChatClient

    def __init__(self):
        self.members = set()

    def broadcast(self, text, sender):
        # transport.write never blocks: a slow member cannot hold up the room.
        for member in self.members:
            if member is not sender:
                member.transport.write(text.encode() + b"\n")


def main(description="tcp:8001:interface=127.0.0.1"):
    port = greenpoint.server_from_string(description).listen(ChatRoom())
    print("chat server listening on", port.get_host(), flush=True)
    try:
        port.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(*sys.argv[1:2])
