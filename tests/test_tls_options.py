"""TLS options: maximumVersion, ciphers, groups, encrypted keys (passphraseFile /
passphraseEnv), public-key pins, SSLKEYLOGFILE and client session resumption, each
observed on a real loopback handshake."""

from __future__ import annotations

import base64
import hashlib
import os
import stat

import pytest
import trustme
from _tls_helpers import make_certs
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import greenpoint
from greenpoint import DescriptionError, ListenError, TLSError, TLSVerificationError
from greenpoint._tls_context import groups_supported, spki_pin

pytestmark = pytest.mark.timeout(30)

TLS12_CIPHERS = "ECDHE-ECDSA-AES256-GCM-SHA384,ECDHE-RSA-AES256-GCM-SHA384"


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


def _echo(stream, address):
    while data := stream.recv(65536):
        stream.sendall(data)
    stream.close()


def _serve(server_description):
    return greenpoint.server_from_string(server_description).serve(_echo)


def _ssl_server(certs, extra=""):
    return _serve(f"ssl:0:interface=127.0.0.1:privateKey={certs.server_pem}{extra}")


def _talk(endpoint):
    """Open, echo a line, close; what was negotiated."""
    with endpoint.open(timeout=10) as stream:
        stream.sendall(b"ping")
        assert stream.recv(4) == b"ping"
        return {
            "version": stream.tls_version,
            "cipher": stream.cipher,
            "reused": stream.session_reused,
        }


def _client(certs, port, extra=""):
    return greenpoint.client_from_string(
        f"tls:localhost:{port.get_host().port}:trustRoots={certs.ca_file}{extra}"
    )


# -- versions, ciphers, groups -----------------------------------------------------


def test_server_maximum_version_and_ciphers_are_what_is_negotiated(certs):
    with _ssl_server(certs, f":maximumVersion=TLSv1.2:ciphers={TLS12_CIPHERS}") as port:
        seen = _talk(_client(certs, port))
    assert seen["version"] == "TLSv1.2"
    assert seen["cipher"] in TLS12_CIPHERS.split(",")


def test_client_maximum_version_and_ciphers_are_what_is_negotiated(certs):
    with _ssl_server(certs) as port:
        assert _talk(_client(certs, port))["version"] == "TLSv1.3"
        seen = _talk(_client(certs, port, f":maximumVersion=1.2:ciphers={TLS12_CIPHERS}"))
    assert seen["version"] == "TLSv1.2"
    assert seen["cipher"] in TLS12_CIPHERS.split(",")


def test_minimum_above_the_peers_maximum_fails_the_handshake(certs):
    with (
        _ssl_server(certs, ":maximumVersion=TLSv1.2") as port,
        pytest.raises(TLSError, match="version"),
    ):
        _talk(_client(certs, port, ":minimumVersion=TLSv1.3"))


needs_groups = pytest.mark.skipif(
    not groups_supported(),
    reason="groups= needs cryptography >= 47 (SSL_CTX_set1_curves_list); make test-min "
    "runs the floor, 42",
)


@needs_groups
def test_groups_are_offered_as_given(certs):
    with _ssl_server(certs, ":groups=P-384") as port:
        assert _talk(_client(certs, port, ":groups=P-256,P-384"))["version"] == "TLSv1.3"
        with pytest.raises(TLSError):  # no group in common: the handshake cannot end
            _talk(_client(certs, port, ":groups=X25519"))


@pytest.mark.parametrize(
    ("suffix", "key", "message"),
    [
        (":ciphers=NOSUCHCIPHER", "ciphers", "OpenSSL knows none"),
        (":ciphers=a;b", "ciphers", "cipher names"),
        pytest.param(":groups=NOSUCHGROUP", "groups", "does not know", marks=needs_groups),
        (":maximumVersion=TLSv1.1", "maximumVersion", "TLSv1.2 or TLSv1.3"),
        (":minimumVersion=1.3:maximumVersion=1.2", "maximumVersion", "below minimumVersion"),
        (":pin=sha1/AAAA", "pin", "sha256/BASE64"),
        (":pin=sha256/notbase64!", "pin", "not base64"),
        (":pin=sha256/AAAA", "pin", "32 bytes"),
        (":passphraseFile=a:passphraseEnv=B", "passphraseEnv", "one passphrase"),
    ],
)
def test_bad_client_tls_values_name_the_key(suffix, key, message):
    with pytest.raises(DescriptionError, match=message) as caught:
        greenpoint.client_from_string("tls:example.com:443" + suffix)
    assert caught.value.parameter == key


@pytest.mark.parametrize(
    ("description", "key"),
    [
        ("ssl:0:ciphers=NOSUCHCIPHER", "ciphers"),
        pytest.param("tls:/tmp:groups=NOSUCHGROUP", "groups", marks=needs_groups),
        ("ssl:0:minimumVersion=1.3:maximumVersion=1.2", "maximumVersion"),
        ("ssl:0:passphraseFile=a:passphraseEnv=B", "passphraseEnv"),
    ],
)
def test_bad_server_tls_values_name_the_key(description, key):
    with pytest.raises(DescriptionError) as caught:
        greenpoint.server_from_string(description)
    assert caught.value.parameter == key


