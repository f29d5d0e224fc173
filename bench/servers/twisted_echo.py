"""Twisted: an echo ``Protocol`` on the default (epoll) reactor; ``--tls`` uses listenSSL."""

from __future__ import annotations

from _common import BACKLOG, HOST, arguments, ready
from twisted.internet import protocol, reactor


class Echo(protocol.Protocol):
    read_size = 0  # 0: Twisted's own (64 KiB)

    def connectionMade(self):
        if self.read_size:
            self.transport.bufferSize = self.read_size  # what doRead asks recv for

    def dataReceived(self, data):
        self.transport.write(data)


def main() -> None:
    args = arguments(__doc__)
    Echo.read_size = args.read_size
    factory = protocol.Factory.forProtocol(Echo)
    if args.tls:
        from twisted.internet import ssl

        cert_path, key_path = args.tls
        with open(cert_path, "rb") as f:
            cert_pem = f.read()
        with open(key_path, "rb") as f:
            key_pem = f.read()
        options = ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem).options()
        port = reactor.listenSSL(0, factory, options, backlog=BACKLOG, interface=HOST)
    else:
        port = reactor.listenTCP(0, factory, backlog=BACKLOG, interface=HOST)
    ready(port.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main()
