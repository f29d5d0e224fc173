"""greenpoint client endpoints.

``--variant hostname``: ``HostnameEndpoint(host, port, attempt_delay=..., resolver=...)``
(happy eyeballs; for an IP literal it must skip the resolver).
``--variant tcp4``: ``TCP4ClientEndpoint("127.0.0.1", port)`` (latency only).
``--variant description``: ``client_from_string("tcp:127.0.0.1:PORT")`` (latency only).
``--variant tls --ca CA``: ``client_from_string("tls:127.0.0.1:PORT:trustRoots=CA")``
(latency only; the peer gives no session tickets, so every handshake is a full one).
"""

from __future__ import annotations

from _client_common import HOST_NAME, Trials, arguments, fake_getaddrinfo, now, unavailable


def make_endpoint(args):
    import greenpoint

    if args.mode == "happy":
        return greenpoint.HostnameEndpoint(
            HOST_NAME,
            args.port,
            timeout=args.timeout,
            attempt_delay=args.attempt_delay,
            resolver=fake_getaddrinfo(args.port),
        )
    if args.variant == "tcp4":
        return greenpoint.TCP4ClientEndpoint("127.0.0.1", args.port, timeout=args.timeout)
    if args.variant == "tls":
        quoted = greenpoint.quote_string_argument(args.ca)
        return greenpoint.client_from_string(f"tls:127.0.0.1:{args.port}:trustRoots={quoted}")
    if args.variant == "description":
        return greenpoint.client_from_string(f"tcp:127.0.0.1:{args.port}")
    return greenpoint.HostnameEndpoint("127.0.0.1", args.port, timeout=args.timeout)


def main() -> None:
    args = arguments(__doc__, [("--variant", {"default": "hostname"}), ("--ca", {"default": None})])
    try:
        endpoint = make_endpoint(args)
    except (ImportError, AttributeError, NotImplementedError, TypeError) as exc:
        unavailable(f"{type(exc).__name__}: {exc}")
    trials = Trials(args)
    for _ in range(trials.total):
        started = now()
        try:
            stream = endpoint.open()
            if args.mode == "latency":
                stream.recv(1)
            ended = now()
            family = getattr(stream, "family", None)
            trials.record(started, ended, family)
            stream.close()
        except OSError as exc:
            trials.failed(exc)
    trials.report(endpoint=str(endpoint), endpoint_type=type(endpoint).__name__)


if __name__ == "__main__":
    main()
