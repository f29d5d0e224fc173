"""Descriptions from Twisted's documentation mean the same here as in Twisted.

Each row is parsed by Twisted's ``clientFromString``/``serverFromString`` (over a
``MemoryReactor``: nothing connects) and by greenpoint's, and the two endpoints are
reduced to what they mean (host, port, timeout, interface, backlog, path, mode...).
The forms come from the docstrings of ``clientFromString`` and ``serverFromString``,
the endpoints howto, and the positional forms the parsers' signatures allow.
Deliberate differences are named per row and each must be listed in
docs/porting.md.
"""

from __future__ import annotations

import pathlib
import socket
import warnings

import pytest
from _tls_helpers import make_certs
from twisted.internet import endpoints as tw
from twisted.internet.testing import MemoryReactor
from twisted.python.systemd import ListenFDs

import greenpoint

ROOT = pathlib.Path(__file__).resolve().parent.parent

# systemd: both sides see the same two inherited sockets, fd 3 "web" and fd 4 "admin".
SYSTEMD_FDS = {"web": 3, "admin": 4}

# (description, keys whose meaning differs on purpose; see docs/porting.md)
CLIENTS = [
    ("tcp:host=www.example.com:port=80", {"family"}),
    ("tcp:www.example.com:80", {"family"}),
    ("tcp:host=www.example.com:80", {"family"}),
    ("tcp:www.example.com:port=80", {"family"}),
    ("tcp:www.example.com:80:bindAddress=192.0.2.100", {"family"}),
    ("tcp:www.example.com:80:timeout=5", {"family"}),
    ("tcp:192.0.2.7:80", set()),
    ("ssl:web.example.com:443:privateKey={key}:certKey={cert}", {"family"}),
    ("ssl:host=web.example.com:port=443:caCertsDir={ca_dir}", {"family"}),
    ("unix:path=/var/foo/bar:lockfile=1:timeout=9", set()),
    ("unix:/var/foo/bar", set()),
    ("unix:/var/foo/bar:lockfile=1:timeout=9", set()),
    ("tls:example.com:443", set()),
    ("tls:example.com:443:timeout=7", set()),
    ("tls:example.com:443:7", set()),  # timeout by position (_parseClientTLS)
    ("tls:example.com:443:trustRoots={ca_dir}", set()),
    ("tls:example.com:443:certificate={cert}:privateKey={key}", set()),
    ("tls:example.com:443:endpoint=tcp\\:192.0.2.7\\:8443", set()),
]

SERVERS = [
    ("tcp:80", set()),
    ("tcp:80:interface=127.0.0.1", set()),
    ("tcp:80:127.0.0.1", set()),  # interface by position (_parseTCP)
    ("tcp:80:127.0.0.1:10", set()),  # and backlog
    ("tcp:port=80:backlog=5", set()),
    ("tcp6:80", set()),
    ("tcp6:port=80:interface=\\:\\:1", set()),
    ("tcp6:80:10:\\:\\:1", set()),  # backlog, interface by position (_TCP6ServerParser)
    ("ssl:443:privateKey={key}:certKey={cert}", set()),
    ("ssl:port=443:privateKey={pem}", set()),
    ("ssl:443:{key}:{cert}", set()),  # privateKey, certKey by position (_parseSSL)
    ("unix:/var/run/finger", {"wantPID"}),
    ("unix:/var/run/finger:mode=660", {"wantPID"}),
    ("unix:/var/run/finger:660", {"wantPID"}),  # mode by position (_parseUNIX)
    ("unix:address=/var/run/web.sock:lockfile=1", set()),
    ("unix:/var/run/web.sock:660:10:1", set()),
    ("systemd:domain=INET:index=0", set()),
    ("systemd:domain=INET6:name=admin", set()),
    ("systemd:INET:1", set()),  # domain, index by position (_SystemdParser)
    ("stdio:", set()),
    ("tls:{pem_dir}:port=8443", set()),
    ("tls:{pem_dir}:8443:10:\\:\\:1", set()),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("parity")
    certs = make_certs(directory)
    cert = certs.ca.issue_cert("example.com")
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    ca_dir = directory / "cas"
    ca_dir.mkdir()
    certs.ca.cert_pem.write_to_path(str(ca_dir / "ca.pem"))
    pem_dir = directory / "pems"
    pem_dir.mkdir()
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem_dir / "example.com.pem"))
    return {
        "key": key_path,
        "cert": cert_path,
        "pem": certs.server_pem,
        "ca_dir": ca_dir,
        "pem_dir": pem_dir,
    }


def _fill(description, files):
    escaped = {name: str(path).replace(":", "\\:") for name, path in files.items()}
    return description.format(**escaped)


# -- meaning of a Twisted endpoint ------------------------------------------------------


