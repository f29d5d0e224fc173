"""trio: ``open_tcp_stream`` (happy eyeballs with ``happy_eyeballs_delay``).

In ``happy`` mode a custom hostname resolver answers at once with ``::1`` then
``127.0.0.1``; an IP literal takes trio's numeric fast path.
"""

from __future__ import annotations

import trio
from _client_common import HOST_NAME, Trials, arguments, fake_getaddrinfo, now


class FixedResolver(trio.abc.HostnameResolver):
    def __init__(self, port):
        self.answer = fake_getaddrinfo(port)

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        return self.answer(host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags):
        raise NotImplementedError


async def run(args) -> None:
    trials = Trials(args)
    host = "127.0.0.1"
    if args.mode == "happy":
        trio.socket.set_custom_hostname_resolver(FixedResolver(args.port))
        host = HOST_NAME
    for _ in range(trials.total):
        started = now()
        try:
            with trio.fail_after(args.timeout):
                stream = await trio.open_tcp_stream(
                    host, args.port, happy_eyeballs_delay=args.attempt_delay
                )
                if args.mode == "latency":
                    await stream.receive_some(1)
            ended = now()
            trials.record(started, ended, stream.socket.family)
            await stream.aclose()
        except (OSError, trio.TooSlowError) as exc:
            trials.failed(exc)
    trials.report()


def main() -> None:
    trio.run(run, arguments(__doc__))


if __name__ == "__main__":
    main()
