"""SNI certificate directories and certificate reloading without a restart."""

from __future__ import annotations

import logging
import os

import gevent
import pytest
import trustme
from _tls_helpers import make_certs
from cryptography import x509
from gevent import socket as gsocket

from greenpoint import _sni
from greenpoint._reload import ReloadingValue
from greenpoint._sni import lookup_name, name_table, names_of, pair_identities
from greenpoint._tls_context import load_pem
from greenpoint.testing import FakeClock
from greenpoint.tls import (
    ServerTLSOptions,
    SNIServerOptions,
    options_for_client_tls,
    wrap_client_stream,
    wrap_server_stream,
)

pytestmark = pytest.mark.timeout(20)


def manual_clock():
    """Virtual time that moves only when the test says (``advance``)."""
    return FakeClock(1000.0, autojump=False)


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path)


def served_certificate(server_options, hostname, *, trust=None, verify=False):
    """The leaf certificate a client asking for ``hostname`` is given."""
    a, b = gsocket.socketpair()
    serving = gevent.spawn(wrap_server_stream, b, server_options, 10)
    client_options = options_for_client_tls(hostname, trust_root=trust, verify=verify)
    try:
        client = wrap_client_stream(a, client_options, timeout=10)
    except BaseException:
        serving.join(timeout=5)
        if serving.successful():
            serving.value.close()
        raise
    server = serving.get(timeout=5)
    cert = client.peer_certificate
    client.close()
    server.close()
    return cert


def write_pem(path, cert):
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))


# -- pure parts ----------------------------------------------------------------


def test_lookup_exact_then_wildcard_then_default():
    table = {"alpha.test": 0, "*.wild.test": 1, "beta.test": 2}
    assert lookup_name(table, "alpha.test") == 0
    assert lookup_name(table, "ALPHA.test.") == 0
    assert lookup_name(table, "x.wild.test") == 1
    assert lookup_name(table, "y.x.wild.test", default=2) == 2  # one label only
    assert lookup_name(table, "wild.test") == 0
    assert lookup_name(table, None, default=2) == 2
    assert lookup_name(table, "") == 0


def test_names_come_from_san_else_common_name():
    ca = trustme.CA()
    cert = x509.load_pem_x509_certificate(
        ca.issue_cert("A.test", "b.test", "10.0.0.1").cert_chain_pems[0].bytes()
    )
    assert names_of(cert) == ("a.test", "b.test")
    root = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    assert names_of(root) == ()  # trustme's CA has no CN and no SAN


def test_keys_pair_with_certificates_across_files_and_chain_by_issuer():
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("site.test")
    other = root.issue_cert("other.test")
    found = []
    for name, pem in [
        ("keys.pem", leaf.private_key_pem.bytes() + other.private_key_pem.bytes()),
        ("leaf.pem", leaf.cert_chain_pems[0].bytes()),
        ("chain.pem", intermediate.cert_pem.bytes() + root.cert_pem.bytes()),
        ("other.pem", other.cert_chain_pems[0].bytes()),
    ]:
        certs, keys = load_pem(pem, name)
        found.append((name, certs, keys))
    identities = pair_identities(found)
    assert [identity.names for identity in identities] == [("site.test",), ("other.test",)]
    site = identities[0]
    # leaf, then the intermediate; the self-signed root is not sent
    assert len(site.chain) == 2
    assert (
        site.chain[1].subject
        == x509.load_pem_x509_certificate(intermediate.cert_pem.bytes()).subject
    )
    assert name_table(identities) == {"site.test": 0, "other.test": 1}


def test_reloading_value_checks_files_at_most_every_interval():
    clock = manual_clock()
    looks = []
    builds = []
    state = {"print": 1}

    def fingerprint():
        looks.append(clock.now())
        return (state["print"],)

    def build():
        builds.append(state["print"])
        return f"value {state['print']}"

    value = ReloadingValue(build, fingerprint, interval=5, clock=clock)
    assert value.get() == "value 1"
    for _ in range(100):  # a burst of connections: no extra looks
        assert value.get() == "value 1"
    assert len(looks) == 1
    state["print"] = 2
    clock.advance(4.9)
    assert value.get() == "value 1"
    clock.advance(0.1)
    assert value.get() == "value 2"
    assert builds == [1, 2] and len(looks) == 2


def test_failed_reload_keeps_the_old_value(caplog):
    clock = manual_clock()
    state = {"print": 1, "broken": False}

    def build():
        if state["broken"]:
            raise ValueError("half-written file")
        return state["print"]

    value = ReloadingValue(build, lambda: (state["print"],), interval=1, clock=clock)
    assert value.get() == 1
    state.update({"print": 2, "broken": True})
    clock.advance(1)
    with caplog.at_level(logging.WARNING, logger="greenpoint.tls"):
        assert value.get() == 1
    assert "half-written file" in caplog.text
    state["broken"] = False
    clock.advance(1)
    assert value.get() == 1  # the files did not change since the failed try
    state["print"] = 3
    clock.advance(1)
    assert value.get() == 3


# -- SNI over real handshakes --------------------------------------------------


@pytest.fixture
def sites(tmp_path, certs):
    directory = tmp_path / "sites"
    directory.mkdir()
    write_pem(directory / "a-alpha.pem", certs.ca.issue_cert("alpha.test"))
    write_pem(directory / "b-beta.pem", certs.ca.issue_cert("beta.test", "www.beta.test"))
    write_pem(directory / "c-wild.pem", certs.ca.issue_cert("*.wild.test"))
    (directory / "README").write_text("not a pem file")
    return directory


