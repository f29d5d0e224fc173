"""The fixed load generator: one stdlib-socket program used against every server.

Only the server differs between measurements, so this program never changes with the
contender. It speaks to the harness in lines on stdout and waits for ``GO`` on stdin:

    echo      --port P --bytes N [--tls]             WARM, GO, RESULT {...}
    connrate  --port P --count N --concurrency C [--tls]   WARM, GO, RESULT {...}
    idle      --port P --count N [--sources A,B] [--warmup W]   WARM, GO, HELD {...}, GO, RESULT {...}
    first-byte-server --port P [--tls-files C K]     READY port (then serves until stdin closes)

The echo and connection loops are single-threaded, non-blocking and selector-driven,
the same for plain TCP and TLS (the stdlib ``ssl`` client; certificates are not
verified because only the server's cost is under test).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import selectors
import socket
import ssl
import sys
import tempfile
import time
from typing import Any

WARMUP_ECHO_BYTES = 4 << 20
WARMUP_CONNECTIONS = 50
PAYLOAD_SIZE = 100


def say(word: str, payload: Any = None) -> None:
    line = word if payload is None else f"{word} {json.dumps(payload)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_go() -> None:
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


# -- one connection, many bytes -----------------------------------------------------


def echo(port: int, total: int, tls: bool, chunk: int = 256 << 10, window: int = 4 << 20) -> dict:
    """Send ``total`` bytes on one connection and read them all back; time it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        sock = client_context().wrap_socket(sock)
        # One TLS record carries at most 16 KiB; bigger writes just loop in OpenSSL.
        chunk = min(chunk, 64 << 10)
    sock.setblocking(False)
    payload = memoryview(os.urandom(chunk) * 2)
    buffer = bytearray(1 << 20)
    sent = received = 0
    selector = selectors.DefaultSelector()
    events = selectors.EVENT_READ | selectors.EVENT_WRITE
    selector.register(sock, events)
    started = time.perf_counter()
    try:
        while received < total:
            want = selectors.EVENT_READ
            if sent < total and sent - received < window:
                want |= selectors.EVENT_WRITE
            if want != events:
                selector.modify(sock, want)
                events = want
            for _key, ready in selector.select(10.0) or [(None, 0)]:
                if not ready:
                    raise TimeoutError(f"echo stalled at {received} of {total} bytes")
                if ready & selectors.EVENT_WRITE:
                    offset = sent % chunk
                    size = min(chunk, total - sent)
                    try:
                        sent += sock.send(payload[offset : offset + size])
                    except _WOULD_BLOCK:
                        pass
                if ready & selectors.EVENT_READ:
                    # Drain: a TLS object may hold decrypted bytes the selector cannot see.
                    while True:
                        try:
                            n = sock.recv_into(buffer)
                        except _WOULD_BLOCK:
                            break
                        if n == 0:
                            raise ConnectionError(f"server closed at {received} of {total} bytes")
                        received += n
                        if received >= total:
                            break
        elapsed = time.perf_counter() - started
    finally:
        selector.close()
        sock.close()
    return {"bytes": total, "seconds": elapsed, "mb_per_s": total / elapsed / 1e6}


