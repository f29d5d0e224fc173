"""TLS streams and options over loopback sockets, UNIX sockets and pipes."""

from __future__ import annotations

import errno
import logging
import os
import socket as _stdsocket
import time

import gevent
import pytest
from _tls_helpers import (
    LOOPBACK,
    Server,
    echo,
    expired,
    make_certs,
    pipe_pair,
)
from gevent import socket as gsocket
from OpenSSL import SSL

from greenpoint import (
    ConnectError,
    ConnectTimeoutError,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    wrap_client_tls,
    wrap_server_tls,
)
from greenpoint._pipe_stream import PipeStream
from greenpoint.errors import TLSError, TLSVerificationError
from greenpoint.tls import (
    ClientTLSOptions,
    ServerTLSOptions,
    TLSStream,
    options_for_client_tls,
    options_for_server_tls,
    wrap_client_stream,
    wrap_server_stream,
)

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


@pytest.fixture
def server_options(certs):
    return options_for_server_tls(certs.server_pem)


@pytest.fixture
def client_options(certs):
    return options_for_client_tls("localhost", trust_root=certs.ca_file)


def handshake_pair(client_options, server_options, *, client_raw=None, server_raw=None):
    """Connected (client, server) TLS streams over a socketpair (or given streams)."""
    if client_raw is None:
        client_raw, server_raw = gsocket.socketpair()
    server = gevent.spawn(wrap_server_stream, server_raw, server_options, 10)
    try:
        client = wrap_client_stream(client_raw, client_options, timeout=10)
    except BaseException:
        server.join(timeout=10)
        if server.successful():
            server.value.close()  # TLS 1.3: the server may have finished first
        raise
    return client, server.get()


def test_echo_over_socketpair_reports_what_was_negotiated(certs, client_options, server_options):
    client, server = handshake_pair(client_options, server_options)
    with client, server:
        assert isinstance(client, TLSStream)
        client.sendall(b"hello")
        assert server.recv(100) == b"hello"
        server.sendall(b"world")
        assert client.recv(100) == b"world"
        assert client.tls_version in ("TLSv1.2", "TLSv1.3")
        assert client.peer_certificate is not None
        assert server.peer_certificate is None  # no client certificate asked for
        assert client.alpn_protocol is None
        assert client.cipher
        assert not hasattr(client, "final_reason")  # a socket is no child process
        assert server.server_name == "localhost"


def test_close_sends_close_notify_after_all_data(client_options, server_options):
    client, server = handshake_pair(client_options, server_options)
    payload = os.urandom(3 * 1024 * 1024)
    received = bytearray()

    def read_all():
        while True:
            chunk = server.recv(65536)
            if not chunk:
                return
            received.extend(chunk)

    reader = gevent.spawn(read_all)
    client.sendall(payload)
    client.close()
    reader.get(timeout=10)
    server.close()
    assert bytes(received) == payload
    # close_notify, not a ragged EOF: OpenSSL recorded it.
    assert server.connection.get_shutdown() & SSL.RECEIVED_SHUTDOWN


def test_full_duplex_reader_and_writer_greenlets(client_options, server_options):
    client, server = handshake_pair(client_options, server_options)
    server_echo = gevent.spawn(echo, server, None)
    payload = os.urandom(2 * 1024 * 1024)
    got = bytearray()

    def reader():
        while len(got) < len(payload):
            chunk = client.recv(65536)
            assert chunk
            got.extend(chunk)

    reading = gevent.spawn(reader)
    client.sendall(payload)
    reading.get(timeout=10)
    client.close()
    server_echo.get(timeout=5)
    server.close()
    assert bytes(got) == payload


def test_recv_into_and_timeout(client_options, server_options):
    client, server = handshake_pair(client_options, server_options)
    with client, server:
        client.settimeout(0.2)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            client.recv(10)
        assert 0.15 < time.monotonic() - started < 2
        server.sendall(b"abcdef")
        buffer = bytearray(4)
        assert client.recv_into(buffer) == 4
        assert bytes(buffer) == b"abcd"
        client.setblocking(False)
        assert client.recv(10) == b"ef"
        with pytest.raises(BlockingIOError):
            client.recv(10)


def test_shutdown_write_half_closes(client_options, server_options):
    client, server = handshake_pair(client_options, server_options)
    with client, server:
        client.sendall(b"request")
        client.shutdown(_stdsocket.SHUT_WR)
        assert server.recv(100) == b"request"
        assert server.recv(100) == b""  # close_notify seen as the end
        server.sendall(b"response")  # the other direction still works
        assert client.recv(100) == b"response"


