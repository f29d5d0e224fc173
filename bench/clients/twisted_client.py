"""Twisted: ``HostnameEndpoint`` (happy eyeballs, ``attemptDelay``) or ``TCP4ClientEndpoint``.

In ``happy`` mode the reactor's name resolver is replaced by one that answers at once
with ``::1`` then ``127.0.0.1``; ``latency`` connects to the IP literal with
``TCP4ClientEndpoint``.
"""

from __future__ import annotations

from _client_common import HOST_NAME, Trials, arguments, now
from twisted.internet import defer, endpoints, protocol, reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver, IHostResolution
from zope.interface import implementer


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name):
        self.name = name

    def cancel(self):
        pass


@implementer(IHostnameResolver)
class FixedResolver:
    """Answers every name with [::1]:port then 127.0.0.1:port, synchronously."""

    def __init__(self, port):
        self.port = port

    def resolveHostName(
        self, receiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"
    ):
        resolution = _Resolution(hostName)
        receiver.resolutionBegan(resolution)
        receiver.addressResolved(IPv6Address("TCP", "::1", self.port))
        receiver.addressResolved(IPv4Address("TCP", "127.0.0.1", self.port))
        receiver.resolutionComplete()
        return resolution


class FirstByte(protocol.Protocol):
    def __init__(self):
        self.first_byte = defer.Deferred()

    def dataReceived(self, data):
        if not self.first_byte.called:
            self.first_byte.callback(now())


@defer.inlineCallbacks
def run(args):
    trials = Trials(args)
    if args.mode == "happy":
        reactor.installNameResolver(FixedResolver(args.port))
        endpoint = endpoints.HostnameEndpoint(
            reactor,
            HOST_NAME.encode(),
            args.port,
            timeout=args.timeout,
            attemptDelay=args.attempt_delay,
        )
    else:
        endpoint = endpoints.TCP4ClientEndpoint(
            reactor, "127.0.0.1", args.port, timeout=args.timeout
        )
    for _ in range(trials.total):
        started = now()
        try:
            proto = yield endpoints.connectProtocol(endpoint, FirstByte())
            ended = now()
            if args.mode == "latency":
                ended = yield proto.first_byte
            trials.record(started, ended, proto.transport.socket.family)
            proto.transport.loseConnection()
        except Exception as exc:  # noqa: BLE001 - every failure is one failed trial
            trials.failed(exc)
    trials.report()


def main() -> None:
    args = arguments(__doc__)
    done = run(args)
    done.addErrback(lambda failure: failure.printTraceback())
    done.addBoth(lambda _: reactor.stop())
    reactor.run()


if __name__ == "__main__":
    main()
