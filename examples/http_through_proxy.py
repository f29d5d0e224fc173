"""Fetch a page through any client description: a SOCKS5 or HTTP proxy, TLS, chains.

    python examples/http_through_proxy.py HOST 'socks5:HOST:80:proxy=[tcp:127.0.0.1:1080]'
    python examples/http_through_proxy.py example.com \\
        'tls:example.com:443:endpoint=[httpconnect:example.com:443:proxy=[tcp:proxy:3128]]'
    python examples/http_through_proxy.py example.com envproxy:example.com:443

Prints the response's status line, or the error (which names the proxy and its reply).
The program does not change when the route does: only the description.
"""

import sys

import greenpoint


def fetch_status(host, description, timeout=10.0):
    endpoint = greenpoint.client_from_string(description)
    with endpoint.open(timeout=timeout) as stream:
        stream.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n" not in head:
            chunk = stream.recv(4096)
            if not chunk:
                break
            head += chunk
    return head.split(b"\r\n", 1)[0].decode("latin-1")


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    host, description = argv[1], argv[2]
    try:
        print(fetch_status(host, description))
    except OSError as exc:  # ConnectError, ProxyError ...: the message says where and why
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
