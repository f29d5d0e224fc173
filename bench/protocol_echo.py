"""Server CPU per GB: an echo ``Protocol`` served by greenpoint against a raw gevent loop.

Usage: python bench/protocol_echo.py [--gigabytes 1] [--rounds 3]

Each server runs in its own process and reports the CPU time (user + system) it spent
on one connection; a threaded blocking client in this process pushes the bytes and
reads the echo back. The raw server is ``gevent.server.StreamServer`` with a
``recv(65536)``/``sendall`` loop, the limit for any gevent code. The greenpoint server
uses ``listen(factory)`` when ``greenpoint._serve`` exists, otherwise the same
``StreamServer`` calling greenpoint's per-connection handler (the accept loop is not
on the per-byte path). Best of ``--rounds`` for each, then the ratio.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

CHUNK = 64 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))


def serve(kind: str) -> None:
    sys.path.insert(0, os.path.dirname(HERE))
    import gevent
    from gevent import socket as gsocket
    from gevent.server import StreamServer

    listener = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    done = gevent.event.Event()

    def report(started: float) -> None:
        print(f"cpu {time.process_time() - started:.6f}", flush=True)
        done.set()

    if kind == "raw":

        def handle(sock, address):
            started = time.process_time()
            recv, sendall = sock.recv, sock.sendall
            while True:
                data = recv(CHUNK)
                if not data:
                    break
                sendall(data)
            report(started)

        StreamServer(listener, handle).start()
    else:
        from greenpoint import Factory, Protocol
        from greenpoint._address import from_sockaddr
        from greenpoint._connect import ProtocolHandler

        class Echo(Protocol):
            def connectionMade(self):
                self.started = time.process_time()

            def dataReceived(self, data):
                self.transport.write(data)

            def connectionLost(self, reason):
                report(self.started)

        factory = Factory.forProtocol(Echo)
        try:
            import greenpoint._serve  # noqa: F401
        except ImportError:
            handler = ProtocolHandler(factory)
            StreamServer(
                listener, lambda sock, addr: handler(sock, from_sockaddr(sock.family, addr))
            ).start()
        else:
            from greenpoint.endpoints._base import ServerEndpoint

            class Bound(ServerEndpoint):
                def bind(self):
                    return listener

            Bound().listen(factory)

    print(f"port {listener.getsockname()[1]}", flush=True)
    done.wait()


def push(port: int, total: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    payload = os.urandom(CHUNK)

    def send() -> None:
        left = total
        while left > 0:
            sock.sendall(payload[: min(CHUNK, left)])
            left -= CHUNK
        sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    received = 0
    buf = bytearray(1024 * 1024)
    while received < total:
        n = sock.recv_into(buf)
        if not n:
            raise RuntimeError(f"echo ended early at {received} of {total} bytes")
        received += n
    sender.join()
    sock.close()


def measure(kind: str, total: int) -> float:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline().split()[1])
        push(port, total)
        cpu = float(server.stdout.readline().split()[1])
        return cpu / (total / 1e9)
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve")
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    total = int(args.gigabytes * 1e9)
    results: dict[str, list[float]] = {"raw": [], "greenpoint": []}
    for _ in range(args.rounds):
        for kind in results:
            results[kind].append(measure(kind, total))
    best = {kind: min(values) for kind, values in results.items()}
    for kind, values in results.items():
        print(
            f"{kind:>10}: best {best[kind]:.3f} CPU-s/GB  (runs: {', '.join(f'{v:.3f}' for v in values)})"
        )
    print(f"ratio greenpoint/raw: {best['greenpoint'] / best['raw']:.3f} (limit 1.20)")


if __name__ == "__main__":
    main()
