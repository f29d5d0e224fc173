"""The server-name check of a certificate is remembered per certificate and name."""

from __future__ import annotations

import gevent
import pytest
from _tls_helpers import make_certs
from gevent import socket as gsocket
from OpenSSL import crypto

from greenpoint import _identity_cache
from greenpoint._identity_cache import MAX_ANSWERS, identity_problem
from greenpoint._tls_verify import check_identity
from greenpoint.errors import TLSVerificationError
from greenpoint.tls import (
    options_for_client_tls,
    options_for_server_tls,
    wrap_client_stream,
    wrap_server_stream,
)

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    monkeypatch.setattr(_identity_cache, "_answers", type(_identity_cache._answers)())


def load(path) -> crypto.X509:
    with open(path, "rb") as f:
        return crypto.load_certificate(crypto.FILETYPE_PEM, f.read())


class CountingCheck:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, cert, expected):
        self.calls.append(expected)
        return check_identity(cert, expected)


def test_the_same_certificate_and_name_are_checked_once(certs):
    cert = load(certs.server_pem)
    check = CountingCheck()
    assert identity_problem(cert, "localhost", check) is None
    assert identity_problem(load(certs.server_pem), "localhost", check) is None
    assert check.calls == ["localhost"]


def test_a_refusal_is_remembered_with_its_reason(certs):
    cert = load(certs.server_pem)
    check = CountingCheck()
    first = identity_problem(cert, "example.com", check)
    assert first is not None and "hostname mismatch" in first and "example.com" in first
    assert identity_problem(cert, "example.com", check) == first
    assert check.calls == ["example.com"]


def test_another_name_or_certificate_is_checked_anew(certs):
    check = CountingCheck()
    server = load(certs.server_pem)
    other = load(certs.issue("other.pem", "other.test"))
    assert identity_problem(server, "localhost", check) is None
    assert identity_problem(server, "other.test", check) is not None
    assert identity_problem(other, "other.test", check) is None
    assert identity_problem(other, "localhost", check) is not None
    assert check.calls == ["localhost", "other.test", "other.test", "localhost"]


def test_only_the_latest_answers_are_kept(certs):
    cert = load(certs.server_pem)
    check = CountingCheck()
    names = [f"host{i}.test" for i in range(MAX_ANSWERS + 1)]
    for name in names:
        identity_problem(cert, name, check)
    assert len(_identity_cache._answers) == MAX_ANSWERS
    identity_problem(cert, names[-1], check)  # kept
    identity_problem(cert, names[0], check)  # the oldest: forgotten, checked again
    assert check.calls == [*names, names[0]]


def handshake(client_options, server_options):
    client_raw, server_raw = gsocket.socketpair()
    server = gevent.spawn(wrap_server_stream, server_raw, server_options, 10)
    try:
        client = wrap_client_stream(client_raw, client_options, timeout=10)
    except BaseException:
        server.join(timeout=10)
        if server.successful():
            server.value.close()
        raise
    return client, server.get()


def test_a_remembered_refusal_still_refuses_the_handshake(certs):
    server_options = options_for_server_tls(certs.server_pem)
    for _ in range(2):  # the second handshake gets the remembered answer
        with pytest.raises(TLSVerificationError, match="hostname mismatch"):
            handshake(
                options_for_client_tls("example.com", trust_root=certs.ca_file), server_options
            )
    assert len(_identity_cache._answers) == 1
    client, server = handshake(
        options_for_client_tls("localhost", trust_root=certs.ca_file), server_options
    )
    client.close()
    server.close()
    assert len(_identity_cache._answers) == 2
