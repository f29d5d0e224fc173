"""Build pyOpenSSL contexts from plain values: PEM material, versions, ALPN, trust.

No sockets here. Every function takes values (paths, PEM bytes, cryptography
objects) and returns a ready ``OpenSSL.SSL.Context`` or raises ``ValueError`` /
``OSError`` with a sentence that names the file or setting at fault.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from greenpoint._tls_settings import (
    DEFAULT_MINIMUM_VERSION,
    TLSSettingError,
    check_version_range,
    normalize_alpn,
    normalize_tls_version,
)

__all__ = [
    "PemSource",
    "check_cipher_settings",
    "TLS_VERSIONS",
    "client_context",
    "load_certificates",
    "load_pem",
    "load_trust_certificates",
    "read_passphrase",
    "spki_pin",
    "normalize_alpn",
    "normalize_tls_version",
    "server_context",
]

log = logging.getLogger("greenpoint.tls")

#: A PEM source: a path (``str`` or ``os.PathLike``) or the PEM text itself (``bytes``).
PemSource = Union[str, "os.PathLike[str]", bytes]

#: The minimum versions greenpoint accepts (see _tls_settings).
TLS_VERSIONS = {"TLSv1.2": SSL.TLS1_2_VERSION, "TLSv1.3": SSL.TLS1_3_VERSION}

# Options every greenpoint context gets. Compression is off because of CRIME;
# OP_CIPHER_SERVER_PREFERENCE only matters below TLS 1.3.
_COMMON_OPTIONS = SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE

# A server's session id context: required for session resumption when client
# certificates are verified (SSL_CTX_set_session_id_context(3)).
_SESSION_ID = b"greenpoint"

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


def describe_source(source: PemSource) -> str:
    if isinstance(source, bytes):
        return "PEM data"
    return repr(os.fspath(source))


def read_source(source: PemSource, what: str) -> bytes:
    """The bytes of a PEM source; ``OSError`` names the file and what it was for."""
    if isinstance(source, bytes):
        return source
    path = os.fspath(source)
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot read {what} {path!r}: {exc.strerror}") from exc


def load_pem(
    data: bytes, origin: str = "PEM data", password: bytes | None = None
) -> tuple[list[x509.Certificate], list[Any]]:
    """Every certificate and private key in ``data``, in file order.

    An encrypted key needs ``password``; a ``password`` for a key that is not
    encrypted is an error too (the wrong file was probably given).
    """
    certificates: list[x509.Certificate] = []
    keys: list[Any] = []
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1)
        block = match.group(0)
        try:
            if label == b"CERTIFICATE":
                certificates.append(x509.load_pem_x509_certificate(block))
            elif label.endswith(b"PRIVATE KEY"):
                keys.append(_load_key(block, label, origin, password))
        except (ValueError, TypeError) as exc:
            if isinstance(exc, _KeyError):
                raise
            raise ValueError(f"bad {label.decode()} in {origin}: {exc}") from exc
    return certificates, keys


class _KeyError(ValueError):
    """A private key that cannot be read, with a sentence already naming the file."""


def _load_key(block: bytes, label: bytes, origin: str, password: bytes | None) -> Any:
    encrypted = label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and password is None:
        raise _KeyError(
            f"the private key in {origin} is encrypted: give its passphrase with "
            "passphraseFile= or passphraseEnv="
        )
    if not encrypted and password is not None:
        raise _KeyError(f"a passphrase was given, but the private key in {origin} is not encrypted")
    try:
        return serialization.load_pem_private_key(block, password=password)
    except ValueError as exc:
        if encrypted:
            raise _KeyError(
                f"cannot decrypt the private key in {origin}: wrong passphrase? ({exc})"
            ) from exc
        raise


def read_passphrase(file: str | None = None, env: str | None = None) -> bytes | None:
    """A key's passphrase from a file's first line or an environment variable.

    Never from the description itself, so it stays out of ``ps``, logs and shell
    history. ``None`` when neither is given.
    """
    if file is not None and env is not None:
        raise ValueError("give only one of passphraseFile and passphraseEnv")
    if file is not None:
        data = read_source(file, "passphrase file")
        return data.splitlines()[0] if data else b""  # openssl -passin file: reads one line
    if env is not None:
        value = os.environb.get(os.fsencode(env))
        if value is None:
            raise ValueError(f"passphraseEnv: environment variable {env} is not set")
        return value
    return None


def spki_pin(cert: x509.Certificate) -> str:
    """``sha256/BASE64`` of the certificate's DER SubjectPublicKeyInfo (RFC 7469 §2.4)."""
    digest = hashlib.sha256(_public_der(cert.public_key())).digest()
    return "sha256/" + base64.b64encode(digest).decode("ascii")


