"""asyncio: ``open_connection`` (``happy_eyeballs_delay=`` in happy mode).

In ``happy`` mode the loop's ``getaddrinfo`` is replaced by one that answers at once
with ``::1`` then ``127.0.0.1``; an IP literal never reaches it.
"""

from __future__ import annotations

import asyncio

from _client_common import HOST_NAME, Trials, arguments, fake_getaddrinfo, now


async def run(args) -> None:
    trials = Trials(args)
    loop = asyncio.get_running_loop()
    if args.mode == "happy":
        answer = fake_getaddrinfo(args.port)

        async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):  # noqa: A002
            return answer(host, port, family, type, proto, flags)

        loop.getaddrinfo = getaddrinfo
    for _ in range(trials.total):
        started = now()
        try:
            if args.mode == "happy":
                connecting = asyncio.open_connection(
                    HOST_NAME, args.port, happy_eyeballs_delay=args.attempt_delay
                )
                reader, writer = await asyncio.wait_for(connecting, args.timeout)
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
                await reader.readexactly(1)
            ended = now()
            trials.record(started, ended, writer.get_extra_info("socket").family)
            writer.close()
            await writer.wait_closed()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            trials.failed(exc)
    trials.report()


def main() -> None:
    asyncio.run(run(arguments(__doc__)))


if __name__ == "__main__":
    main()
