"""A TLS echo server and client, with certificates made on the spot by trustme.

A throw-away certificate authority signs a certificate for "localhost"; the server
listens with it (``ssl:``), and the client connects with ``tls:``, trusting only that
authority. The client verifies the server's certificate before ``open()`` returns.

    python examples/tls_echo.py
"""

import socket
import tempfile
from pathlib import Path

import trustme
from cryptography import x509

import greenpoint


def make_certificates(directory):
    """Write ca.pem (the authority) and server.pem (key and chain for localhost)."""
    authority = trustme.CA()
    server = authority.issue_cert("localhost", "127.0.0.1", "::1")
    ca_pem, server_pem = Path(directory, "ca.pem"), Path(directory, "server.pem")
    authority.cert_pem.write_to_path(str(ca_pem))
    server.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    return ca_pem, server_pem


def echo(stream, address):
    while data := stream.recv(65536):
        stream.sendall(data)


def tls_round_trip(message=b"hello over TLS"):
    """Serve, connect, echo ``message``; return (answer, TLS version, certificate names)."""
    with tempfile.TemporaryDirectory() as directory:
        ca_pem, server_pem = make_certificates(directory)
        quoted = greenpoint.quote_string_argument
        server = f"ssl:0:interface=127.0.0.1:privateKey={quoted(str(server_pem))}"
        with greenpoint.server_from_string(server).serve(echo) as port:
            client = f"tls:localhost:{port.get_host().port}:trustRoots={quoted(str(ca_pem))}"
            with greenpoint.client_from_string(client).open(timeout=10) as stream:
                stream.sendall(message)
                stream.shutdown(socket.SHUT_WR)  # sends TLS close_notify
                answer = b""
                while data := stream.recv(65536):
                    answer += data
                names = stream.peer_certificate.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName
                ).value.get_values_for_type(x509.DNSName)
                return answer, stream.tls_version, names


def main():
    answer, version, names = tls_round_trip()
    print(f"echoed {answer!r} over {version}, verified certificate for {', '.join(names)}")


if __name__ == "__main__":
    main()