def load_certificates(source: PemSource, what: str = "certificate file") -> list[x509.Certificate]:
    """The certificates of a PEM file or data; at least one, or ``ValueError``."""
    origin = describe_source(source)
    certificates, _ = load_pem(read_source(source, what), origin)
    if not certificates:
        raise ValueError(f"no certificate found in {what} {origin}")
    return certificates


def load_certificate_and_key(
    certificate: PemSource, private_key: PemSource | None, passphrase: bytes | None = None
) -> tuple[list[x509.Certificate], Any]:
    """The chain (leaf first) and the key; the key may sit in the certificate file.

    ``passphrase`` decrypts an encrypted key.
    """
    origin = describe_source(certificate)
    in_certificate = None if private_key is not None else passphrase
    certificates, keys = load_pem(
        read_source(certificate, "certificate file"), origin, in_certificate
    )
    if private_key is not None:
        key_origin = describe_source(private_key)
        _, keys = load_pem(read_source(private_key, "private key file"), key_origin, passphrase)
        if not keys:
            raise ValueError(f"no private key found in {key_origin}")
    elif not keys:
        raise ValueError(f"no private key found in {origin}; give the key file too")
    if not certificates:
        raise ValueError(f"no certificate found in {origin}")
    key = keys[0]
    leaf = _leaf_for_key(certificates, key)
    if leaf is None:
        raise ValueError(f"the private key does not match any certificate in {origin}")
    chain = [leaf] + [cert for cert in certificates if cert is not leaf]
    return chain, key