def test_makefile_keeps_stream_open_until_files_close(client_options, server_options):
    client, server = handshake_pair(client_options, server_options)
    rfile = server.makefile("rb")
    wfile = server.makefile("wb")
    server.close()  # like a socket: the files keep it open
    client.sendall(b"line one\nline two\n")
    assert rfile.readline() == b"line one\n"
    assert rfile.readline() == b"line two\n"
    wfile.write(b"reply\n")
    wfile.flush()
    assert client.recv(100) == b"reply\n"
    rfile.close()
    assert server.fileno() != -1
    wfile.close()
    assert server.fileno() == -1
    assert client.recv(100) == b""
    client.close()


def test_wsgi_handler_serves_over_tls_stream(client_options, server_options):
    from gevent import pywsgi

    def app(environ, start_response):
        body = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    wsgi_server = pywsgi.WSGIServer((LOOPBACK, 0), app, log=None)
    wsgi_server.environ = {"SERVER_NAME": "localhost", "SERVER_PORT": "443"}
    client, server = handshake_pair(client_options, server_options)
    handling = gevent.spawn(wsgi_server.handle, server, (LOOPBACK, 1234))
    client.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    response = bytearray()
    while True:
        chunk = client.recv(65536)
        if not chunk:
            break
        response.extend(chunk)
    handling.get(timeout=5)
    client.close()
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"GET /hello")


# -- verification ------------------------------------------------------------


def refused(client_options, server_options):
    with pytest.raises(TLSVerificationError) as info:
        handshake_pair(client_options, server_options)
    return info.value


def test_wrong_host_name_is_refused(certs, server_options):
    error = refused(options_for_client_tls("example.com", trust_root=certs.ca_file), server_options)
    assert isinstance(error, ConnectError)
    assert error.reason == "hostname mismatch"
    assert "hostname mismatch" in str(error) and "example.com" in str(error)


def test_untrusted_issuer_is_refused(certs, tmp_path_factory, server_options):
    other = make_certs(tmp_path_factory.mktemp("other"))
    error = refused(options_for_client_tls("localhost", trust_root=other.ca_file), server_options)
    assert error.reason == "untrusted issuer"
    assert "untrusted issuer" in str(error)


def test_expired_certificate_is_refused(certs, client_options):
    old = options_for_server_tls(certs.issue("old.pem", "localhost", **expired()))
    error = refused(client_options, old)
    assert error.reason == "certificate expired"
    assert "certificate expired" in str(error)


def test_ip_literal_checked_against_ip_san_without_sni(certs, server_options):
    seen = []

    def server_side(raw):
        stream = wrap_server_stream(raw, server_options, 10)
        seen.append(stream.server_name)
        return stream

    a, b = gsocket.socketpair()
    serving = gevent.spawn(server_side, b)
    client = wrap_client_stream(a, options_for_client_tls("127.0.0.1", trust_root=certs.ca_file))
    server = serving.get(timeout=5)
    client.close()
    server.close()
    assert seen == [None]  # RFC 6066 §3: no SNI for an address
    with pytest.raises(TLSVerificationError, match="hostname mismatch"):
        handshake_pair(options_for_client_tls("10.0.0.1", trust_root=certs.ca_file), server_options)


def test_trust_root_directory_and_bytes(certs, tmp_path_factory, server_options):
    directory = tmp_path_factory.mktemp("cas")
    other = make_certs(tmp_path_factory.mktemp("unrelated"))
    (directory / "a-other.pem").write_bytes(other.ca.cert_pem.bytes())
    (directory / "b-ours.crt").write_bytes(certs.ca.cert_pem.bytes())
    (directory / "notes.pem").write_text("not a certificate")
    for trust in (str(directory), certs.ca.cert_pem.bytes()):
        client, server = handshake_pair(
            options_for_client_tls("localhost", trust_root=trust), server_options
        )
        client.close()
        server.close()


def test_system_trust_is_the_default(server_options, monkeypatch, certs):
    # SSL_CERT_FILE steers OpenSSL's default paths, as Twisted's platformTrust does.
    monkeypatch.setenv("SSL_CERT_FILE", certs.ca_file)
    client, server = handshake_pair(options_for_client_tls("localhost"), server_options)
    client.close()
    server.close()


def test_turning_verification_off_is_explicit_and_logged(certs, server_options, caplog):
    with pytest.raises(ValueError, match="verify=False"):
        ClientTLSOptions(None)
    options = ClientTLSOptions("example.com", verify=False)
    with caplog.at_level(logging.WARNING, logger="greenpoint.tls"):
        client, server = handshake_pair(options, server_options)
    client.close()
    server.close()
    assert any("verification is OFF" in record.getMessage() for record in caplog.records)


