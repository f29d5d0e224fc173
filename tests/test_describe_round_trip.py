"""``str(endpoint)`` is written back from the prefix's Param table and parses back to it.

For every built-in prefix, each optional key set to a value that is not its default
(alone, and in random combinations) must survive ``from_string(str(endpoint))``,
and every key a table declares must have a sample here, so a new key is covered
the day it is added. The samples are description text, as a user writes them.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from greenpoint import client_from_string, server_from_string
from greenpoint._description import parse_description
from greenpoint._params import Param
from greenpoint._registry import _CLIENTS, _SERVERS, builtin_params
from greenpoint._tls_context import groups_supported
from greenpoint.errors import DescriptionError

SETTINGS = settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
BUILD = {"client": client_from_string, "server": server_from_string}

# The required part of each prefix's description (written before the sample keys),
# and for haproxy: the wrapped description after them.
BASES: dict[tuple[str, str], str] = {
    ("client", "tcp"): "tcp:example.com:80",
    ("client", "tcp4"): "tcp4:example.com:80",
    ("client", "tcp6"): "tcp6:example.com:80",
    ("client", "unix"): "unix:/tmp/gp-test.sock",
    ("client", "ssl"): "ssl:example.com:443",
    ("client", "tls"): "tls:example.com:443",
    ("client", "memory"): "memory:gp-test",
    ("client", "socks5"): "socks5:example.com:443:proxy=[tcp:127.0.0.1:1080]",
    ("client", "socks4a"): "socks4a:example.com:443:proxy=[tcp:[::1]:1080]",
    ("client", "httpconnect"): "httpconnect:example.com:443:proxy=[tls:proxy.example:3128]",
    ("client", "envproxy"): "envproxy:example.com:443",
    ("server", "tcp"): "tcp:8080",
    ("server", "tcp4"): "tcp4:8080",
    ("server", "tcp6"): "tcp6:8080",
    ("server", "unix"): "unix:/tmp/gp-test.sock",
    ("server", "ssl"): "ssl:8443",
    ("server", "tls"): "tls:/tmp/gp-certs",
    ("server", "fd"): "fd:3:domain=INET",
    ("server", "systemd"): "systemd:domain=INET6",
    ("server", "stdio"): "stdio",
    ("server", "memory"): "memory:gp-test",
    ("server", "haproxy"): "haproxy",
}
HAPROXY_TAIL = "unix:/tmp/gp-test.sock:mode=600"

_PIN = "sha256/" + "A" * 43 + "="
# key -> a description fragment setting it (with what it needs) to a non-default value.
SAMPLES: dict[str, str] = {
    "timeout": "timeout=2.5",
    "port": "port=8444",
    "bindAddress": "bindAddress=127.0.0.1",
    "bindPort": "bindPort=5000",
    "attemptDelay": "attemptDelay=0.5",
    "order": "order=sequence",
    "nodelay": "nodelay=0",
    "keepAlive": "keepAlive=0",
    "keepAliveIdle": "keepAliveIdle=30",
    "keepAliveInterval": "keepAliveInterval=5",
    "keepAliveCount": "keepAliveCount=3",
    "userTimeout": "userTimeout=1.25",
    "bindToDevice": "bindToDevice=lo",
    "lockfile": "lockfile=1",
    "mode": "mode=600",
    "backlog": "backlog=7",
    "interface": "interface=127.0.0.1",
    "reusePort": "reusePort=1",
    "ipv6only": "ipv6only=1:interface=[::1]",
    "certKey": "certKey=/tmp/gp-c.pem",
    "certificate": "certificate=/tmp/gp-c.pem",
    "privateKey": "privateKey=/tmp/gp-k.pem",
    "caCertsDir": "caCertsDir=/tmp/gp-ca",
    "trustRoots": "trustRoots=/tmp/gp-ca.pem",
    "hostname": "hostname=other.example",
    "endpoint": "endpoint=[tcp:[::1]:443]",
    "maximumVersion": "maximumVersion=TLSv1.2",
    "minimumVersion": "minimumVersion=TLSv1.3",
    "ciphers": "ciphers=ECDHE+AESGCM",
    "groups": "groups=X25519,P-256",
    "passphraseFile": "passphraseFile=/tmp/gp-pw",
    "passphraseEnv": "passphraseEnv=GP_PW",
    "pin": f"pin={_PIN}",
    "alpn": "alpn=h2,http/1.1",
    "verify": "verify=0",
    "sslmethod": "sslmethod=TLSv1_2_METHOD",
    "extraCertChain": "extraCertChain=/tmp/gp-chain.pem",
    "dhParameters": "dhParameters=/tmp/gp-dh.pem",
    "clientCA": "clientCA=/tmp/gp-ca.pem",
    "requireClientCertificate": "requireClientCertificate=0",
    "handshakeTimeout": "handshakeTimeout=0",
    "reloadInterval": "reloadInterval=2.5",
    "refuse": "refuse=1",
    "blackhole": "blackhole=1",
    "resetAfter": "resetAfter=10",
    "delay": "delay=0.25",
    "chunk": "chunk=3",
    "user": "user=gp",
    "resolve": "resolve=local",
    "scheme": "scheme=http",
    "index": "index=1",
    "name": "name=web",
    "fallback": "index=0:fallback=[tcp:8080:interface=[::1]:backlog=3]",
    "allow": "allow=[10.0.0.0/8,fd00::/8]",
    "maxSize": "maxSize=300",
}
# Where a key needs another value on one prefix.
OVERRIDES: dict[tuple[str, str, str], str] = {
    ("client", "tcp6", "bindAddress"): "bindAddress=[::1]",
    ("server", "tcp6", "interface"): "interface=[::1]",
    ("server", "tcp6", "ipv6only"): "ipv6only=1",
    ("client", "socks5", "user"): "user=gp:password=secret",
    ("client", "httpconnect", "user"): "user=gp:password=secret",
}
# Keys whose value str() does not write back, on purpose.
NOT_WRITTEN = {
    "password": "a password is written as ***",
    "user": "with a password (socks5, httpconnect), which is written as ***",
}
# Keys written back as another key that means the same (None: as no key, since
# every sslmethod greenpoint accepts means the default minimumVersion).
WRITTEN_AS: dict[tuple[str, str, str], str | None] = {
    ("client", "ssl", "trustRoots"): "caCertsDir",
    ("client", "tls", "caCertsDir"): "trustRoots",
    ("server", "ssl", "sslmethod"): None,
}
# Where a key says something only with another base (order= needs several hosts).
BASE_FOR_KEY = {("client", "tcp", "order"): "tcp:a.example,b.example:80"}


def _prefixes() -> list[tuple[str, str]]:
    return [
        (side, prefix)
        for side, table in (("client", _CLIENTS), ("server", _SERVERS))
        for prefix in sorted(table.builtin_modules)
    ]


def _optional(side: str, prefix: str) -> list[Param]:
    return [param for param in builtin_params(side, prefix) if not param.required]


def _keys(side: str, prefix: str) -> list[str]:
    """The optional keys to set; tls:'s port is in the client base already."""
    return [
        param.name
        for param in _optional(side, prefix)
        if param.name not in NOT_WRITTEN and (side, prefix, param.name) != ("client", "tls", "port")
    ]


