"""Security defaults, end to end through descriptions and real sockets.

* A wrong host and an untrusted CA are refused by a client built from a plain
  description (no option turns verification on: it is the default), over ``ssl:`` and
  over ``tls:`` with a nested endpoint. (Expired and not-yet-valid certificates through
  both: ``test_tls_integration.py::test_certificates_outside_their_validity_are_refused``.)
* TLS 1.2 is the minimum on the client side too: a default client refuses a server
  that speaks at most TLS 1.1 (checked against a control client that does speak TLS
  1.1 to it, so the refusal is ours). The server side, with ``openssl s_client`` and
  pyOpenSSL: ``test_tls_integration.py::test_tls_1_1_clients_are_refused`` and
  ``::test_a_tls_1_1_hello_from_pyopenssl_is_refused``.
* No private key material is ever printed: error messages, their causes, reprs of
  options and endpoints, and every log record, across the ways loading a key fails.

Covered elsewhere: the UNIX socket ``mode`` with no window
(``test_unix.py::test_socket_file_is_never_looser_than_mode_to_a_watcher`` and
``::test_socket_file_is_never_looser_than_mode_right_after_bind``) and a lock file
held by another live process (``test_unix.py::test_lock_held_by_a_live_child_process``).
"""

from __future__ import annotations

import logging
import os
import re

import gevent
import pytest
import trustme
from _tls_helpers import make_certs
from gevent import socket as gsocket
from OpenSSL import SSL