def test_ready_context_is_used_and_hostname_still_checked(certs, server_options):
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.load_verify_locations(certs.ca_file)
    with pytest.raises(ValueError, match="VERIFY_NONE"):
        ClientTLSOptions("localhost", context=context)
    context.set_verify(SSL.VERIFY_PEER)
    client, server = handshake_pair(ClientTLSOptions("localhost", context=context), server_options)
    client.close()
    server.close()
    with pytest.raises(TLSVerificationError, match="hostname mismatch"):
        handshake_pair(ClientTLSOptions("example.com", context=context), server_options)


def test_server_accepts_ready_context(certs, client_options):
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate_chain_file(certs.server_pem)
    context.use_privatekey_file(certs.server_pem)
    client, server = handshake_pair(client_options, context)
    client.close()
    server.close()


# -- ALPN, versions, client certificates ---------------------------------------


def test_alpn_negotiated_by_server_preference(certs):
    server_options = options_for_server_tls(certs.server_pem, alpn=["h2", "http/1.1"])
    offers = {
        ("http/1.1", "h2"): "h2",
        ("http/1.1",): "http/1.1",
        ("spdy/3",): None,  # no overlap: carry on without ALPN
    }
    for offered, expected in offers.items():
        client_options = options_for_client_tls("localhost", trust_root=certs.ca_file, alpn=offered)
        client, server = handshake_pair(client_options, server_options)
        assert client.alpn_protocol == expected
        assert server.alpn_protocol == expected
        client.close()
        server.close()


def test_minimum_version_is_enforced(certs):
    tls13_server = options_for_server_tls(certs.server_pem, minimum_version="TLSv1.3")
    client_options = options_for_client_tls("localhost", trust_root=certs.ca_file)
    client, server = handshake_pair(client_options, tls13_server)
    assert client.tls_version == "TLSv1.3"
    client.close()
    server.close()
    with pytest.raises(ValueError, match="RFC 8996"):
        options_for_client_tls("localhost", minimum_version="TLSv1.1")
    # A client capped at TLS 1.2 cannot talk to it.
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    context.set_verify(SSL.VERIFY_PEER)
    context.load_verify_locations(certs.ca_file)
    with pytest.raises(TLSError):
        handshake_pair(ClientTLSOptions("localhost", context=context), tls13_server)


def test_client_certificate_required_and_checked(certs, tmp_path_factory):
    client_ca = make_certs(tmp_path_factory.mktemp("clientca"))
    good = client_ca.issue("alice.pem", "alice@example.com", common_name="alice")
    stranger = make_certs(tmp_path_factory.mktemp("strangers"))
    bad = stranger.issue("mallory.pem", "mallory@example.com")
    server_options = options_for_server_tls(certs.server_pem, client_ca=client_ca.ca_file)

    def client_with(certificate):
        return options_for_client_tls(
            "localhost", trust_root=certs.ca_file, client_certificate=certificate
        )

    client, server = handshake_pair(client_with(good), server_options)
    assert server.peer_certificate.subject.rfc4514_string().startswith("CN=alice")
    client.sendall(b"hi")
    assert server.recv(10) == b"hi"
    client.close()
    server.close()

    for certificate in (None, bad):
        a, b = gsocket.socketpair()
        serving = gevent.spawn(wrap_server_stream, b, server_options, 10)
        # In TLS 1.3 the client finishes first; the refusal comes as an alert.
        try:
            client = wrap_client_stream(a, client_with(certificate), timeout=10)
        except TLSError:
            pass
        else:
            with client, pytest.raises(TLSError, match="alert"):
                client.recv(10)
        with pytest.raises(TLSError):
            serving.get(timeout=5)


def test_optional_client_certificate(certs, tmp_path_factory):
    client_ca = make_certs(tmp_path_factory.mktemp("clientca"))
    server_options = options_for_server_tls(
        certs.server_pem, client_ca=client_ca.ca_file, require_client_certificate=False
    )
    client, server = handshake_pair(
        options_for_client_tls("localhost", trust_root=certs.ca_file), server_options
    )
    assert server.peer_certificate is None
    client.sendall(b"x")
    assert server.recv(1) == b"x"
    client.close()
    server.close()


