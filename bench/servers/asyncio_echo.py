"""asyncio: an echo ``Protocol`` on the default loop, or uvloop's with ``--uvloop``."""

from __future__ import annotations

import asyncio

from _common import BACKLOG, HOST, arguments, ready, unavailable


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def serve(tls, port: int = 0, reuse_port: bool = False) -> None:
    context = None
    if tls:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
    loop = asyncio.get_running_loop()
    # reuse_port only when asked, so that the default call stays what it always was.
    extra = {"reuse_port": True} if reuse_port else {}
    server = await loop.create_server(Echo, HOST, port, backlog=BACKLOG, ssl=context, **extra)
    ready(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def main() -> None:
    args = arguments(__doc__, [("--uvloop", {"action": "store_true"})])
    if args.uvloop:
        try:
            import uvloop
        except ImportError as exc:
            unavailable(f"uvloop is not installed here ({exc})")
        uvloop.run(serve(args.tls, args.port, args.reuse_port))
    else:
        asyncio.run(serve(args.tls, args.port, args.reuse_port))


if __name__ == "__main__":
    main()