from greenpoint import (
    TCP4ServerEndpoint,
    TLSError,
    TLSVerificationError,
    client_from_string,
    server_from_string,
    wrap_server_tls,
)
from greenpoint._description import quote_string_argument as q
from greenpoint.tls import (
    ServerTLSOptions,
    options_for_client_tls,
    options_for_server_tls,
    wrap_client_stream,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


def elsewhere(certs):
    path = os.path.join(certs.directory, "untrusted.pem")
    trustme.CA().issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(path)
    return path


BAD_CERTIFICATES = [
    ("wrong host", lambda c: c.issue("w.pem", "elsewhere.test"), "hostname mismatch"),
    ("untrusted CA", elsewhere, "untrusted issuer"),
]


@pytest.mark.parametrize("client", ["ssl", "tls"])
@pytest.mark.parametrize(
    ("case", "server_pem", "reason"), BAD_CERTIFICATES, ids=[c[0] for c in BAD_CERTIFICATES]
)
def test_clients_from_descriptions_refuse_bad_certificates(certs, client, case, server_pem, reason):
    served = []

    def handler(stream, address):
        served.append(address)
        stream.sendall(b"should never be read")

    pem = server_pem(certs)
    description = f"ssl:0:interface=127.0.0.1:privateKey={q(pem)}"
    with server_from_string(description).serve(handler) as port:
        number = port.get_host().port
        if client == "ssl":
            text = f"ssl:127.0.0.1:{number}:hostname=localhost:caCertsDir={q(certs.ca_file)}"
        else:
            inner = q(f"tcp:127.0.0.1:{number}")
            text = f"tls:localhost:{number}:endpoint={inner}:trustRoots={q(certs.ca_file)}"
        with pytest.raises(TLSVerificationError) as info:
            client_from_string(text).open(timeout=5)
    assert info.value.reason == reason
    assert served == []  # the handler never saw a verified connection


def test_a_good_certificate_is_accepted_by_the_same_descriptions(certs):
    # The control for the test above: the refusals come from the certificates.
    def handler(stream, address):
        stream.sendall(stream.recv(100))

    description = f"ssl:0:interface=127.0.0.1:privateKey={q(certs.server_pem)}"
    with server_from_string(description).serve(handler) as port:
        number = port.get_host().port
        inner = q(f"tcp:127.0.0.1:{number}")
        for text in (
            f"ssl:127.0.0.1:{number}:hostname=localhost:caCertsDir={q(certs.ca_file)}",
            f"tls:localhost:{number}:endpoint={inner}:trustRoots={q(certs.ca_file)}",
        ):
            with client_from_string(text).open(timeout=5) as stream:
                stream.sendall(b"ok")
                assert stream.recv(100) == b"ok"


# -- TLS 1.2 minimum -----------------------------------------------------------------


def legacy_context(method, certs, *, max_version=None, min_version=None):
    """A pyOpenSSL context willing to speak TLS 1.0/1.1 (security level 0)."""
    context = SSL.Context(method)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    context.set_min_proto_version(min_version or SSL.TLS1_VERSION)
    if max_version is not None:
        context.set_max_proto_version(max_version)
    if method == SSL.TLS_SERVER_METHOD:
        context.use_certificate_chain_file(certs.server_pem)
        context.use_privatekey_file(certs.server_pem)
    else:
        context.load_verify_locations(certs.ca_file)
        context.set_verify(SSL.VERIFY_PEER)
    return context


def raw_handshake(connection, sock):
    """Run a pyOpenSSL handshake over a gevent socket; the version it agreed."""
    while True:
        try:
            connection.do_handshake()
            return connection.get_protocol_version_name()
        except SSL.WantReadError:
            gsocket.wait_read(sock.fileno(), timeout=5)
        except SSL.WantWriteError:
            gsocket.wait_write(sock.fileno(), timeout=5)


def tls_1_1_server(certs):
    """A socketpair whose server end speaks at most TLS 1.1: (client socket, server greenlet)."""
    a, b = gsocket.socketpair()
    server = SSL.Connection(
        legacy_context(SSL.TLS_SERVER_METHOD, certs, max_version=SSL.TLS1_1_VERSION), b
    )
    server.set_accept_state()
    serving = gevent.spawn(raw_handshake, server, b)
    serving.link(lambda _: b.close())
    return a, serving


def test_a_default_client_refuses_a_tls_1_1_server(certs):
    # The control: a client that allows TLS 1.1 does get a TLS 1.1 session here.
    a, serving = tls_1_1_server(certs)
    with a:
        client = SSL.Connection(legacy_context(SSL.TLS_CLIENT_METHOD, certs), a)
        client.set_connect_state()
        assert raw_handshake(client, a) == "TLSv1.1"
        assert serving.get(timeout=5) == "TLSv1.1"

    a, serving = tls_1_1_server(certs)
    options = options_for_client_tls("localhost", trust_root=certs.ca_file)
    with pytest.raises(TLSError, match="version"):
        wrap_client_stream(a, options, timeout=5)
    serving.join(timeout=5)
    assert isinstance(serving.exception, SSL.Error)  # the server heard our refusal
    assert a.fileno() == -1  # the failed client closed its socket


# -- no secret in errors or logs ------------------------------------------------------


def key_body_lines(pem: bytes):
    """The base64 lines of every private key block in ``pem``: what must never leak."""
    lines = []
    for block in re.findall(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----(.*?)-----END", pem, re.S):
        lines += [line.decode() for line in block.split() if len(line) >= 16]
    assert lines
    return lines


def everything_said(error):
    """The message, repr and causes of ``error``: all that a log of it could show."""
    texts = []
    while error is not None:
        texts += [str(error), repr(error), repr(error.args)]
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


def test_no_private_key_material_is_ever_printed(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    ca = trustme.CA()
    mine = ca.issue_cert("localhost")
    other = ca.issue_cert("other.test")
    key = mine.private_key_pem.bytes()
    secrets = key_body_lines(key) + key_body_lines(other.private_key_pem.bytes())

    def write(name, data):
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)

    key_file = write("key.pem", key)
    other_cert = write("other-cert.pem", other.cert_chain_pems[0].bytes())
    # A key whose middle line was damaged: the rest of it is still secret.
    lines = key.splitlines()
    lines[2] = b"!" * len(lines[2])
    damaged = write("damaged.pem", b"\n".join(lines) + b"\n" + mine.cert_chain_pems[0].bytes())
    key_only = write("key-only.pem", key)
    encrypted = write(
        "encrypted.pem",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + key.splitlines()[1] + b"\n"
        b"-----END ENCRYPTED PRIVATE KEY-----\n",
    )

    failures = []

    def expect_failure(what, action):
        with pytest.raises((ValueError, OSError)) as info:
            action()
        failures.append((what, info.value))

    def listen(description):
        server_from_string(description).bind().close()

    base = "ssl:0:interface=127.0.0.1"
    expect_failure(
        "key not matching",
        lambda: listen(f"{base}:privateKey={q(key_file)}:certKey={q(other_cert)}"),
    )
    expect_failure("damaged key", lambda: listen(f"{base}:privateKey={q(damaged)}"))
    expect_failure("key without certificate", lambda: listen(f"{base}:privateKey={q(key_only)}"))
    expect_failure("encrypted key", lambda: listen(f"{base}:privateKey={q(encrypted)}"))
    expect_failure(
        "PEM bytes, not matching",
        lambda: (
            wrap_server_tls(
                ServerTLSOptions(certificate=other.cert_chain_pems[0].bytes(), private_key=key),
                TCP4ServerEndpoint(0, interface="127.0.0.1"),
            )
            .bind()
            .close()
        ),
    )
    expect_failure(
        "client key not matching",
        lambda: options_for_client_tls(
            "localhost", client_certificate=(other.cert_chain_pems[0].bytes(), key)
        ),
    )
    # A running server whose key file is replaced by a broken one keeps serving and
    # logs a warning: that warning must not quote the file either.
    served = write("served.pem", mine.private_key_and_cert_chain_pem.bytes())
    options = options_for_server_tls(served, reload_interval=0)
    with open(served, "wb") as file:
        file.write(b"\n".join(lines))
    expect_failure("reload of a damaged key", options.reload)
    endpoint = wrap_server_tls(
        ServerTLSOptions(certificate=mine.private_key_and_cert_chain_pem.bytes()),
        TCP4ServerEndpoint(0, interface="127.0.0.1"),
    )
    shown = [repr(options), repr(endpoint), str(endpoint), repr(endpoint.tls_options)]
    logging.getLogger("greenpoint").debug("endpoint %s, options %r", endpoint, endpoint.tls_options)

    assert len(failures) == 7
    out, err = capfd.readouterr()
    said = "\n".join(
        [
            *(f"{what}: {everything_said(error)}" for what, error in failures),
            *shown,
            caplog.text,
            out,
            err,
        ]
    )
    leaked = [line for line in secrets if line in said]
    assert not leaked, f"private key material printed: {leaked[:2]}"
    # The messages still say which file was wrong.
    assert "other-cert.pem" in everything_said(failures[0][1])
    assert "damaged.pem" in everything_said(failures[1][1])
    assert "<PEM data" in repr(endpoint)