def _public_der(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _leaf_for_key(certificates: Sequence[x509.Certificate], key: Any) -> x509.Certificate | None:
    wanted = _public_der(key.public_key())
    for cert in certificates:
        if _public_der(cert.public_key()) == wanted:
            return cert
    return None


def load_trust_certificates(trust_root: Any) -> list[x509.Certificate]:
    """CA certificates from a PEM file, a directory of PEM files, PEM bytes or objects.

    In a directory every ``*.pem``, ``*.crt`` and ``*.cer`` file is read; files that
    hold no certificate are skipped (with a debug log), but a directory with no
    certificate at all is an error.
    """
    if isinstance(trust_root, x509.Certificate):
        return [trust_root]
    if isinstance(trust_root, bytes):
        return load_certificates(trust_root, "trust roots")
    if isinstance(trust_root, str | os.PathLike):
        path = os.fspath(trust_root)
        if os.path.isdir(path):
            return _directory_certificates(path)
        return load_certificates(path, "CA certificate file")
    if isinstance(trust_root, Iterable):
        found: list[x509.Certificate] = []
        for item in trust_root:
            found.extend(load_trust_certificates(item))
        return found
    raise TypeError(
        "trust_root must be a path, PEM bytes, a cryptography Certificate or a list of "
        f"them, not {type(trust_root).__name__}"
    )


def _directory_certificates(path: str) -> list[x509.Certificate]:
    found: list[x509.Certificate] = []
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot read CA directory {path!r}: {exc.strerror}") from exc
    for name in names:
        if not name.lower().endswith((".pem", ".crt", ".cer")):
            continue
        file_path = os.path.join(path, name)
        try:
            certificates, _ = load_pem(read_source(file_path, "CA file"), repr(file_path))
        except (OSError, ValueError) as exc:
            log.debug("skipping %s in CA directory: %s", file_path, exc)
            continue
        found.extend(certificates)
    if not found:
        raise ValueError(f"no CA certificate found in directory {path!r} (*.pem, *.crt)")
    return found


def _new_context(
    method: int,
    minimum_version: str,
    maximum_version: str | None = None,
    ciphers: str | None = None,
    groups: Sequence[str] = (),
    keylog: bool = True,
) -> SSL.Context:
    context = SSL.Context(method)
    context.set_options(_COMMON_OPTIONS)
    minimum = normalize_tls_version(minimum_version)
    context.set_min_proto_version(TLS_VERSIONS[minimum])
    if maximum_version is not None:
        maximum = normalize_tls_version(maximum_version)
        check_version_range(minimum, maximum)
        context.set_max_proto_version(TLS_VERSIONS[maximum])
    if ciphers is not None:
        try:
            context.set_cipher_list(ciphers.encode("ascii"))
        except SSL.Error as exc:
            raise TLSSettingError(
                "ciphers", f"bad ciphers={ciphers!r}: OpenSSL knows none of them ({exc})"
            ) from None
    if groups:
        _set_groups(context, groups)
    if keylog:
        _log_keys_if_asked(context)
    return context


def check_cipher_settings(ciphers: str | None, groups: Sequence[str]) -> None:
    """``TLSSettingError`` now, rather than at the first connection, for names
    OpenSSL does not know (a throwaway context; building one is cheap)."""
    if ciphers is not None or groups:
        _new_context(SSL.TLS_METHOD, DEFAULT_MINIMUM_VERSION, None, ciphers, groups, keylog=False)


def groups_supported() -> bool:
    """Whether ``groups=`` can be honoured: pyOpenSSL has no call for it, and
    cryptography's OpenSSL bindings have ``SSL_CTX_set1_curves_list`` from 47.0."""
    return hasattr(SSL._lib, "SSL_CTX_set1_curves_list")  # type: ignore[attr-defined]


def _set_groups(context: SSL.Context, groups: Sequence[str]) -> None:
    if not groups_supported():
        import cryptography

        raise TLSSettingError(
            "groups",
            f"groups={','.join(groups)!r} needs cryptography 47.0 or newer (its OpenSSL "
            f"bindings gained SSL_CTX_set1_curves_list); this is {cryptography.__version__}",
        )
    # pyOpenSSL has no set_groups; SSL_CTX_set1_groups_list is a macro for this.
    names = ":".join(groups).encode("ascii")
    if SSL._lib.SSL_CTX_set1_curves_list(context._context, names) != 1:  # type: ignore[attr-defined]
        SSL._lib.ERR_clear_error()  # type: ignore[attr-defined]  # leave no stale error
        raise TLSSettingError(
            "groups",
            f"bad groups={','.join(groups)!r}: OpenSSL does not know one of them "
            "(names such as X25519, P-256, P-384, X25519MLKEM768)",
        )


#: Where NSS key log lines go when set (curl, Firefox and Chrome honour it too).
KEYLOG_VARIABLE = "SSLKEYLOGFILE"
_keylog_lock = threading.Lock()


def _log_keys_if_asked(context: SSL.Context) -> None:
    """Append each connection's secrets to ``$SSLKEYLOGFILE``, for Wireshark.

    Read when the context is built; unset (the normal case) costs nothing. The
    file holds secrets that decrypt the traffic: it is created mode 0600.
    """
    path = os.environ.get(KEYLOG_VARIABLE)
    if not path:
        return
    log.warning("TLS secrets are being written to %s (%s is set)", path, KEYLOG_VARIABLE)

    def write_line(connection: SSL.Connection, line: bytes) -> None:
        try:
            with _keylog_lock:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line + b"\n")
                finally:
                    os.close(fd)
        except OSError as exc:  # a debugging aid must not break the connection
            log.debug("cannot write to %s=%s: %s", KEYLOG_VARIABLE, path, exc)

    context.set_keylog_callback(write_line)


def _add_trust(context: SSL.Context, certificates: Iterable[x509.Certificate]) -> None:
    store = cast(crypto.X509Store, context.get_cert_store())  # a Context always has one
    for cert in certificates:
        try:
            store.add_cert(crypto.X509.from_cryptography(cert))
        except crypto.Error as exc:
            # The same CA twice (in two files) is harmless.
            if "already in hash table" not in str(exc):
                raise


