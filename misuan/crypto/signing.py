"""Signatures by a node's TLS key (ECDSA P-256, SHA-256, DER as hex), e.g. an operator's decision on a job.

The node's certificate says whose key it is; the fingerprint of that certificate
(:func:`misuan.crypto.trust.fingerprint`) goes with each signature so a reader knows which
certificate to check it against.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from misuan.crypto.trust import fingerprint
from misuan.errors import AuthenticationError, ConfigError

__all__ = ["certificate_fingerprint", "sign_with_key", "verify_with_certificate"]


def certificate_fingerprint(cert_path: Path) -> str:
    """The fingerprint of the first certificate of a PEM file."""
    return fingerprint(x509.load_pem_x509_certificate(Path(cert_path).read_bytes()))


def sign_with_key(key_path: Path, payload: bytes) -> str:
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{key_path}: signatures are made with an ECDSA node key; this is another kind of key")
    return key.sign(payload, ec.ECDSA(hashes.SHA256())).hex()


def verify_with_certificate(cert_path: Path, payload: bytes, signature_hex: str, signer: str, what: str) -> None:
    """Check that the key of the certificate in ``cert_path`` (fingerprint ``signer``) signed ``payload``."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    public = cert.public_key()
    try:
        if signer != fingerprint(cert) or not isinstance(public, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        public.verify(bytes.fromhex(signature_hex), payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:
        raise AuthenticationError(f"{what} is not signed by the key of {cert_path}") from exc
