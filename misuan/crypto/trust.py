"""Per-party trust anchors: which certificates may stand for which party.

Two institutions run two PKIs. A connection from or to party ``P`` is accepted only when ``P``'s
certificate chain ends at one of **P's own** anchors (the CA certificates P's entry names) and the
leaf names ``P`` (subject CN and a DNS SAN, :func:`misuan.crypto.certs.party_from_certificate`).
A certificate from another party's CA that claims to be ``P`` is refused: one institution's CA key
can no longer mint an identity for another institution's node.

An anchor set (:class:`TrustAnchors`) holds:

- ``cas``: the CA certificates (root or intermediate) that may vouch for the party, from one or
  more PEM files. Two during a rollover: the old CA and the new one.
- ``pins``: optional SHA-256 fingerprints of the party's own certificates; when given, the leaf must
  also be one of them (pinning on top of the CA).
- ``revoked``: SHA-256 fingerprints this node refuses whatever signed them (the node's deny list).

Path validation is ``cryptography``'s X.509 verifier (RFC 5280 profile: signatures, validity
periods, basic constraints, key usage, name constraints); this module only chooses the store and
names what failed. Fingerprints are ``sha256:`` + 64 lowercase hex digits of the DER certificate.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from misuan.crypto.certs import load_pem_bundle, party_from_certificate
from misuan.errors import AuthenticationError, ConfigError

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "TrustAnchors",
    "describe_certificates",
    "expiry_warnings",
    "file_expiry_warnings",
    "fingerprint",
    "load_anchors",
    "parse_fingerprint",
    "read_deny_list",
    "check_leaf_policy",
    "verify_party_chain",
]

EXPIRY_WARNING_DAYS = 30
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")


def fingerprint(cert: x509.Certificate) -> str:
    """``sha256:<hex>`` of the DER encoding: what an operator compares, pins or revokes."""
    return "sha256:" + hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def parse_fingerprint(value: object, where: str) -> str:
    """A fingerprint as written in a spec, config or deny list; colons and case are forgiven."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: a fingerprint is a string 'sha256:<64 hex digits>' (got {value!r})")
    v = value.strip().lower()
    if v.startswith("sha256:"):
        v = "sha256:" + v[7:].replace(":", "")
    if not _FINGERPRINT.match(v):
        raise ConfigError(f"{where}: write a fingerprint as 'sha256:<64 hex digits>' (`misuan certs fingerprint FILE` prints it), got {value!r}")
    return v


@dataclasses.dataclass(frozen=True)
class TrustAnchors:
    """What this node accepts as one party's identity (see the module docstring)."""

    party: str
    cas: tuple[x509.Certificate, ...]
    pins: frozenset[str] = frozenset()
    revoked: frozenset[str] = frozenset()
    source: str = ""  # where the anchors were named, for error messages
    from_spec: bool = False  # named in the job spec (both parties' copies must agree), not local policy

    @property
    def fingerprints(self) -> list[str]:
        """What both parties agree on in the hello: the anchors' and pins' fingerprints, sorted."""
        return sorted({fingerprint(c) for c in self.cas} | {f"pin:{p}" for p in self.pins})

    @property
    def pem(self) -> bytes:
        """The CA certificates as one PEM bundle (gRPC's root certificates for this party)."""
        return b"".join(c.public_bytes(Encoding.PEM) for c in self.cas)

    def with_revoked(self, revoked: frozenset[str]) -> TrustAnchors:
        return dataclasses.replace(self, revoked=revoked)


