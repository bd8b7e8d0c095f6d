"""X.509 certificates for mutual TLS between nodes: a local CA and one certificate per party.

A thin wrapper over OpenSSL through ``cryptography``. Keys are ECDSA P-256 (supported by every gRPC
build). A party certificate names the party twice: subject CN = party name (the server reads it to
identify the sender) and a DNS SAN = party name (the client checks it, through gRPC's
``ssl_target_name_override``, to know it reached the party it meant). ``hosts`` add further SANs
(none by default) for tools that verify by address. No certificate carries ``localhost`` unless a
caller lists it, and ``localhost`` is never a party name: every certificate of a CA that added it
would otherwise stand for a party of that name.

Files are written atomically (a temporary file in the same directory, then ``os.replace``) so a
crash never leaves half a key; private keys are created with mode 0600.

Layout of a directory made by :func:`create_ca` and :func:`issue_party_cert`::

    ca.pem  ca.key          the CA (keep ca.key offline in production)
    <party>.pem <party>.key  a party's certificate and key
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import ipaddress
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from misuan.atomic_files import write_atomic
from misuan.errors import AuthenticationError, ConfigError

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "TlsFiles",
    "TlsMaterial",
    "check_tls_files",
    "create_ca",
    "create_csr",
    "import_signed_cert",
    "sign_csr",
    "issue_party_cert",
    "load_pem_bundle",
    "party_from_certificate",
    "party_tls_files",
]

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
DEFAULT_HOSTS: tuple[str, ...] = ()  # misuan connects by party name (ssl_target_name_override)
RESERVED_PARTY_NAMES = ("localhost",)  # a name many tools put in certificates
# a party name is also a DNS name in its certificate: one lowercase label, so hostname matching
# (case-insensitive, no wildcards) cannot confuse two parties
_PARTY_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Where one node's TLS material lives: the CA it trusts, its certificate and its private key."""

    ca: Path
    cert: Path
    key: Path

    def load(self) -> TlsMaterial:
        return TlsMaterial(ca=_read(self.ca, "CA certificate"), cert=_read(self.cert, "certificate"),
                           key=_read(self.key, "private key"), files=self)


@dataclasses.dataclass(frozen=True)
class TlsMaterial:
    """The PEM bytes of :class:`TlsFiles`, read once."""

    ca: bytes
    cert: bytes
    key: bytes
    files: TlsFiles


def party_tls_files(directory: str | os.PathLike[str], party: str) -> TlsFiles:
    """The conventional paths of ``party``'s TLS files in a directory made by this module."""
    d = Path(directory)
    return TlsFiles(ca=d / CA_CERT, cert=d / f"{party}.pem", key=d / f"{party}.key")


def check_party_name(party: str) -> str:
    if not _PARTY_NAME.match(party):
        raise ConfigError(
            f"party name {party!r} cannot name a certificate: use 1-63 lowercase letters, digits or '-', "
            "not starting or ending with '-'"
        )
    if party in RESERVED_PARTY_NAMES:
        raise ConfigError(f"party name {party!r} is reserved: certificates often carry it as a host name")
    return party


# --- writing -------------------------------------------------------------------------------------
def _write_atomic(path: Path, data: bytes, private: bool) -> None:
    # a private key is the owner's alone; a certificate is public and may be readable by all
    write_atomic(path, data, private=private)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def create_ca(
    directory: str | os.PathLike[str], name: str = "misuan local CA", days: int = 3650, overwrite: bool = False
) -> Path:
    """Create a CA (``ca.pem``, ``ca.key``) in ``directory``; returns the path of ``ca.pem``."""
    d = Path(directory)
    cert_path, key_path = d / CA_CERT, d / CA_KEY
    if not overwrite and (cert_path.exists() or key_path.exists()):
        raise ConfigError(f"a CA already exists in {d}; pass overwrite=True to replace it")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_atomic(key_path, _key_pem(key), private=True)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return cert_path