def test_server_options_errors_name_the_file(certs, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pem"):
        options_for_server_tls(str(tmp_path / "missing.pem"))
    only_cert = tmp_path / "only-cert.pem"
    only_cert.write_bytes(certs.ca.cert_pem.bytes())
    with pytest.raises(ValueError, match="no private key"):
        options_for_server_tls(str(only_cert))
    other_key = tmp_path / "other-key.pem"
    other_key.write_bytes(certs.ca.issue_cert("x").private_key_pem.bytes())
    with pytest.raises(ValueError, match="does not match"):
        options_for_server_tls(certs.server_pem, private_key=str(other_key))


def test_extra_chain_is_sent(certs, tmp_path):
    intermediate = certs.ca.create_child_ca()
    leaf = intermediate.issue_cert("localhost")
    cert_file = tmp_path / "leaf.pem"
    cert_file.write_bytes(leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes())
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(intermediate.cert_pem.bytes())
    client_options = options_for_client_tls("localhost", trust_root=certs.ca_file)
    # Without the intermediate the client cannot build a path to its CA.
    with pytest.raises(TLSVerificationError, match="untrusted issuer"):
        handshake_pair(client_options, options_for_server_tls(str(cert_file)))
    chained = options_for_server_tls(str(cert_file), extra_chain=str(chain_file))
    client, server = handshake_pair(client_options, chained)
    assert len(client.peer_certificate_chain) == 2
    client.close()
    server.close()


# -- deadlines and silent peers ------------------------------------------------


def test_client_handshake_timeout_closes_the_socket(client_options):
    a, b = gsocket.socketpair()
    started = time.monotonic()
    with pytest.raises(ConnectTimeoutError, match="timed out"):
        wrap_client_stream(a, client_options, timeout=0.3)
    assert time.monotonic() - started < 2
    assert a.fileno() == -1
    b.close()


def test_server_handshake_timeout(server_options):
    a, b = gsocket.socketpair()
    with pytest.raises(ConnectTimeoutError):
        wrap_server_stream(b, server_options, timeout=0.2)
    a.close()


def test_peer_closing_during_handshake_is_a_tls_error(client_options):
    a, b = gsocket.socketpair()
    b.close()
    with pytest.raises(TLSError, match="handshake"):
        wrap_client_stream(a, client_options, timeout=5)


def test_kill_during_handshake_closes_the_socket(client_options):
    a, b = gsocket.socketpair()
    greenlet = gevent.spawn(wrap_client_stream, a, client_options)
    gevent.idle()  # every greenlet has run: the client sent its hello and waits
    greenlet.kill()
    assert a.fileno() == -1
    b.close()


def test_close_from_another_greenlet_wakes_the_reader(client_options, server_options):
    client, server = handshake_pair(client_options, server_options)
    reader = gevent.spawn(client.recv, 10)
    gevent.idle()  # every greenlet has run: the reader waits
    client.close()
    with pytest.raises(OSError):
        reader.get(timeout=2)
    server.close()


def test_socket_closed_under_the_stream_fails_reads_with_ebadf(client_options, server_options):
    raw, peer = gsocket.socketpair()
    client, server = handshake_pair(client_options, server_options, client_raw=raw, server_raw=peer)
    reader = gevent.spawn(client.recv, 10)
    gevent.idle()  # every greenlet has run: the reader waits
    raw.close()  # behind the TLS stream's back: wakes the reader waiting on it
    with pytest.raises(OSError) as waiting:
        reader.get(timeout=2)
    with pytest.raises(OSError) as later:  # and a new read neither hangs nor crashes
        client.recv(10)
    assert waiting.value.errno == later.value.errno == errno.EBADF
    client.close()
    server.close()


# -- the listener: handshakes in the connection greenlets ----------------------


def tls_listener(server_options, tmp_path, **kwargs):
    return wrap_server_tls(
        server_options, UNIXServerEndpoint(str(tmp_path / "tls.sock")), **kwargs
    ).bind()


def test_wrap_client_tls_over_unix_endpoint(certs, tmp_path, server_options, client_options):
    with Server(tls_listener(server_options, tmp_path), echo):
        endpoint = wrap_client_tls(client_options, UNIXClientEndpoint(str(tmp_path / "tls.sock")))
        with endpoint.open(timeout=5) as stream:
            stream.sendall(b"over unix")
            assert stream.recv(100) == b"over unix"


def test_silent_client_does_not_block_a_second_one(tmp_path, server_options, client_options):
    path = str(tmp_path / "tls.sock")
    with Server(tls_listener(server_options, tmp_path, handshake_timeout=10), echo) as server:
        silent = gsocket.socket(_stdsocket.AF_UNIX)
        silent.connect(path)
        gevent.idle()  # every greenlet has run: the server waits for the silent hello
        started = time.monotonic()
        with wrap_client_tls(client_options, UNIXClientEndpoint(path)).open(timeout=3) as stream:
            stream.sendall(b"second")
            assert stream.recv(100) == b"second"
        assert time.monotonic() - started < 5  # not at the silent one's 10 s timeout
        silent.close()
        assert len(server.streams) == 1


def test_accept_skips_clients_whose_handshake_fails(tmp_path, server_options, client_options):
    path = str(tmp_path / "tls.sock")
    listener = tls_listener(server_options, tmp_path, handshake_timeout=0.3)
    try:
        silent = gsocket.socket(_stdsocket.AF_UNIX)
        silent.connect(path)
        opened = gevent.spawn(wrap_client_tls(client_options, UNIXClientEndpoint(path)).open, 5)
        stream, _ = listener.accept()  # the silent one times out, then this one
        with stream, opened.get(timeout=5) as client:
            client.sendall(b"x")
            assert stream.recv(1) == b"x"
        silent.close()
    finally:
        listener.close()


def test_open_deadline_covers_connect_and_handshake(tmp_path, client_options):
    path = str(tmp_path / "mute.sock")
    mute = gsocket.socket(_stdsocket.AF_UNIX)
    mute.bind(path)
    mute.listen(5)  # accepts at kernel level, never answers the ClientHello
    try:
        started = time.monotonic()
        with pytest.raises(ConnectTimeoutError):
            wrap_client_tls(client_options, UNIXClientEndpoint(path, timeout=0.4)).open()
        assert 0.3 < time.monotonic() - started < 2
    finally:
        mute.close()


# -- memory BIOs: TLS over pipes ------------------------------------------------


def test_tls_over_pipes_uses_memory_bios(client_options, server_options):
    client_pipe, server_pipe = pipe_pair()
    client, server = handshake_pair(
        client_options, server_options, client_raw=client_pipe, server_raw=server_pipe
    )
    assert client._memory and server._memory
    assert client.getpeername() == client_pipe.getpeername()  # the pipe's own name
    assert not hasattr(client, "final_reason")  # only over a stream that has one
    serving = gevent.spawn(echo, server, None)
    payload = os.urandom(300_000)
    got = bytearray()

    def read():
        while len(got) < len(payload):
            got.extend(client.recv(65536))

    reading = gevent.spawn(read)
    client.sendall(payload)
    reading.get(timeout=10)
    client.close()
    serving.get(timeout=5)
    server.close()
    assert bytes(got) == payload
    assert client_pipe.closed and server_pipe.closed


def test_pipe_stream_handshake_failure_closes_it(certs, server_options):
    client_pipe, server_pipe = pipe_pair()
    serving = gevent.spawn(wrap_server_stream, server_pipe, server_options, 5)
    with pytest.raises(TLSVerificationError):
        wrap_client_stream(
            client_pipe, options_for_client_tls("other.test", trust_root=certs.ca_file)
        )
    with pytest.raises(TLSError):
        serving.get(timeout=5)
    assert client_pipe.closed and server_pipe.closed
    assert isinstance(client_pipe, PipeStream)


def test_server_options_value_equality(certs):
    assert ServerTLSOptions(certs.server_pem) == ServerTLSOptions(certs.server_pem)
    assert ClientTLSOptions("a", alpn="h2,http/1.1") == ClientTLSOptions(
        "a", alpn=("h2", "http/1.1")
    )


def test_closed_stream_refuses_io_and_empty_calls_are_no_ops(client_options, server_options):
    client, server = handshake_pair(client_options, server_options)
    assert client.send(b"") == 0
    assert client.recv(0) == b""
    assert client.recv_into(bytearray(0)) == 0
    client.close()
    client.close()  # twice is fine
    for call in (lambda: client.recv(1), lambda: client.sendall(b"x"), lambda: client.send(b"x")):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == 9  # EBADF
    assert client.fileno() == -1
    assert server.recv(10) == b""
    server.close()


def test_missing_dh_parameters_and_encrypted_keys_are_named(certs, tmp_path):
    with pytest.raises(FileNotFoundError, match="dh.pem"):
        options_for_server_tls(certs.server_pem, dh_parameters=str(tmp_path / "dh.pem"))
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    with pytest.raises(ValueError, match="is encrypted: give its passphrase with passphraseFile"):
        options_for_server_tls(certs.server_pem, private_key=str(encrypted))