def load_anchors(
    party: str, ca_files: Sequence[Path], pins: Iterable[str] = (), source: str = "", from_spec: bool = False
) -> TrustAnchors:
    """Read ``party``'s anchors from its CA files (each may hold several certificates)."""
    cas: list[x509.Certificate] = []
    for path in ca_files:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{source or party}: cannot read the CA file {path}: {exc.strerror}") from exc
        for cert in load_pem_bundle(data, path):
            if not _is_ca(cert):
                raise ConfigError(
                    f"{source or party}: {path} holds {cert.subject.rfc4514_string()}, which is not a CA certificate "
                    "(to trust one certificate only, name its CA and pin the certificate's fingerprint)"
                )
            cas.append(cert)
    return TrustAnchors(party, tuple(cas), frozenset(pins), frozenset(), source, from_spec)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def read_deny_list(path: Path) -> frozenset[str]:
    """A deny list: one fingerprint per line; ``#`` starts a comment; blank lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the deny list {path}: {exc.strerror}") from exc
    out = set()
    for i, line in enumerate(text.splitlines(), 1):
        item = line.split("#", 1)[0].strip()
        if item:
            out.add(parse_fingerprint(item, f"{path}:{i}"))
    return frozenset(out)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def verify_party_chain(chain_pem: bytes, anchors: TrustAnchors, now: datetime.datetime | None = None) -> str:
    """Check that ``chain_pem`` (leaf first, then intermediates) may stand for ``anchors.party``.

    Returns the leaf's fingerprint; raises :class:`AuthenticationError` naming what is wrong: a
    revoked certificate, a chain that does not end at this party's anchors, a certificate for another
    name, an expired one, or one that is not among the pinned.
    """
    certs = load_pem_bundle(chain_pem, f"the certificate presented as {anchors.party!r}")
    leaf, intermediates = certs[0], list(certs[1:])
    fp = fingerprint(leaf)
    who = f"the certificate presented as {anchors.party!r} ({leaf.subject.rfc4514_string()}, {fp[:19]}...)"
    for c in certs:
        if fingerprint(c) in anchors.revoked:
            what = "it" if c is leaf else f"its issuer {c.subject.rfc4514_string()}"
            raise AuthenticationError(f"{who} is refused: {what} is on this node's deny list of revoked certificates")
    named = party_from_certificate(leaf.public_bytes(Encoding.PEM))
    if named != anchors.party:
        raise AuthenticationError(f"{who} names {named!r}, not {anchors.party!r}")
    at = now or _now()
    if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
        raise AuthenticationError(
            f"{who} is valid only from {leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d}"
        )
    if anchors.pins and fp not in anchors.pins:
        raise AuthenticationError(f"{who} is not one of the certificates pinned for {anchors.party!r}")
    chain = _verify_path(leaf, intermediates, anchors, at, who)
    for c in chain[1:]:  # the chain the verifier built: an intermediate or root from the anchors included
        if fingerprint(c) in anchors.revoked:
            raise AuthenticationError(
                f"{who} is refused: its issuer {c.subject.rfc4514_string()} is on this node's deny list of revoked certificates"
            )
    return fp


def check_leaf_policy(leaf_pem: bytes, anchors: TrustAnchors) -> str:
    """Name, pins and the deny list for a certificate whose path TLS has already validated; returns its fingerprint."""
    leaf = load_pem_bundle(leaf_pem, f"the certificate presented as {anchors.party!r}")[0]
    fp = fingerprint(leaf)
    who = f"the certificate presented as {anchors.party!r} ({leaf.subject.rfc4514_string()}, {fp[:19]}...)"
    if fp in anchors.revoked:
        raise AuthenticationError(f"{who} is refused: it is on this node's deny list of revoked certificates")
    named = party_from_certificate(leaf.public_bytes(Encoding.PEM))
    if named != anchors.party:
        raise AuthenticationError(f"{who} names {named!r}, not {anchors.party!r}")
    if anchors.pins and fp not in anchors.pins:
        raise AuthenticationError(f"{who} is not one of the certificates pinned for {anchors.party!r}")
    return fp


def _verify_path(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], anchors: TrustAnchors, at: datetime.datetime, who: str
) -> list[x509.Certificate]:
    # Intermediate CAs named among the party's anchors may also complete a chain the peer sent short.
    store = tuple(c for c in anchors.cas if fingerprint(c) not in anchors.revoked)  # a revoked CA vouches for no one
    pool = intermediates + [c for c in store if c.subject != c.issuer]
    if not store:
        raise AuthenticationError(f"{who} cannot be accepted: every trust anchor of {anchors.party} is revoked on this node")
    verifier = _client_verifier(store, at.replace(microsecond=0))
    try:
        return list(verifier.verify(leaf, pool).chain)
    except verification.VerificationError as exc:
        names = ", ".join(sorted({c.subject.rfc4514_string() for c in anchors.cas})) or "none"
        raise AuthenticationError(
            f"{who} does not chain to {anchors.party}'s own trust anchors ({names}"
            f"{'; named in ' + anchors.source if anchors.source else ''}): it was issued by "
            f"{leaf.issuer.rfc4514_string()} ({exc})"
        ) from None


@functools.lru_cache(maxsize=64)
def _client_verifier(cas: tuple[x509.Certificate, ...], at: datetime.datetime) -> verification.ClientVerifier:
    return verification.PolicyBuilder().store(verification.Store(list(cas))).time(at).build_client_verifier()


def expiry_warnings(
    certs: Iterable[tuple[str, x509.Certificate]], days: int = EXPIRY_WARNING_DAYS, now: datetime.datetime | None = None
) -> list[str]:
    """One line per certificate that expires within ``days`` (or has expired), naming where it is."""
    at = now or _now()
    out = []
    for where, cert in certs:
        left = cert.not_valid_after_utc - at
        if left.total_seconds() <= 0:
            out.append(f"{where}: {cert.subject.rfc4514_string()} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        elif left <= datetime.timedelta(days=days):
            out.append(
                f"{where}: {cert.subject.rfc4514_string()} expires on {cert.not_valid_after_utc:%Y-%m-%d} "
                f"(in {left.days} days): issue its successor and roll it out"
            )
    return out


def file_expiry_warnings(files: Iterable[tuple[str, Path]], days: int = EXPIRY_WARNING_DAYS) -> list[str]:
    """:func:`expiry_warnings` of every certificate in the PEM files, each named ``label (path)``."""
    certs = []
    for label, path in files:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {label} {path}: {exc.strerror}") from exc
        certs += [(f"{label} ({path})", c) for c in load_pem_bundle(data, path)]
    return expiry_warnings(certs, days=days)


def describe_certificates(path: Path) -> list[str]:
    """One line per certificate of a PEM file: fingerprint, subject, end of validity."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    return [
        f"{fingerprint(c)}  {c.subject.rfc4514_string()}  valid to {c.not_valid_after_utc:%Y-%m-%d}  ({path})"
        for c in load_pem_bundle(data, path)
    ]
