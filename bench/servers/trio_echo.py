"""trio: ``serve_tcp`` with a receive_some/send_all echo handler (``--tls``: SSLStream)."""

from __future__ import annotations

import functools

import trio
from _common import BACKLOG, HOST, READ_SIZE, arguments, ready, reuse_port_socket


async def echo(stream, read_size=READ_SIZE) -> None:
    try:
        while True:
            data = await stream.receive_some(read_size)
            if not data:
                break
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def serve(tls, read_size, port=0, reuse_port=False) -> None:
    if reuse_port:
        # open_tcp_listeners cannot set SO_REUSEPORT: listen on a socket that has it.
        plain = reuse_port_socket(port)
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(plain))]
    else:
        listeners = await trio.open_tcp_listeners(port, host=HOST, backlog=BACKLOG)
    if tls:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        listeners = [trio.SSLListener(one, context) for one in listeners]
        port = listeners[0].transport_listener.socket.getsockname()[1]
    else:
        port = listeners[0].socket.getsockname()[1]
    ready(port)
    await trio.serve_listeners(functools.partial(echo, read_size=read_size), listeners)


def main() -> None:
    args = arguments(__doc__)
    trio.run(serve, args.tls, args.read_size, args.port, args.reuse_port)


if __name__ == "__main__":
    main()
