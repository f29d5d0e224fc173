"""greenpoint ``listen()`` with an echo ``Protocol`` (Twisted's model on greenlets)."""

from __future__ import annotations

from _common import arguments, ready, unavailable
from greenpoint_serve import LIMITS, LIMITS_FLAG, NODELAY_OFF_FLAG, description

# listen(dispatch=...) (issue 21): only passed when asked, so that a tree without
# the argument (BENCH_GREENPOINT_ROOT=main) still runs its default.
DISPATCH_FLAG = ("--dispatch", {"choices": ("loop", "greenlet"), "help": "listen(dispatch=)"})


def main() -> None:
    args = arguments(__doc__, [LIMITS_FLAG, NODELAY_OFF_FLAG, DISPATCH_FLAG])
    try:
        from greenpoint import Factory, Protocol, server_from_string

        class Echo(Protocol):
            def dataReceived(self, data):
                self.transport.write(data)

        endpoint = server_from_string(
            description(args.tls, not args.no_nodelay, args.port, args.reuse_port)
        )
        options = dict(LIMITS) if args.limits else {}
        if args.dispatch:
            options["dispatch"] = args.dispatch
        port = endpoint.listen(Factory.forProtocol(Echo), **options)
    except (ImportError, AttributeError, NotImplementedError, KeyError, ValueError) as exc:
        unavailable(f"{type(exc).__name__}: {exc}")
    ready(port.get_host().port)
    port.serve_forever()


if __name__ == "__main__":
    main()