@needs_groups
def test_groups_round_trip():
    client = greenpoint.client_from_string("tls:h:443:groups=X25519,P-256")
    assert greenpoint.client_from_string(str(client)) == client
    server = greenpoint.server_from_string("ssl:0:privateKey=k.pem:groups=P-256")
    assert greenpoint.server_from_string(str(server)) == server


def test_groups_without_the_binding_is_a_clear_error():
    if groups_supported():
        pytest.skip(
            "this cryptography has SSL_CTX_set1_curves_list (make test-min checks the error)"
        )
    with pytest.raises(DescriptionError, match="needs cryptography 47.0 or newer") as caught:
        greenpoint.client_from_string("tls:h:443:groups=X25519")
    assert caught.value.parameter == "groups"


def test_new_tls_keys_round_trip():
    pin = "sha256/" + "A" * 43 + "="
    for description in (
        f"tls:h:443:maximumVersion=TLSv1.2:ciphers=AES128-SHA,AES256-SHA:pin={pin}",
        "ssl:h:443:verify=no:passphraseEnv=KEY_PASS:pin=" + pin,
    ):
        endpoint = greenpoint.client_from_string(description)
        assert greenpoint.client_from_string(str(endpoint)) == endpoint
    for description in (
        "ssl:0:privateKey=k.pem:maximumVersion=TLSv1.2:passphraseFile=/p",
        "tls:/tmp:port=0:ciphers=AES128-SHA",
    ):
        endpoint = greenpoint.server_from_string(description)
        assert greenpoint.server_from_string(str(endpoint)) == endpoint


# -- encrypted private keys ---------------------------------------------------------


def _encrypted_pair(certs, tmp_path, passphrase):
    """The server's certificate and its key encrypted with ``passphrase``."""
    issued = certs.ca.issue_cert("localhost", "127.0.0.1")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(encrypted)
    cert_path.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    return key_path, cert_path


def test_encrypted_key_with_passphrase_from_a_file(certs, tmp_path):
    key, cert = _encrypted_pair(certs, tmp_path, b"s3cret pass")
    secret = tmp_path / "passphrase.txt"
    secret.write_bytes(b"s3cret pass\n")  # the first line, without its newline
    server = f":certKey={cert}:passphraseFile={secret}"
    with _serve(f"ssl:0:interface=127.0.0.1:privateKey={key}{server}") as port:
        assert _talk(_client(certs, port))["version"] == "TLSv1.3"


def test_encrypted_key_with_passphrase_from_the_environment(certs, tmp_path, monkeypatch):
    key, cert = _encrypted_pair(certs, tmp_path, b"from-env")
    monkeypatch.setenv("GREENPOINT_TEST_KEY_PASS", "from-env")
    server = f":certKey={cert}:passphraseEnv=GREENPOINT_TEST_KEY_PASS"
    with _serve(f"ssl:0:interface=127.0.0.1:privateKey={key}{server}") as port:
        assert _talk(_client(certs, port))["version"] == "TLSv1.3"


def test_encrypted_client_key_with_passphrase(certs, tmp_path, monkeypatch):
    key, cert = _encrypted_pair(certs, tmp_path, b"client-pass")
    monkeypatch.setenv("GREENPOINT_TEST_CLIENT_PASS", "client-pass")
    seen = []

    def who(stream, address):
        seen.append(stream.peer_certificate is not None)
        _echo(stream, address)

    server = greenpoint.server_from_string(
        f"ssl:0:interface=127.0.0.1:privateKey={certs.server_pem}:clientCA={certs.ca_file}"
    )
    with server.serve(who) as port:
        client = _client(
            certs,
            port,
            f":certificate={cert}:privateKey={key}:passphraseEnv=GREENPOINT_TEST_CLIENT_PASS",
        )
        _talk(client)
    assert seen == [True]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("", "is encrypted: give its passphrase"),
        (":passphraseEnv=GREENPOINT_TEST_WRONG", "wrong passphrase"),
        (":passphraseEnv=GREENPOINT_TEST_UNSET", "GREENPOINT_TEST_UNSET is not set"),
    ],
)
def test_encrypted_key_problems_are_named_at_listen(certs, tmp_path, monkeypatch, keys, message):
    key, cert = _encrypted_pair(certs, tmp_path, b"right")
    monkeypatch.setenv("GREENPOINT_TEST_WRONG", "wrong")
    monkeypatch.delenv("GREENPOINT_TEST_UNSET", raising=False)
    server = greenpoint.server_from_string(
        f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}{keys}"
    )
    with pytest.raises(ListenError, match=message):
        server.serve(_echo)


def test_passphrase_for_a_plain_key_is_refused(certs, tmp_path):
    secret = tmp_path / "passphrase.txt"
    secret.write_bytes(b"unused\n")
    server = greenpoint.server_from_string(
        f"ssl:0:interface=127.0.0.1:privateKey={certs.server_pem}:passphraseFile={secret}"
    )
    with pytest.raises(ListenError, match="not encrypted"):
        server.serve(_echo)