def _twisted_meaning(endpoint):
    kind = type(endpoint).__name__
    if kind == "_WrapperEndpoint":  # tls: client (wrapClientTLS)
        inner = _twisted_meaning(endpoint._wrappedEndpoint)
        return {"tls": True, **inner}
    if kind == "TLSServerEndpoint":  # tls: server (SNI from a directory of PEMs)
        return {"tls": True, **_twisted_meaning(endpoint.endpoint)}
    if kind == "HostnameEndpoint":
        return {
            "host": endpoint._hostText,
            "port": endpoint._port,
            "timeout": float(endpoint._timeout),
            "bindAddress": endpoint._bindAddress and endpoint._bindAddress[0],
            "family": "any",
        }
    if kind in ("TCP4ClientEndpoint", "TCP6ClientEndpoint", "SSL4ClientEndpoint"):
        return {
            "tls": kind == "SSL4ClientEndpoint" or None,
            "host": endpoint._host,
            "port": endpoint._port,
            "timeout": float(endpoint._timeout),
            "bindAddress": endpoint._bindAddress and endpoint._bindAddress[0],
            "family": "IPv4" if kind != "TCP6ClientEndpoint" else "IPv6",
        }
    if kind == "UNIXClientEndpoint":
        return {"path": endpoint._path, "timeout": float(endpoint._timeout),
                "checkPID": bool(endpoint._checkPID)}  # fmt: skip
    if kind in ("TCP4ServerEndpoint", "TCP6ServerEndpoint", "SSL4ServerEndpoint"):
        return {
            "tls": kind == "SSL4ServerEndpoint" or None,
            "port": endpoint._port,
            "backlog": endpoint._backlog,
            "interface": endpoint._interface,
        }
    if kind == "UNIXServerEndpoint":
        return {"path": endpoint._address, "backlog": endpoint._backlog,
                "mode": endpoint._mode, "wantPID": bool(endpoint._wantPID)}  # fmt: skip
    if kind == "AdoptedStreamServerEndpoint":
        family = {socket.AF_INET: "INET", socket.AF_INET6: "INET6"}[endpoint.addressFamily]
        return {"domain": family, "fd": endpoint.fileno}
    if kind == "StandardIOEndpoint":
        return {"stdio": True}
    raise AssertionError(f"no meaning for Twisted's {kind}")


# -- meaning of a greenpoint endpoint ---------------------------------------------------


def _our_meaning(endpoint):
    kind = type(endpoint).__name__
    if kind == "TLSWrapperClientEndpoint":
        inner = _our_meaning(endpoint.endpoint)
        return {"tls": True, **inner}
    if kind == "TLSWrapperServerEndpoint":
        return {"tls": True, **_our_meaning(endpoint.endpoint)}
    if kind == "HostnameEndpoint":
        bind = endpoint.bind_address
        return {
            "host": endpoint.host,
            "port": endpoint.port,
            "timeout": endpoint.timeout,
            "bindAddress": _one_bind_host(bind),
            "family": "any",
        }
    if kind in ("TCP4ClientEndpoint", "TCP6ClientEndpoint", "SSL4ClientEndpoint"):
        return {
            "tls": kind == "SSL4ClientEndpoint" or None,
            "host": endpoint.host,
            "port": endpoint.port,
            "timeout": endpoint.timeout,
            "bindAddress": _one_bind_host(endpoint.bind_address),
            "family": "IPv6" if kind == "TCP6ClientEndpoint" else "IPv4",
        }
    if kind == "UNIXClientEndpoint":
        return {"path": endpoint.path, "timeout": endpoint.timeout, "checkPID": endpoint.check_pid}
    if kind in ("TCP4ServerEndpoint", "TCP6ServerEndpoint", "SSL4ServerEndpoint"):
        return {
            "tls": kind == "SSL4ServerEndpoint" or None,
            "port": endpoint.port,
            "backlog": endpoint.backlog,
            "interface": endpoint.interface,
        }
    if kind == "UNIXServerEndpoint":
        return {"path": endpoint.path, "backlog": endpoint.backlog,
                "mode": endpoint.mode, "wantPID": endpoint.want_pid}  # fmt: skip
    if kind == "SystemdServerEndpoint":
        fd = 3 + endpoint.index if endpoint.index is not None else SYSTEMD_FDS[endpoint.name]
        return {"domain": endpoint.domain, "fd": fd}
    if kind == "StandardIOEndpoint":
        return {"stdio": True}
    raise AssertionError(f"no meaning for greenpoint's {kind}")


def _one_bind_host(bind):
    if bind is None:
        return None
    hosts = {host for host in (bind.ipv4, bind.ipv6) if host is not None}
    # per family: the same host for both, or differing
    return hosts.pop() if len(hosts) == 1 else hosts


def _compare(theirs, ours, differences):
    for key in differences:
        theirs.pop(key, None)
        ours.pop(key, None)
    for meaning in (theirs, ours):
        if meaning.get("tls") is None:
            meaning.pop("tls", None)
    assert ours == theirs


@pytest.mark.parametrize(("description", "differences"), CLIENTS, ids=[c[0] for c in CLIENTS])
def test_client_description_means_what_it_means_in_twisted(description, differences, files):
    text = _fill(description, files)
    theirs = _twisted_meaning(tw.clientFromString(MemoryReactor(), text))
    ours = _our_meaning(greenpoint.client_from_string(text))
    _compare(theirs, ours, differences)


@pytest.fixture
def systemd_fds(monkeypatch):
    inherited = ListenFDs(sorted(SYSTEMD_FDS.values()), sorted(SYSTEMD_FDS, key=SYSTEMD_FDS.get))
    monkeypatch.setattr(tw._SystemdParser, "_sddaemon", inherited)


@pytest.mark.parametrize(("description", "differences"), SERVERS, ids=[s[0] for s in SERVERS])
def test_server_description_means_what_it_means_in_twisted(
    description, differences, files, systemd_fds
):
    text = _fill(description, files)
    with warnings.catch_warnings():
        # Twisted's tls: server calls pyOpenSSL APIs that warn of their deprecation.
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = _twisted_meaning(tw.serverFromString(MemoryReactor(), text))
    ours = _our_meaning(greenpoint.server_from_string(text))
    _compare(theirs, ours, differences)


def test_every_deliberate_difference_is_on_the_porting_page():
    page = (ROOT / "docs" / "porting.md").read_text(encoding="utf-8")
    section = page.split("## Descriptions: what differs from Twisted", 1)[1]
    for key in set().union(*(d for _, d in CLIENTS + SERVERS)):
        assert f"`{key}`" in section, f"docs/porting.md does not explain the {key} difference"
