"""greenpoint ``serve()``: a stream handler per connection (recv/sendall echo).

Built from a server description, as a user would: ``tcp:0:interface=127.0.0.1``, or
``ssl:...:privateKey=...:certKey=...`` with ``--tls``.
"""

from __future__ import annotations

import functools

from _common import BACKLOG, HOST, READ_SIZE, arguments, ready, unavailable


def description(
    tls: list[str] | None, nodelay: bool = True, port: int = 0, reuse_port: bool = False
) -> str:
    from greenpoint import quote_string_argument as quote

    if tls is None:
        return (
            f"tcp:{port}:interface={HOST}:backlog={BACKLOG}"
            + ("" if nodelay else ":nodelay=0")
            + (":reusePort=true" if reuse_port else "")
        )
    cert, key = tls
    return (
        f"ssl:{port}:interface={HOST}:backlog={BACKLOG}:privateKey={quote(key)}:certKey={quote(cert)}"
        + (":reusePort=true" if reuse_port else "")
    )


def echo(stream, _address, read_size=READ_SIZE):
    recv = stream.recv
    sendall = stream.sendall
    try:
        while True:
            data = recv(read_size)
            if not data:
                break
            sendall(data)
    except ConnectionError:
        pass


# With --limits: every connection limit set, none reached by any scenario (the idle
# scenario holds 10,000 connections from one address for less than the timeout).
LIMITS = {"max_connections": 50_000, "max_per_peer": 50_000, "idle_timeout": 300.0}
LIMITS_FLAG = ("--limits", {"action": "store_true", "help": "set the connection limits"})
# tcp: listeners set TCP_NODELAY by default (as asyncio and uvloop do); raw gevent not.
NODELAY_OFF_FLAG = ("--no-nodelay", {"action": "store_true", "help": "nodelay=0"})


def main() -> None:
    args = arguments(__doc__, [LIMITS_FLAG, NODELAY_OFF_FLAG])
    try:
        from greenpoint import server_from_string

        endpoint = server_from_string(
            description(args.tls, not args.no_nodelay, args.port, args.reuse_port)
        )
        handler = functools.partial(echo, read_size=args.read_size)
        port = endpoint.serve(handler, **(LIMITS if args.limits else {}))
    except (ImportError, AttributeError, NotImplementedError, KeyError, ValueError) as exc:
        unavailable(f"{type(exc).__name__}: {exc}")
    ready(port.get_host().port)
    port.serve_forever()


if __name__ == "__main__":
    main()
