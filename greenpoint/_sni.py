"""A directory of PEM files served by SNI name (the ``tls:`` server).

Every ``*.pem`` file under the directory is read. Private keys are paired with the
certificate that holds their public key, wherever each sits; the other certificates
are intermediates, chained to a leaf by issuer name. A leaf serves the DNS names of
its subjectAltName (its common name when it has none). A client asking for
``a.example.com`` gets that name's certificate, else ``*.example.com``'s; a client
that sends no SNI, or a name nobody serves, gets the default: the first leaf in
file-name order.

Scanning and matching are pure functions of the files' contents; :class:`SNIStore`
adds the contexts and the rate-limited reload.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from greenpoint._clock import Clock
from greenpoint._reload import ReloadingValue, tree_fingerprint
from greenpoint._tls_context import _leaf_for_key, load_pem, read_source

__all__ = ["Identity", "SNIStore", "lookup_name", "names_of", "pair_identities", "read_directory"]

_MAX_CHAIN = 10  # intermediates followed from a leaf; stops loops in bad data


@dataclasses.dataclass(frozen=True)
class Identity:
    """One certificate chain (leaf first) with its key and the names it serves."""

    chain: tuple[x509.Certificate, ...]
    key: Any
    names: tuple[str, ...]
    origin: str


def names_of(cert: x509.Certificate) -> tuple[str, ...]:
    """The lower-cased DNS names a certificate serves (SAN, else common name)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names: Sequence[str | bytes] = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(dict.fromkeys(str(name).lower().rstrip(".") for name in names if name))


def pair_identities(
    found: Sequence[tuple[str, Sequence[x509.Certificate], Sequence[Any]]],
) -> list[Identity]:
    """Pair keys with certificates across files; chain intermediates by issuer.

    ``found`` lists ``(origin, certificates, keys)`` per file, in file order.
    """
    certificates = [(origin, cert) for origin, certs, _ in found for cert in certs]
    all_certs = [cert for _, cert in certificates]
    identities: list[Identity] = []
    leaves: set[int] = set()
    for origin, _, keys in found:
        for key in keys:
            leaf = _leaf_for_key(all_certs, key)
            if leaf is None or id(leaf) in leaves:
                continue
            leaves.add(id(leaf))
            chain = _chain_for(leaf, [cert for cert in all_certs if id(cert) not in leaves])
            identities.append(Identity(tuple(chain), key, names_of(leaf), origin))
    return identities


def _chain_for(
    leaf: x509.Certificate, others: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    by_subject: dict[x509.Name, x509.Certificate] = {}
    for cert in others:
        by_subject.setdefault(cert.subject, cert)
    chain = [leaf]
    current = leaf
    while len(chain) <= _MAX_CHAIN and current.issuer != current.subject:
        issuer = by_subject.get(current.issuer)
        if issuer is None or issuer in chain:
            break
        if issuer.issuer == issuer.subject:
            break  # a root: the client has it or does not; sending it is useless
        chain.append(issuer)
        current = issuer
    return chain


def read_directory(directory: str) -> list[Identity]:
    """Every identity in the ``*.pem`` files under ``directory``."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(2, f"TLS certificate directory {directory!r} does not exist")
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(".pem"):
                path = os.path.join(root, name)
                data = read_source(path, "PEM file")
                _refuse_incomplete(data, path)
                certs, keys = load_pem(data, repr(path))
                found.append((path, certs, keys))
    identities = pair_identities(found)
    if not identities:
        raise ValueError(
            f"no certificate with its private key found in {directory!r} (*.pem files)"
        )
    return identities


_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_END = re.compile(rb"-----END ([A-Z0-9 ]+)-----")


def _refuse_incomplete(data: bytes, path: str) -> None:
    """Refuse an empty file or one cut inside a PEM block.

    A tool rewriting a certificate in place leaves such a file for a moment. Reading
    it as "no identity here" would hand its names to the default certificate; an
    error instead makes the reload keep the previous certificates (and warn).
    """
    begins = [match.group(1) for match in _BEGIN.finditer(data)]
    if not begins:
        raise ValueError(f"PEM file {path!r} holds no PEM block (empty or half-written?)")
    if begins != [match.group(1) for match in _END.finditer(data)]:
        raise ValueError(f"PEM file {path!r} is truncated: a BEGIN line without its END line")


def lookup_name(names: dict[str, int], server_name: str | None, default: int = 0) -> int:
    """The index serving ``server_name``: exact name, then wildcard, then ``default``."""
    if not server_name:
        return default
    wanted = server_name.lower().rstrip(".")
    if wanted in names:
        return names[wanted]
    # RFC 6125 §6.4.3: a wildcard covers exactly one left-most label.
    _, dot, parent = wanted.partition(".")
    if dot and ("*." + parent) in names:
        return names["*." + parent]
    return default


def name_table(identities: Sequence[Identity]) -> dict[str, int]:
    """Name -> index of the first identity that serves it."""
    table: dict[str, int] = {}
    for index, identity in enumerate(identities):
        for name in identity.names:
            table.setdefault(name, index)
    return table


class _Served:
    """The contexts built from one scan of the directory."""

    def __init__(self, identities: list[Identity], make_context: Callable[..., SSL.Context]):
        self.identities = identities
        self.names = name_table(identities)
        self.contexts = [make_context(identity, None) for identity in identities[1:]]
        self.base = make_context(identities[0], self.switch)
        self.contexts.insert(0, self.base)

    def switch(self, connection: SSL.Connection) -> None:
        # Runs inside the handshake (the ClientHello's servername callback): no I/O.
        name = connection.get_servername()
        if name is None:
            return
        index = lookup_name(self.names, name.decode("ascii", "replace"))
        if index:
            connection.set_context(self.contexts[index])


class SNIStore:
    """The current contexts for a PEM directory, reloaded when its files change."""

    def __init__(
        self,
        directory: str,
        make_context: Callable[[Identity, Callable[..., None] | None], SSL.Context],
        *,
        interval: float | None,
        clock: Clock,
    ) -> None:
        self.directory = directory
        self._value = ReloadingValue(
            lambda: _Served(read_directory(directory), make_context),
            lambda: tree_fingerprint(directory),
            interval=interval,
            clock=clock,
            what=f"TLS certificates from {directory!r}",
        )

    def context(self) -> SSL.Context:
        """The context to start a connection with (it switches by SNI itself)."""
        served: _Served = self._value.get()
        return served.base

    def reload(self) -> None:
        self._value.reload()

    def names(self) -> dict[str, int]:
        return dict(self._value.get().names)
