"""Twisted: an echo ``Protocol`` on the default (epoll) reactor; ``--tls`` uses listenSSL."""

from __future__ import annotations

import socket

from _common import BACKLOG, HOST, arguments, ready, reuse_port_socket
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
    elif args.reuse_port:
        # listenTCP cannot set SO_REUSEPORT: adopt a socket that has it (Twisted dups it).
        with reuse_port_socket(args.port) as sock:
            sock.setblocking(False)
            port = reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, factory)
    else:
        port = reactor.listenTCP(args.port, factory, backlog=BACKLOG, interface=HOST)
    ready(port.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main()
