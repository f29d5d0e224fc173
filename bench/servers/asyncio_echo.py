"""asyncio: an echo ``Protocol`` on the default loop, or uvloop's with ``--uvloop``."""

from __future__ import annotations

import asyncio

from _common import BACKLOG, HOST, arguments, ready, unavailable


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def serve(tls) -> None:
    context = None
    if tls:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, HOST, 0, backlog=BACKLOG, ssl=context)
    ready(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def main() -> None:
    args = arguments(__doc__, [("--uvloop", {"action": "store_true"})])
    if args.uvloop:
        try:
            import uvloop
        except ImportError as exc:
            unavailable(f"uvloop is not installed here ({exc})")
        uvloop.run(serve(args.tls))
    else:
        asyncio.run(serve(args.tls))


if __name__ == "__main__":
    main()