def test_sni_picks_the_certificate(certs, sites):
    options = SNIServerOptions(str(sites))
    assert options.server_names() == ["*.wild.test", "alpha.test", "beta.test", "www.beta.test"]
    for hostname, expected in [
        ("alpha.test", "alpha.test"),
        ("beta.test", "beta.test"),
        ("www.beta.test", "beta.test"),
        ("x.wild.test", "*.wild.test"),
    ]:
        cert = served_certificate(options, hostname, trust=certs.ca_file, verify=True)
        assert names_of(cert)[0] == expected
    # No SNI (an IP literal) and unknown names get the first file's certificate.
    assert names_of(served_certificate(options, "127.0.0.1")) == ("alpha.test",)
    assert names_of(served_certificate(options, "unknown.test")) == ("alpha.test",)


def test_sni_directory_reloads_on_change_but_never_per_unknown_name(certs, sites, monkeypatch):
    clock = manual_clock()
    scans = []
    real_read = _sni.read_directory
    monkeypatch.setattr(_sni, "read_directory", lambda path: scans.append(path) or real_read(path))
    options = SNIServerOptions(str(sites), reload_interval=10, clock=clock)
    for index in range(5):
        served_certificate(options, f"unknown{index}.test")
    assert len(scans) == 1
    write_pem(sites / "d-gamma.pem", certs.ca.issue_cert("gamma.test"))
    assert names_of(served_certificate(options, "gamma.test")) == ("alpha.test",)  # not yet
    clock.advance(10)
    cert = served_certificate(options, "gamma.test", trust=certs.ca_file, verify=True)
    assert names_of(cert) == ("gamma.test",)
    assert len(scans) == 2
    clock.advance(10)
    served_certificate(options, "gamma.test")
    assert len(scans) == 2  # nothing changed: looked, did not re-read


def test_replaced_certificate_is_served_to_the_next_connection(certs, tmp_path):
    path = tmp_path / "site.pem"
    first = certs.ca.issue_cert("localhost", common_name="first")
    write_pem(path, first)
    clock = manual_clock()
    options = ServerTLSOptions(str(path), reload_interval=5, clock=clock)

    def common_name():
        cert = served_certificate(options, "localhost", trust=certs.ca_file, verify=True)
        return cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value

    assert common_name() == "first"
    write_pem(path, certs.ca.issue_cert("localhost", common_name="second"))
    assert common_name() == "first"  # within the interval: not looked at
    clock.advance(5)
    assert common_name() == "second"
    write_pem(path, certs.ca.issue_cert("localhost", common_name="third"))
    options.reload()  # explicit, e.g. on SIGHUP
    assert common_name() == "third"


def test_replacing_with_a_broken_file_keeps_serving(certs, tmp_path, caplog):
    path = tmp_path / "site.pem"
    write_pem(path, certs.ca.issue_cert("localhost"))
    clock = manual_clock()
    options = ServerTLSOptions(str(path), reload_interval=1, clock=clock)
    assert served_certificate(options, "localhost", trust=certs.ca_file, verify=True)
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nbroken\n")
    clock.advance(1)
    with caplog.at_level(logging.WARNING, logger="greenpoint.tls"):
        assert served_certificate(options, "localhost", trust=certs.ca_file, verify=True)
    assert "keeping the previous" in caplog.text
    with pytest.raises(ValueError):
        options.reload()


def test_sni_with_client_certificates_applies_to_every_name(certs, sites, tmp_path_factory):
    clients = make_certs(tmp_path_factory.mktemp("clients"))
    alice = clients.issue("alice.pem", "alice@example.com")
    options = SNIServerOptions(str(sites), client_ca=clients.ca_file, alpn=("h2",))
    a, b = gsocket.socketpair()
    serving = gevent.spawn(wrap_server_stream, b, options, 10)
    client = wrap_client_stream(
        a,
        options_for_client_tls(
            "beta.test", trust_root=certs.ca_file, client_certificate=alice, alpn=["h2"]
        ),
    )
    server = serving.get(timeout=5)
    assert server.peer_certificate is not None
    assert client.alpn_protocol == "h2"
    assert names_of(client.peer_certificate)[0] == "beta.test"
    client.close()
    server.close()


def test_empty_directory_is_an_error(tmp_path):
    (tmp_path / "only-ca.pem").write_bytes(trustme.CA().cert_pem.bytes())
    with pytest.raises(ValueError, match="no certificate with its private key"):
        SNIServerOptions(str(tmp_path)).get_context()
    assert os.path.exists(tmp_path / "only-ca.pem")


@pytest.mark.parametrize("cut", ["half", "empty"])
def test_half_written_file_in_a_directory_keeps_its_certificate(certs, sites, caplog, cut):
    # A tool rewriting alpha's file in place is caught mid-write: alpha.test must keep
    # its certificate (not fall back to the default) and the log must say why.
    clock = manual_clock()
    options = SNIServerOptions(str(sites), reload_interval=1, clock=clock)
    path = sites / "b-beta.pem"
    whole = path.read_bytes()
    assert names_of(served_certificate(options, "beta.test"))[0] == "beta.test"
    path.write_bytes(whole[: len(whole) // 2] if cut == "half" else b"")
    clock.advance(1)
    with caplog.at_level(logging.INFO, logger="greenpoint.tls"):
        cert = served_certificate(options, "beta.test", trust=certs.ca_file, verify=True)
    assert names_of(cert)[0] == "beta.test"
    assert "keeping the previous TLS certificates" in caplog.text
    assert "b-beta.pem" in caplog.text
    assert "reloaded" not in caplog.text
    # Once the file is whole again, the next look reloads it.
    path.write_bytes(whole)
    clock.advance(1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="greenpoint.tls"):
        assert names_of(served_certificate(options, "beta.test"))[0] == "beta.test"
    assert "reloaded TLS certificates" in caplog.text