def echo_zero_copy(port: int, total: int, chunk: int = 1 << 20, window: int = 4 << 20) -> dict:
    """``echo`` with a load generator that copies nothing, so the server is the bottleneck.

    It sends with ``sendfile()`` from a file of random bytes (the kernel moves the
    pages) and reads with ``recv_into(..., MSG_TRUNC)``, which on TCP discards the
    bytes in the kernel without copying them out (tcp(7)).
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    with tempfile.TemporaryFile() as source:
        source.write(os.urandom(chunk))
        source.flush()
        fd = source.fileno()
        # Python wants a buffer as big as the read; with MSG_TRUNC it is never written.
        scratch = bytearray(4 << 20)
        sent = received = 0
        selector = selectors.DefaultSelector()
        events = selectors.EVENT_READ | selectors.EVENT_WRITE
        selector.register(sock, events)
        started = time.perf_counter()
        try:
            while received < total:
                want = selectors.EVENT_READ
                if sent < total and sent - received < window:
                    want |= selectors.EVENT_WRITE
                if want != events:
                    selector.modify(sock, want)
                    events = want
                for _key, ready in selector.select(10.0) or [(None, 0)]:
                    if not ready:
                        raise TimeoutError(f"echo stalled at {received} of {total} bytes")
                    if ready & selectors.EVENT_WRITE:
                        offset = sent % chunk
                        try:
                            sent += os.sendfile(
                                sock.fileno(), fd, offset, min(chunk - offset, total - sent)
                            )
                        except BlockingIOError:
                            pass
                    if ready & selectors.EVENT_READ:
                        while received < total:
                            try:
                                n = sock.recv_into(scratch, 0, socket.MSG_TRUNC)
                            except BlockingIOError:
                                break
                            if n == 0:
                                raise ConnectionError(
                                    f"server closed at {received} of {total} bytes"
                                )
                            received += n
            elapsed = time.perf_counter() - started
        finally:
            selector.close()
            sock.close()
    return {"bytes": total, "seconds": elapsed, "mb_per_s": total / elapsed / 1e6}


# -- many short connections ---------------------------------------------------------


class _Short:
    """One short connection: connect, (handshake), send 100 bytes, read 100 back, close."""

    __slots__ = ("sock", "state", "got", "context")

    def __init__(self, port: int, context: ssl.SSLContext | None) -> None:
        self.context = context
        self.got = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = self.sock.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS):
            self.sock.close()
            raise OSError(code, os.strerror(code))
        self.state = "connect"

    def step(self, payload: bytes) -> int:
        """Advance; return the selector events to wait for next, or 0 when finished."""
        if self.state == "connect":
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
            if self.context is not None:
                self.sock = self.context.wrap_socket(self.sock, do_handshake_on_connect=False)
                self.state = "handshake"
            else:
                self.state = "send"
        if self.state == "handshake":
            try:
                self.sock.do_handshake()
            except ssl.SSLWantReadError:
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            self.state = "send"
        if self.state == "send":
            try:
                # 100 bytes always fit an empty send buffer in one go.
                self.sock.send(payload)
            except _WOULD_BLOCK:
                return selectors.EVENT_WRITE
            self.state = "receive"
        if self.state == "receive":
            while self.got < len(payload):
                try:
                    data = self.sock.recv(4096)
                except _WOULD_BLOCK:
                    return selectors.EVENT_READ
                if not data:
                    raise ConnectionError("server closed before echoing")
                self.got += len(data)
            return 0
        raise AssertionError(self.state)


def connrate(port: int, count: int, concurrency: int, tls: bool) -> dict:
    """Run ``count`` short connections, ``concurrency`` at a time; time them."""
    context = client_context() if tls else None
    payload = b"x" * PAYLOAD_SIZE
    selector = selectors.DefaultSelector()
    started_count = done = errors = 0
    first_error = ""
    began = time.perf_counter()
    cpu_began = cpu_seconds()

    def start_one() -> None:
        nonlocal started_count
        started_count += 1
        conn = _Short(port, context)
        selector.register(conn.sock, selectors.EVENT_WRITE, conn)

    try:
        while started_count < min(concurrency, count):
            start_one()
        while done < count:
            ready = selector.select(10.0)
            if not ready:
                raise TimeoutError(f"connections stalled after {done} of {count}")
            for key, _events in ready:
                conn = key.data
                old = conn.sock
                try:
                    want = conn.step(payload)
                except OSError as exc:
                    errors += 1
                    first_error = first_error or repr(exc)
                    want = 0
                if want:
                    if conn.sock is not old:
                        selector.unregister(old)
                        selector.register(conn.sock, want, conn)
                    else:
                        selector.modify(conn.sock, want, conn)
                    continue
                selector.unregister(old)
                conn.sock.close()
                done += 1
                if started_count < count:
                    start_one()
        elapsed = time.perf_counter() - began
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    return {
        "connections": count,
        "errors": errors,
        "first_error": first_error,
        "seconds": elapsed,
        "conn_per_s": count / elapsed,
        "loadgen_cpu_s": cpu_seconds() - cpu_began,
    }


# -- request/response over many connections ---------------------------------------

REQUEST_SIZE = 512


def reqresp(port: int, conns: list[socket.socket], requests: int) -> dict:
    """``requests`` request/response exchanges over the open ``conns``, one in flight
    on each: a 512-byte request, answered by the echo; the next goes when it is back."""
    payload = b"r" * REQUEST_SIZE
    buffer = bytearray(64 << 10)
    selector = selectors.DefaultSelector()
    got: dict[int, int] = {}
    sent = done = 0
    began = time.perf_counter()
    try:
        for sock in conns:
            if sent >= requests:
                break
            sock.send(payload)  # 512 bytes always fit an idle socket's buffer
            sent += 1
            got[sock.fileno()] = 0
            selector.register(sock, selectors.EVENT_READ)
        while done < requests:
            ready = selector.select(10.0)
            if not ready:
                raise TimeoutError(f"requests stalled after {done} of {requests}")
            for key, _events in ready:
                sock = key.fileobj
                fd = key.fd
                n = sock.recv_into(buffer)
                if n == 0:
                    raise ConnectionError(f"server closed a connection after {done} requests")
                got[fd] += n
                if got[fd] < REQUEST_SIZE:
                    continue
                got[fd] = 0
                done += 1
                if sent < requests:
                    sock.send(payload)
                    sent += 1
                else:
                    selector.unregister(sock)
        elapsed = time.perf_counter() - began
    finally:
        selector.close()
    return {"requests": requests, "seconds": elapsed, "req_per_s": requests / elapsed}


def reqresp_mode(port: int, count: int, requests: int) -> None:
    conns = open_idle(port, count)
    try:
        for sock in conns:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reqresp(port, conns, count)  # warm: one request on every connection
        say("WARM")
        wait_go()
        say("RESULT", {"connections": count, **reqresp(port, conns, requests)})
    finally:
        for sock in conns:
            sock.close()


# -- many idle connections ----------------------------------------------------------


# Linux's IP_BIND_ADDRESS_NO_PORT (socket.h; Python 3.11 lacks the constant): bind()
# takes the source address only and connect() picks the port, unique per 4-tuple.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

# Of the ephemeral ports of one source address, use at most this share (the rest stay
# for the other programs on the machine, and for ports in TIME_WAIT).
PORT_SHARE = 0.7


def ephemeral_ports() -> int:
    """How many ports ``net.ipv4.ip_local_port_range`` gives one source address."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(n) for n in f.read().split())
        return high - low + 1
    except (OSError, ValueError):
        return 28232  # Linux's default range, 32768-60999


