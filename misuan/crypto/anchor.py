"""Ledger anchors: a party's signed statement "my ledger had ``length`` rows ending in ``head``".

At the end of every job each party signs its ledger head with its node key and hands the anchor to
every peer, which keeps it (:meth:`misuan.audit.ledger.Ledger.record_anchor`). The chain can then
no longer be shortened or have its tail rewritten unnoticed: the runner compares its ledger with the
newest anchor each peer holds of it before a job appends anything, and ``misuan ledger verify
--peer-anchors`` does the same from a peer's export. An auditor holding both exports can tell which
side changed its history, since only the signer's key makes its anchors.

The signed bytes are ``b"misuan-ledger-anchor-v1\\n"`` followed by the canonical JSON (sorted keys,
no spaces) of ``{"job_id", "signer", "length", "head", "signed_at"}``; the signature is ECDSA P-256
with SHA-256 (DER, hex) by:

- ``key_kind = "certificate"``: the party's TLS key; ``public_key`` is its X.509 certificate (PEM),
  whose CN names the signer and which the job's CA signed: an auditor with the CA certificate can
  check who signed.
- ``key_kind = "node-key"``: in-memory simulations have no TLS files, so each party directory holds a
  key of its own (``anchor_key.pem``, 0600, made on first use); ``public_key`` is its public key
  (PEM). Nothing certifies it: it shows that one key signed a party's anchors consistently, not
  whose key it is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from misuan.atomic_files import write_atomic
from misuan.crypto.certs import load_pem_bundle, party_from_certificate
from misuan.crypto.trust import TrustAnchors, verify_party_chain
from misuan.errors import AuthenticationError, LedgerError, LedgerTamperedError

__all__ = [
    "CERTIFICATE", "NODE_KEY", "NODE_KEY_FILE", "AnchorSigner", "LedgerAnchor", "verify_anchor", "verify_signed",
]

CERTIFICATE = "certificate"
NODE_KEY = "node-key"
NODE_KEY_FILE = "anchor_key.pem"
_CONTEXT = b"misuan-ledger-anchor-v1\n"
_MAX_PEM = 16 << 10


@dataclasses.dataclass(frozen=True)
class LedgerAnchor:
    """A signed ledger head: ``signer``'s ledger had ``length`` rows, the last with hash ``head``."""

    job_id: str  # the job at whose end it was signed
    signer: str
    length: int
    head: str
    signed_at: str  # ISO-8601 UTC
    key_kind: str  # CERTIFICATE or NODE_KEY
    public_key: str  # PEM: the signer's certificate, or its bare public key
    signature: str  # hex of the DER ECDSA-SHA256 signature over signed_bytes()

    def signed_bytes(self) -> bytes:
        body = {"job_id": self.job_id, "signer": self.signer, "length": self.length, "head": self.head,
                "signed_at": self.signed_at}
        return _CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class AnchorSigner:
    """Signs a party's ledger heads with its node key (see the module docstring)."""

    def __init__(self, party: str, key: ec.EllipticCurvePrivateKey, key_kind: str, public_pem: str) -> None:
        self.party = party
        self._key = key
        self.key_kind = key_kind
        self.public_pem = public_pem

    @classmethod
    def from_tls(cls, party: str, cert_pem: bytes, key_pem: bytes) -> AnchorSigner:
        """The party's TLS key, its certificate as the anchor's ``public_key``."""
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise LedgerError(f"{party}'s TLS key is not an ECDSA key: it cannot sign ledger anchors")
        return cls(party, key, CERTIFICATE, cert_pem.decode("ascii"))

    @classmethod
    def node_key(cls, party: str, party_dir: Path) -> AnchorSigner:
        """A key of the party directory's own (``anchor_key.pem``, made on first use): no TLS, no certificate."""
        path = Path(party_dir) / NODE_KEY_FILE
        try:
            if path.is_file():
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            else:
                key = ec.generate_private_key(ec.SECP256R1())
                pem = key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, pem, private=True)
        except (OSError, ValueError, TypeError) as exc:
            raise LedgerError(f"cannot read or create the anchor key {path}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise LedgerError(f"{path} is not an ECDSA key")
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(party, key, NODE_KEY, public.decode("ascii"))

    def sign_payload(self, payload: bytes) -> str:
        """Hex of the DER ECDSA-SHA256 signature over ``payload`` (which must start with its own context line)."""
        return str(self._key.sign(payload, ec.ECDSA(hashes.SHA256())).hex())

    def sign(self, job_id: str, length: int, head: str) -> LedgerAnchor:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
        unsigned = LedgerAnchor(job_id, self.party, length, head, now, self.key_kind, self.public_pem, "")
        signature = self._key.sign(unsigned.signed_bytes(), ec.ECDSA(hashes.SHA256()))
        return dataclasses.replace(unsigned, signature=signature.hex())


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def verify_anchor(
    anchor: LedgerAnchor, signer: str | None = None, ca_pem: bytes | None = None, anchors: TrustAnchors | None = None
) -> None:
    """Check an anchor's signature (and, for a certificate, that it names the signer and chains to the
    signer's own trust ``anchors``, or else was issued by a CA of the bundle ``ca_pem``, as it stood
    when the anchor was signed); raises :class:`LedgerTamperedError` naming what is wrong."""
    who = f"the anchor of {anchor.signer!r}'s ledger at row {anchor.length} (job {anchor.job_id!r})"
    if signer is not None and anchor.signer != signer:
        raise LedgerTamperedError(f"{who} claims signer {anchor.signer!r}, but it came from {signer!r}")
    if anchor.length < 0 or len(anchor.head) != 64:
        raise LedgerTamperedError(f"{who} is malformed")
    verify_signed(anchor.key_kind, anchor.public_key, anchor.signer, anchor.signed_bytes(), anchor.signature, who,
                  ca_pem=ca_pem, anchors=anchors, signed_at=anchor.signed_at)


def verify_signed(
    key_kind: str, public_pem: str, signer: str, payload: bytes, signature_hex: str, who: str, *,
    ca_pem: bytes | None = None, anchors: TrustAnchors | None = None, signed_at: str | None = None,
) -> None:
    """Check that the key ``public_pem`` (a certificate naming ``signer``, or a bare node key) signed
    ``payload``; a certificate must also chain to ``anchors`` (at ``signed_at``) or to a CA of ``ca_pem``
    when given. Raises :class:`LedgerTamperedError` naming ``who``."""
    if len(public_pem) > _MAX_PEM:
        raise LedgerTamperedError(f"{who} is malformed")
    try:
        pem = public_pem.encode("ascii")
        if key_kind == CERTIFICATE:
            cert = x509.load_pem_x509_certificate(pem)
            named = party_from_certificate(pem)
            if named != signer:
                raise LedgerTamperedError(f"{who} is signed with the certificate of {named!r}")
            if anchors is not None:  # the certificate file may carry its intermediates after it
                at = dt.datetime.fromisoformat(signed_at) if signed_at else None
                verify_party_chain(pem, dataclasses.replace(anchors, revoked=frozenset()), now=at)
            elif ca_pem is not None and not any(_issued_by(cert, ca) for ca in load_pem_bundle(ca_pem, "the CA file")):
                raise ValueError("no CA of the given CA file issued the certificate")
            public: object = cert.public_key()
        elif key_kind == NODE_KEY:
            public = serialization.load_pem_public_key(pem)
        else:
            raise LedgerTamperedError(f"{who} has an unknown key kind {key_kind!r}")
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise LedgerTamperedError(f"{who} is not signed with an ECDSA key")
        public.verify(bytes.fromhex(signature_hex), payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError, UnicodeEncodeError, AuthenticationError) as exc:
        raise LedgerTamperedError(f"{who} does not verify: {type(exc).__name__} {exc}".rstrip()) from exc