def _fragment(side: str, prefix: str, key: str) -> str:
    return OVERRIDES.get((side, prefix, key), SAMPLES[key])


def _description(side: str, prefix: str, keys: list[str]) -> str:
    fragments = [_fragment(side, prefix, key) for key in keys]
    base = BASES[(side, prefix)]
    if len(keys) == 1:
        base = BASE_FOR_KEY.get((side, prefix, keys[0]), base)
    if prefix == "haproxy":
        return ":".join([base, *fragments, HAPROXY_TAIL])
    return ":".join([base, *fragments])


def _round_trips(side: str, text: str) -> None:
    build = BUILD[side]
    endpoint = build(text)
    written = str(endpoint)
    assert build(written) == endpoint, (text, written)
    assert str(build(written)) == written  # and writing it again changes nothing


def test_every_builtin_prefix_has_a_base_and_every_key_a_sample():
    assert set(BASES) == set(_prefixes())
    keys = {param.name for side, prefix in _prefixes() for param in _optional(side, prefix)}
    assert keys - set(SAMPLES) - set(NOT_WRITTEN) == set()


@pytest.mark.parametrize(("side", "prefix"), _prefixes())
def test_the_required_part_alone_round_trips(side, prefix):
    # systemd: needs one of index= and name=, both optional alone.
    text = _description(side, prefix, ["index"] if prefix == "systemd" else [])
    _round_trips(side, text)
    # Nothing more is written: every default is left out.
    assert str(BUILD[side](text)).count("=") <= text.count("=")


# groups= is refused with a clear error below cryptography 47 (make test-min runs 42).
_NEEDS_GROUPS = pytest.mark.skipif(
    not groups_supported(), reason="groups= needs cryptography >= 47 (SSL_CTX_set1_curves_list)"
)


@pytest.mark.parametrize(
    ("side", "prefix", "key"),
    [
        pytest.param(side, prefix, key, marks=[_NEEDS_GROUPS] if key == "groups" else [])
        for side, prefix in _prefixes()
        for key in _keys(side, prefix)
    ],
)
def test_each_key_at_a_value_not_its_default_round_trips(side, prefix, key):
    text = _description(side, prefix, [key])
    _round_trips(side, text)
    written = str(BUILD[side](text))
    shown = WRITTEN_AS.get((side, prefix, key), key)
    if key == "port":
        assert written.startswith("tls:/tmp/gp-certs:8444"), written  # tls:PATH:PORT
    elif shown is None:
        assert written == BASES[(side, prefix)], written
    else:
        assert f"{shown}=" in written, written


@pytest.mark.parametrize(("side", "prefix"), _prefixes())
@SETTINGS
@given(data=st.data())
def test_any_combination_of_keys_round_trips(side, prefix, data):
    keys = _keys(side, prefix)
    chosen = data.draw(st.lists(st.sampled_from(keys), unique=True) if keys else st.just([]))
    if prefix == "systemd" and not {"index", "name", "fallback"} & set(chosen):
        chosen.append("index")  # one of index= and name= is needed
    text = _description(side, prefix, chosen)
    try:
        BUILD[side](text)
    except DescriptionError:
        assume(False)  # keys that exclude each other (caCertsDir and trustRoots ...)
    _round_trips(side, text)


@pytest.mark.parametrize(
    ("side", "prefix", "key"),
    [
        (side, prefix, param.name)
        for side, prefix in _prefixes()
        for param in builtin_params(side, prefix)
        if param.name in SAMPLES and not param.required and param.name != "sslmethod"
    ],
)
def test_each_coercer_reads_back_what_param_format_writes(side, prefix, key):
    param = next(p for p in builtin_params(side, prefix) if p.name == key)
    raw = parse_description("x:" + _fragment(side, prefix, key)).kwargs[key]
    try:
        value = param.coerce(raw)
    except ValueError:
        pytest.skip(f"{prefix}'s {key} takes another sample ({raw!r}: checked above)")
    assert param.coerce(param.format(value)) == value


def test_a_password_is_never_written_back():
    endpoint = client_from_string(_description("client", "socks5", ["user"]))
    assert "secret" not in str(endpoint)
    assert "password=***" in str(endpoint)