def source_addresses(count: int) -> list[str | None]:
    """Loopback source addresses enough for ``count`` connections to one port.

    One source address gives each destination only as many connections as there are
    ephemeral ports (28,232 by default); past that, connections come from 127.0.0.2,
    127.0.0.3, ... (all of 127/8 is loopback on Linux). ``None``: the kernel's choice.
    """
    per_source = int(ephemeral_ports() * PORT_SHARE)
    if count <= per_source:
        return [None]
    return [f"127.0.0.{2 + i}" for i in range(-(-count // per_source))]


def open_idle(
    port: int, count: int, batch: int = 200, sources: list[str | None] | None = None
) -> list[socket.socket]:
    """Open ``count`` connections, each proven served by a one-byte echo, and keep them.

    ``sources``: the source addresses to take in turn (default: as many as ``count``
    needs, see :func:`source_addresses`; the split regime gives each process its own).
    """
    held: list[socket.socket] = []
    if sources is None:
        sources = source_addresses(count)
    opened = 0
    selector = selectors.DefaultSelector()
    pending: dict[socket.socket, int] = {}
    try:
        while len(held) < count or pending:
            while len(held) + len(pending) < count and len(pending) < batch:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                source = sources[opened % len(sources)]
                opened += 1
                if source is not None:
                    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    sock.bind((source, 0))
                code = sock.connect_ex(("127.0.0.1", port))
                if code not in (0, errno.EINPROGRESS):
                    sock.close()
                    raise OSError(code, f"connection {len(held)}: {os.strerror(code)}")
                pending[sock] = 0
                selector.register(sock, selectors.EVENT_WRITE)
            ready = selector.select(10.0)
            if not ready:
                raise TimeoutError(f"idle connections stalled at {len(held)} of {count}")
            for key, _events in ready:
                sock = key.fileobj
                if pending[sock] == 0:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise OSError(code, f"connection {len(held)}: {os.strerror(code)}")
                    sock.send(b"!")
                    pending[sock] = 1
                    selector.modify(sock, selectors.EVENT_READ)
                    continue
                if sock.recv(16) != b"!":
                    raise ConnectionError("idle connection closed before its echo")
                selector.unregister(sock)
                del pending[sock]
                held.append(sock)
    except BaseException:
        for sock in [*held, *pending]:
            sock.close()
        raise
    finally:
        selector.close()
    return held


def idle(port: int, count: int, sources: list[str | None] | None = None, warmup: int = 10) -> None:
    # Warm the server up (lazy imports, first allocations) before its baseline is read;
    # with several server processes on the port, enough that each gets some.
    for sock in open_idle(port, warmup, sources=sources):
        sock.close()
    time.sleep(0.2)
    say("WARM")
    wait_go()
    began = time.perf_counter()
    held = open_idle(port, count, sources=sources)
    say("HELD", {"connections": len(held), "seconds": time.perf_counter() - began})
    wait_go()
    for sock in held:
        sock.close()
    say("RESULT", {"connections": count})


# -- a fixed peer for client benchmarks ---------------------------------------------


def first_byte_server(port: int, host: str, tls: tuple[str, str] | None = None) -> None:
    """Accept connections and write one byte to each at once; serve until stdin closes.

    With ``tls=(cert, key)``: finish a TLS handshake first (stdlib ``ssl``, no session
    tickets, so that every client does a full handshake), then write the byte.
    """
    context = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        context.num_tickets = 0  # no TLS 1.3 resumption: full handshakes only
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "listener")
    selector.register(sys.stdin, selectors.EVENT_READ, "stdin")
    say("READY", listener.getsockname()[1])

    def handshake(conn: Any) -> None:
        """Go on with a TLS handshake; at its end, the byte."""
        try:
            conn.do_handshake()
        except ssl.SSLWantReadError:
            selector.modify(conn, selectors.EVENT_READ, "handshake")
            return
        except ssl.SSLWantWriteError:
            selector.modify(conn, selectors.EVENT_WRITE, "handshake")
            return
        except (ssl.SSLError, OSError):
            selector.unregister(conn)
            conn.close()
            return
        try:
            conn.send(b"x")
        except (ssl.SSLError, OSError):
            selector.unregister(conn)
            conn.close()
            return
        selector.modify(conn, selectors.EVENT_READ, "conn")

    while True:
        for key, _events in selector.select():
            if key.data == "stdin":
                if not sys.stdin.readline():
                    return
            elif key.data == "listener":
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if context is not None:
                        conn.setblocking(False)
                        conn = context.wrap_socket(
                            conn, server_side=True, do_handshake_on_connect=False
                        )
                        selector.register(conn, selectors.EVENT_READ, "handshake")
                        handshake(conn)
                        continue
                    try:
                        conn.send(b"x")
                    except OSError:
                        conn.close()
                        continue
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ, "conn")
            elif key.data == "handshake":
                handshake(key.fileobj)
            else:
                conn = key.fileobj
                try:
                    data = conn.recv(4096)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(conn)
                    conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", choices=["echo", "echo-zc", "connrate", "reqresp", "idle", "first-byte-server"]
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--bytes", type=int, default=1 << 30)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument(
        "--sources", default=None, help="idle: comma-separated source addresses to take in turn"
    )
    parser.add_argument("--warmup", type=int, default=10, help="idle: warm-up connections")
    parser.add_argument(
        "--tls-files", nargs=2, metavar=("CERT", "KEY"), help="first-byte-server: TLS"
    )
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    if args.mode == "first-byte-server":
        first_byte_server(args.port, args.host, args.tls_files)
    elif args.mode == "echo":
        echo(args.port, min(args.bytes, WARMUP_ECHO_BYTES), args.tls)
        say("WARM")
        wait_go()
        cpu_began = cpu_seconds()
        result = echo(args.port, args.bytes, args.tls)
        result["loadgen_cpu_s"] = cpu_seconds() - cpu_began
        say("RESULT", result)
    elif args.mode == "echo-zc":
        echo_zero_copy(args.port, min(args.bytes, WARMUP_ECHO_BYTES))
        say("WARM")
        wait_go()
        cpu_began = cpu_seconds()
        result = echo_zero_copy(args.port, args.bytes)
        result["loadgen_cpu_s"] = cpu_seconds() - cpu_began
        say("RESULT", result)
    elif args.mode == "connrate":
        connrate(args.port, WARMUP_CONNECTIONS, args.concurrency, args.tls)
        say("WARM")
        wait_go()
        say("RESULT", connrate(args.port, args.count, args.concurrency, args.tls))
    elif args.mode == "reqresp":
        reqresp_mode(args.port, args.count, args.requests)
    elif args.mode == "idle":
        sources = args.sources.split(",") if args.sources else None
        idle(args.port, args.count, sources, args.warmup)


if __name__ == "__main__":
    main()