def client_context(
    *,
    trust_root: Any = None,
    certificate: PemSource | None = None,
    private_key: PemSource | None = None,
    alpn: Sequence[str] = (),
    minimum_version: str = DEFAULT_MINIMUM_VERSION,
    verify: bool = True,
    verify_callback: Callable[..., bool] | None = None,
    maximum_version: str | None = None,
    ciphers: str | None = None,
    groups: Sequence[str] = (),
    passphrase: bytes | None = None,
) -> SSL.Context:
    """A client context: peer verification, optional client certificate, ALPN.

    ``trust_root`` ``None`` means the system's trust roots (``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` are honoured). ``passphrase`` decrypts the client's key.
    """
    context = _new_context(SSL.TLS_CLIENT_METHOD, minimum_version, maximum_version, ciphers, groups)
    if verify:
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verify_callback)
        if trust_root is None:
            context.set_default_verify_paths()
        else:
            _add_trust(context, load_trust_certificates(trust_root))
    else:
        context.set_verify(SSL.VERIFY_NONE)
    if certificate is not None:
        chain, key = load_certificate_and_key(certificate, private_key, passphrase)
        _use_chain(context, chain, key)
    elif private_key is not None:
        raise ValueError("a client private key was given without its certificate")
    if alpn:
        context.set_alpn_protos([name.encode("ascii") for name in alpn])
    return context


def server_context(
    chain: Sequence[x509.Certificate],
    key: Any,
    *,
    dh_parameters: str | os.PathLike[str] | None = None,
    alpn: Sequence[str] = (),
    client_ca: Any = None,
    require_client_certificate: bool = True,
    minimum_version: str = DEFAULT_MINIMUM_VERSION,
    servername_callback: Callable[[SSL.Connection], None] | None = None,
    maximum_version: str | None = None,
    ciphers: str | None = None,
    groups: Sequence[str] = (),
) -> SSL.Context:
    """A server context for one certificate chain (leaf first) and its key."""
    context = _new_context(SSL.TLS_SERVER_METHOD, minimum_version, maximum_version, ciphers, groups)
    _use_chain(context, chain, key)
    context.set_session_id(_SESSION_ID)
    if dh_parameters is not None:
        path = os.fspath(dh_parameters)
        if not os.path.isfile(path):
            raise FileNotFoundError(2, f"DH parameters file {path!r} does not exist")
        try:
            context.load_tmp_dh(path)
        except SSL.Error as exc:
            raise ValueError(f"bad DH parameters in {path!r}: {exc}") from exc
    if alpn:
        context.set_alpn_select_callback(_alpn_selector(tuple(alpn)))
    if client_ca is not None:
        authorities = load_trust_certificates(client_ca)
        _add_trust(context, authorities)
        for authority in authorities:
            context.add_client_ca(authority)
        mode = SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE
        if require_client_certificate:
            mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        context.set_verify(mode)
    if servername_callback is not None:
        context.set_tlsext_servername_callback(servername_callback)
    return context


def _use_chain(context: SSL.Context, chain: Sequence[x509.Certificate], key: Any) -> None:
    context.use_certificate(chain[0])
    for cert in chain[1:]:
        context.add_extra_chain_cert(cert)
    context.use_privatekey(key)
    try:
        context.check_privatekey()
    except SSL.Error as exc:
        raise ValueError("the private key does not match the certificate") from exc


def _alpn_selector(preferred: tuple[str, ...]) -> Callable[[SSL.Connection, list[bytes]], Any]:
    wanted = [name.encode("ascii") for name in preferred]

    def select(connection: SSL.Connection, offered: list[bytes]) -> Any:
        # The server's order of preference wins (RFC 7301 §3.2 leaves it to us).
        for name in wanted:
            if name in offered:
                return name
        # No overlap: carry on without ALPN rather than abort the handshake.
        return SSL.NO_OVERLAPPING_PROTOCOLS

    return select
