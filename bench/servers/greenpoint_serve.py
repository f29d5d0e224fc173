"""greenpoint ``serve()``: a stream handler per connection (recv/sendall echo).

Built from a server description, as a user would: ``tcp:0:interface=127.0.0.1``, or
``ssl:...:privateKey=...:certKey=...`` with ``--tls``.
"""

from __future__ import annotations

from _common import BACKLOG, HOST, READ_SIZE, arguments, ready, unavailable


def description(tls: list[str] | None) -> str:
    from greenpoint import quote_string_argument as quote

    if tls is None:
        return f"tcp:0:interface={HOST}:backlog={BACKLOG}"
    cert, key = tls
    return f"ssl:0:interface={HOST}:backlog={BACKLOG}:privateKey={quote(key)}:certKey={quote(cert)}"


def echo(stream, _address):
    recv = stream.recv
    sendall = stream.sendall
    try:
        while True:
            data = recv(READ_SIZE)
            if not data:
                break
            sendall(data)
    except ConnectionError:
        pass


def main() -> None:
    args = arguments(__doc__)
    try:
        from greenpoint import server_from_string

        endpoint = server_from_string(description(args.tls))
        port = endpoint.serve(echo)
    except (ImportError, AttributeError, NotImplementedError, KeyError, ValueError) as exc:
        unavailable(f"{type(exc).__name__}: {exc}")
    ready(port.get_host().port)
    port.serve_forever()


if __name__ == "__main__":
    main()