# -- public-key pins ----------------------------------------------------------------


def _pin_of(pem_path):
    with open(pem_path, "rb") as file:
        return spki_pin(x509.load_pem_x509_certificate(file.read()))


def test_pin_of_the_server_key_connects(certs):
    with _ssl_server(certs) as port:
        assert _talk(_client(certs, port, f":pin={_pin_of(certs.server_pem)}"))


def test_pin_of_the_ca_connects_when_the_chain_is_verified(certs):
    with _ssl_server(certs) as port:
        assert _talk(_client(certs, port, f":pin={_pin_of(certs.ca_file)}"))


def test_pin_mismatch_is_a_verification_error_naming_the_pin(certs):
    other = "sha256/" + base64.b64encode(hashlib.sha256(b"another key").digest()).decode()
    with _ssl_server(certs) as port, pytest.raises(TLSVerificationError) as caught:
        _talk(_client(certs, port, f":pin={other}"))
    assert caught.value.reason == "pin mismatch"
    assert other in str(caught.value)
    assert _pin_of(certs.server_pem) in str(caught.value)  # what the server showed


def test_pin_adds_to_ca_verification(certs, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    with _ssl_server(certs) as port:
        # The right key, but a chain the client does not trust: still refused.
        client = greenpoint.client_from_string(
            f"tls:localhost:{port.get_host().port}:trustRoots={other_ca}"
            f":pin={_pin_of(certs.server_pem)}"
        )
        with pytest.raises(TLSVerificationError) as caught:
            _talk(client)
    assert caught.value.reason == "untrusted issuer"


def test_pin_with_verify_0_replaces_ca_verification(certs):
    pin = _pin_of(certs.server_pem)
    with _ssl_server(certs) as port:
        # No trust roots, and a name the certificate does not hold: only the key counts.
        client = greenpoint.client_from_string(
            f"tls:not-this-name.example:{port.get_host().port}:verify=0:pin={pin}"
            f":endpoint=[tcp:127.0.0.1:{port.get_host().port}]"
        )
        assert _talk(client)
        wrong = greenpoint.client_from_string(
            f"tls:localhost:{port.get_host().port}:verify=0:pin=sha256/{'C' * 43}="
        )
        with pytest.raises(TLSVerificationError, match="pin"):
            _talk(wrong)


# -- SSLKEYLOGFILE ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "label"),
    [("TLSv1.3", b"CLIENT_TRAFFIC_SECRET_0 "), ("TLSv1.2", b"CLIENT_RANDOM ")],
)
def test_sslkeylogfile_receives_nss_key_log_lines(certs, tmp_path, monkeypatch, version, label):
    keylog = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    with _ssl_server(certs) as port:  # server and client contexts both log
        _talk(_client(certs, port, f":maximumVersion={version}"))
    lines = keylog.read_bytes().splitlines()
    assert any(line.startswith(label) for line in lines)
    for line in lines:
        name, client_random, secret = line.split(b" ")
        assert len(client_random) == 64 and len(secret) >= 64
    assert stat.S_IMODE(os.stat(keylog).st_mode) == 0o600


def test_key_log_variable_is_read_when_the_context_is_built(certs, tmp_path, monkeypatch):
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    with _ssl_server(certs) as port:
        endpoint = _client(certs, port)
        _talk(endpoint)
        monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "late.log"))
        _talk(endpoint)  # the client's context was built before: nothing logged
    assert not (tmp_path / "late.log").exists()


# -- session resumption -------------------------------------------------------------


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_second_open_on_the_same_endpoint_resumes_the_session(certs, version):
    with _ssl_server(certs) as port:
        endpoint = _client(certs, port, f":maximumVersion={version}")
        first, second, third = (_talk(endpoint) for _ in range(3))
        fresh = _talk(_client(certs, port, f":maximumVersion={version}"))
    assert first["version"] == version
    assert (first["reused"], second["reused"], third["reused"]) == (False, True, True)
    assert not fresh["reused"]  # other options, no session to offer


def test_resumed_session_still_checks_the_pin(certs):
    pin = _pin_of(certs.server_pem)
    with _ssl_server(certs) as port:
        endpoint = _client(certs, port, f":pin={pin}")
        assert [_talk(endpoint)["reused"] for _ in range(2)] == [False, True]


def test_resumption_bench_runs_and_checks_every_sample():
    import subprocess
    import sys

    from _tls_helpers import __file__ as support

    root = os.path.dirname(os.path.dirname(support))
    result = subprocess.run(
        [sys.executable, os.path.join(root, "bench", "tls_resumption.py"), "--count", "3"],
        capture_output=True,
        timeout=25,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"resumed/full: CPU" in result.stdout


def test_curl_spelling_of_a_pin_is_the_same_pin():
    from greenpoint._tls_settings import normalize_pins

    digest = base64.b64encode(hashlib.sha256(b"key").digest()).decode()
    assert normalize_pins(f"sha256//{digest}") == normalize_pins(f"sha256/{digest}")
    slash = "/" + digest[1:]  # a digest that itself starts with "/"
    assert normalize_pins(f"sha256/{slash}") == (f"sha256/{slash}",)