def _load_ca(ca_d: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert = _load_cert(_read(ca_d / CA_CERT, "CA certificate"), ca_d / CA_CERT)
    ca_key = serialization.load_pem_private_key(_read(ca_d / CA_KEY, "CA private key"), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{ca_d / CA_KEY} is not an ECDSA key made by misuan")
    return ca_cert, ca_key


def _node_certificate(
    subject: x509.Name, sans: Sequence[x509.GeneralName], public_key: Any, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    days: int,
) -> x509.Certificate:
    """A node certificate signed by ``ca``: both TLS usages, the party's names, at most the CA's lifetime."""
    ca_cert, ca_key = ca
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def issue_party_cert(
    ca_dir: str | os.PathLike[str],
    party: str,
    out_dir: str | os.PathLike[str] | None = None,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 825,
) -> TlsFiles:
    """Issue ``party``'s certificate and key, signed by the CA in ``ca_dir``.

    Writes ``<party>.pem``, ``<party>.key`` (0600) and a copy of ``ca.pem`` into ``out_dir``
    (default ``ca_dir``) and returns their paths. ``hosts`` are extra SANs (DNS names or IP
    addresses); never list another party's name there, or this certificate could stand for it.
    """
    check_party_name(party)
    ca_d = Path(ca_dir)
    out = Path(out_dir) if out_dir is not None else ca_d
    ca_pem = _read(ca_d / CA_CERT, "CA certificate")
    ca = _load_ca(ca_d)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)])
    cert = _node_certificate(subject, _sans(party, hosts), key.public_key(), ca, days)
    files = party_tls_files(out, party)
    _write_atomic(files.key, _key_pem(key), private=True)
    _write_atomic(files.cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    if files.ca.resolve() != (ca_d / CA_CERT).resolve():
        _write_atomic(files.ca, ca_pem, private=False)
    return files


def _sans(party: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = [x509.DNSName(party)]
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            if h != party:
                sans.append(x509.DNSName(h))
    return sans


def create_csr(party: str, out_dir: str | os.PathLike[str], hosts: Sequence[str] = DEFAULT_HOSTS, organization: str = "") -> Path:
    """A new key (``<party>.key``, 0600) and a certificate signing request (``<party>.csr``) for a corporate CA.

    The request names the party as subject CN and DNS SAN (what misuan checks) and asks for both TLS
    usages (a node is a server to its peers and a client of theirs). Returns the CSR's path.
    """
    check_party_name(party)
    out = Path(out_dir)
    names = [x509.NameAttribute(NameOID.COMMON_NAME, party)]
    if organization:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(names))
        .add_extension(x509.SubjectAlternativeName(_sans(party, hosts)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_atomic(out / f"{party}.key", _key_pem(key), private=True)
    path = out / f"{party}.csr"
    _write_atomic(path, csr.public_bytes(serialization.Encoding.PEM), private=False)
    return path


def sign_csr(
    ca_dir: str | os.PathLike[str], csr_path: str | os.PathLike[str], out: str | os.PathLike[str], days: int = 825
) -> Path:
    """Sign a node's CSR with the CA in ``ca_dir`` (the CA operator's side of ``certs request``).

    The certificate takes the request's subject and DNS/IP names; the request must name a valid
    party (subject CN, also among its DNS names) and be signed by its own key.
    """
    ca_d = Path(ca_dir)
    try:
        csr = x509.load_pem_x509_csr(_read(Path(csr_path), "certificate signing request"))
    except ValueError as exc:
        raise ConfigError(f"{csr_path} is not a PEM certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise AuthenticationError(f"{csr_path}: the request is not signed by the key it carries")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    party = check_party_name(str(cns[0].value)) if len(cns) == 1 else ""
    try:
        sans = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    if not party or x509.DNSName(party) not in sans:
        raise ConfigError(f"{csr_path}: a node's request names its party as CN and as a DNS name (make it with `misuan certs request`)")
    cert = _node_certificate(csr.subject, sans, csr.public_key(), _load_ca(ca_d), days)
    path = Path(out)
    _write_atomic(path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return path


def import_signed_cert(
    party: str, signed: str | os.PathLike[str], key: str | os.PathLike[str], ca: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
) -> TlsFiles:
    """Take the certificate the corporate CA signed for ``party``'s CSR: check it, then install it.

    ``signed`` may hold the chain (certificate first, then intermediates); ``ca`` is the CA bundle
    it must chain to. Checks that it names the party, matches the key made with the CSR, and is
    valid; writes ``<party>.pem`` (with the chain) and ``ca.pem`` in ``out_dir`` atomically.
    """
    out = Path(out_dir)
    staged = TlsFiles(ca=Path(ca), cert=Path(signed), key=Path(key))
    mat = check_tls_files(staged, party)
    files = party_tls_files(out, party)
    _write_atomic(files.cert, mat.cert, private=False)
    if files.ca.resolve() != Path(ca).resolve():
        _write_atomic(files.ca, mat.ca, private=False)
    if files.key.resolve() != Path(key).resolve():
        _write_atomic(files.key, mat.key, private=True)
    return files


# --- reading and checking ------------------------------------------------------------------------
def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def load_pem_bundle(data: bytes, source: object) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM file (a bundle may hold a root, intermediates, an old and a new CA)."""
    blocks = _PEM_BLOCK.findall(data)
    if not blocks:
        raise ConfigError(f"{source} holds no PEM certificate")
    try:
        return tuple(x509.load_pem_x509_certificate(b) for b in blocks)
    except ValueError as exc:
        raise ConfigError(f"{source} holds a certificate that cannot be read: {exc}") from exc


def _load_cert(pem: bytes, source: object = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise AuthenticationError(f"{source} is not a PEM X.509 certificate: {exc}") from exc


@functools.lru_cache(maxsize=256)
def party_from_certificate(pem: bytes) -> str:
    """The party a certificate names: its subject CN, which must also be one of its DNS SANs."""
    cert = _load_cert(pem)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or not isinstance(cns[0].value, str):
        raise AuthenticationError(f"certificate {cert.subject.rfc4514_string()} must have exactly one CN")
    party = cns[0].value
    try:
        dns = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        dns = []
    if party not in dns:
        raise AuthenticationError(f"certificate CN={party!r} does not list {party!r} among its DNS names")
    return party


def _chains_to(chain: Sequence[x509.Certificate], cas: Sequence[x509.Certificate]) -> bool:
    """Whether the leaf ``chain[0]`` has a valid path (with ``chain[1:]`` as intermediates) to a certificate of ``cas``."""
    verifier = verification.PolicyBuilder().store(verification.Store(list(cas))).build_client_verifier()
    try:
        verifier.verify(chain[0], list(chain[1:]))
    except verification.VerificationError:
        return False
    return True


def check_tls_files(tls: TlsFiles, party: str) -> TlsMaterial:
    """Read ``tls`` and check, before any connection, that it can stand for ``party``.

    The certificate must name ``party``, be signed by the CA in ``tls.ca``, be valid now, and match
    the private key. Each failure names the file to fix.
    """
    mat = tls.load()
    cas = load_pem_bundle(mat.ca, f"CA file {tls.ca}")
    chain = load_pem_bundle(mat.cert, f"certificate {tls.cert}")
    cert = chain[0]
    named = party_from_certificate(mat.cert)
    if named != party:
        raise AuthenticationError(f"certificate {tls.cert} is for party {named!r}, but this node is {party!r}")
    if not _chains_to(chain, cas):
        names = "; ".join(ca.subject.rfc4514_string() for ca in cas)
        raise AuthenticationError(
            f"certificate {tls.cert} is not signed by a CA in {tls.ca} ({names}): issue it from one of them, "
            "add its CA (and any intermediate) to that file, or point the config at the CA that signed it"
        )
    now = _now()
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise AuthenticationError(
            f"certificate {tls.cert} is valid only from {cert.not_valid_before_utc:%Y-%m-%d} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d}: issue a new one"
        )
    try:
        key = serialization.load_pem_private_key(mat.key, password=None)
    except (ValueError, TypeError) as exc:
        raise AuthenticationError(f"{tls.key} is not an unencrypted PEM private key: {exc}") from exc
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise AuthenticationError(f"private key {tls.key} does not belong to certificate {tls.cert}")
    return mat
