"""Two institutions, two PKIs: per-party trust anchors on the gRPC transport (both directions)."""

from __future__ import annotations

import dataclasses
import datetime
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from misuan.crypto.certs import TlsFiles, create_ca, issue_party_cert
from misuan.crypto.trust import TrustAnchors, fingerprint, load_anchors, verify_party_chain
from misuan.errors import AuthenticationError, PeerUnreachableError
from misuan.net.channel import Mailbox
from misuan.net.grpc_channel import GrpcChannel, open_grpc_channel
from misuan.net.grpc_server import PartyServer


@dataclasses.dataclass
class Institution:
    ca_dir: Path
    tls: TlsFiles

    @property
    def ca(self) -> Path:
        return self.ca_dir / "ca.pem"


def _institution(root: Path, party: str, ca_name: str) -> Institution:
    create_ca(root / "ca", name=ca_name)
    return Institution(root / "ca", issue_party_cert(root / "ca", party, out_dir=root / "node"))


@pytest.fixture()
def two_pkis(tmp_path: Path) -> dict[str, Institution]:
    return {
        "bank": _institution(tmp_path / "bank", "bank", "Bank CA"),
        "partner": _institution(tmp_path / "partner", "partner", "Partner CA"),
    }


def _anchors(cas: Mapping[str, list[Path]], revoked: frozenset[str] = frozenset()) -> dict[str, TrustAnchors]:
    return {p: load_anchors(p, files, source=f"test anchors of {p}").with_revoked(revoked) for p, files in cas.items()}


def _open_pair(
    tls: Mapping[str, TlsFiles], anchors: Mapping[str, Mapping[str, TrustAnchors]], job_id: str,
    servers: Mapping[str, PartyServer] | None = None,
) -> dict[str, GrpcChannel | BaseException]:
    own = servers is None
    srv = dict(servers) if servers is not None else {p: PartyServer(p, t) for p, t in tls.items()}
    book = {p: s.address for p, s in srv.items()}
    out: dict[str, GrpcChannel | BaseException] = {}

    def one(p: str) -> None:
        try:
            out[p] = open_grpc_channel(p, book, job_id, tls[p], server=srv[p], anchors=anchors[p], connect_timeout_s=3, timeout_s=10)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            out[p] = exc

    threads = [threading.Thread(target=one, args=(p,)) for p in tls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if own:
        for p, c in out.items():
            if not isinstance(c, GrpcChannel):
                srv[p].stop(0)
    return out


def _exchange(chans: Mapping[str, GrpcChannel | BaseException]) -> None:
    bank, partner = chans["bank"], chans["partner"]
    assert isinstance(bank, GrpcChannel) and isinstance(partner, GrpcChannel), chans
    bank.send("partner", "s", {"x": 1})
    assert partner.recv("bank", "s") == {"x": 1}
    partner.send("bank", "s", {"y": 2})
    assert bank.recv("partner", "s") == {"y": 2}
    for c in (bank, partner):
        c.close()


def test_two_separately_created_cas_run_a_job(two_pkis: dict[str, Institution]) -> None:
    cas = {"bank": [two_pkis["bank"].ca], "partner": [two_pkis["partner"].ca]}
    tls = {p: i.tls for p, i in two_pkis.items()}
    _exchange(_open_pair(tls, {"bank": _anchors(cas), "partner": _anchors(cas)}, "two-pkis"))


def test_a_certificate_from_the_banks_ca_naming_partner_is_refused(tmp_path: Path, two_pkis: dict[str, Institution]) -> None:
    # whoever holds the bank's CA key mints "partner": the bank's node must not take it for the partner
    rogue = issue_party_cert(two_pkis["bank"].ca_dir, "partner", out_dir=tmp_path / "rogue")
    cas = {"bank": [two_pkis["bank"].ca], "partner": [two_pkis["partner"].ca]}
    out = _open_pair({"bank": two_pkis["bank"].tls, "partner": rogue}, {"bank": _anchors(cas), "partner": _anchors(cas)}, "rogue")
    assert isinstance(out["bank"], AuthenticationError), out["bank"]
    assert "partner" in str(out["bank"]) and "anchor" in str(out["bank"])
    # the server side refuses it too, whatever the TLS layer's roots
    with pytest.raises(AuthenticationError, match=r"does not chain to partner's own trust anchors \(CN=Partner CA"):
        verify_party_chain(rogue.cert.read_bytes(), _anchors(cas)["partner"])


def test_a_revoked_certificate_is_refused_both_ways(two_pkis: dict[str, Institution]) -> None:
    cas = {"bank": [two_pkis["bank"].ca], "partner": [two_pkis["partner"].ca]}
    partner_fp = fingerprint(x509.load_pem_x509_certificate(two_pkis["partner"].tls.cert.read_bytes()))
    tls = {p: i.tls for p, i in two_pkis.items()}
    bank_anchors = _anchors(cas, frozenset({partner_fp}))
    # as a server: the bank refuses the partner's client certificate (details only in the bank's log)
    bank_server = PartyServer("bank", tls["bank"])
    bank_server.register("revoked", ["bank", "partner"], Mailbox(), 1 << 20, anchors=bank_anchors)
    try:
        with pytest.raises(AuthenticationError, match="bank does not accept this certificate for 'partner'"):
            open_grpc_channel(
                "partner", {"bank": bank_server.address, "partner": "127.0.0.1:0"}, "revoked", tls["partner"],
                anchors=_anchors(cas), connect_timeout_s=3,
            )
    finally:
        bank_server.stop(0)
    # as a client: the bank reads the partner's server certificate before its first message
    partner_server = PartyServer("partner", tls["partner"])
    partner_server.register("revoked-2", ["bank", "partner"], Mailbox(), 1 << 20, anchors=_anchors(cas))
    try:
        with pytest.raises(AuthenticationError, match="deny list"):
            open_grpc_channel(
                "bank", {"bank": "127.0.0.1:0", "partner": partner_server.address}, "revoked-2", tls["bank"],
                anchors=bank_anchors, connect_timeout_s=3,
            )
    finally:
        partner_server.stop(0)


def test_a_revoked_ca_vouches_for_no_one(two_pkis: dict[str, Institution]) -> None:
    cas = {"bank": [two_pkis["bank"].ca], "partner": [two_pkis["partner"].ca]}
    ca_fp = fingerprint(x509.load_pem_x509_certificate(two_pkis["partner"].ca.read_bytes()))
    anchors = _anchors(cas, frozenset({ca_fp}))["partner"]
    with pytest.raises(AuthenticationError, match="every trust anchor of partner is revoked"):
        verify_party_chain(two_pkis["partner"].tls.cert.read_bytes(), anchors)


def test_pins_and_deny_list_with_an_intermediate_ca(tmp_path: Path, two_pkis: dict[str, Institution]) -> None:
    # the client's probe checks only the leaf (TLS validated the path): an unrelated revocation must not
    # break a peer whose certificate comes from an issuing CA
    root, partner_tls = _intermediate_pki(tmp_path / "corp", "partner")
    cas = {"bank": [two_pkis["bank"].ca], "partner": [root]}
    unrelated = frozenset({"sha256:" + "0" * 64})
    _exchange(_open_pair(
        {"bank": two_pkis["bank"].tls, "partner": partner_tls},
        {"bank": _anchors(cas, unrelated), "partner": _anchors(cas)}, "corp-revocations",
    ))
    issuing = x509.load_pem_x509_certificates(partner_tls.cert.read_bytes())[1]
    with pytest.raises(AuthenticationError, match="its issuer CN=Partner Issuing CA 1 is on this node's deny list"):
        verify_party_chain(partner_tls.cert.read_bytes(), _anchors(cas, frozenset({fingerprint(issuing)}))["partner"])


def test_rotation_keeps_a_running_node_connected_to_a_peer_that_rotated(tmp_path: Path, two_pkis: dict[str, Institution]) -> None:
    create_ca(tmp_path / "partner-ca-2026", name="Partner CA 2026")
    rotated = issue_party_cert(tmp_path / "partner-ca-2026", "partner", out_dir=tmp_path / "partner-rotated")
    both = {"bank": [two_pkis["bank"].ca], "partner": [two_pkis["partner"].ca, tmp_path / "partner-ca-2026" / "ca.pem"]}
    bank_server = PartyServer("bank", two_pkis["bank"].tls)  # the bank's node keeps running throughout
    try:
        before = PartyServer("partner", two_pkis["partner"].tls)
        _exchange(_open_pair(
            {"bank": two_pkis["bank"].tls, "partner": two_pkis["partner"].tls},
            {"bank": _anchors(both), "partner": _anchors(both)}, "before-rotation",
            servers={"bank": bank_server, "partner": before},
        ))
        before.stop(0)
        after_tls = TlsFiles(ca=tmp_path / "partner-ca-2026" / "ca.pem", cert=rotated.cert, key=rotated.key)
        after = PartyServer("partner", after_tls)
        _exchange(_open_pair(
            {"bank": two_pkis["bank"].tls, "partner": after_tls},
            {"bank": _anchors(both), "partner": _anchors(both)}, "after-rotation",
            servers={"bank": bank_server, "partner": after},
        ))
        after.stop(0)
    finally:
        bank_server.stop(0)


def _intermediate_pki(root: Path, party: str) -> tuple[Path, TlsFiles]:
    """A corporate PKI: root CA -> issuing CA -> the node's certificate (file: leaf + issuing CA)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root.mkdir(parents=True)

    def build(subject: str, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey | None, ca: bool, names: list[str]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=30 if not ca else 365))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if ca:
            b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        else:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        if signer is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
        return b.sign(signer or key, hashes.SHA256()), key

    root_cert, root_key = build("Partner Group Root CA", None, None, True, [])
    issuing, issuing_key = build("Partner Issuing CA 1", root_cert.subject, root_key, True, [])
    leaf, leaf_key = build(party, issuing.subject, issuing_key, False, [party, f"{party}.partner-group.example"])
    pem = serialization.Encoding.PEM
    (root / "root.pem").write_bytes(root_cert.public_bytes(pem))
    (root / "node.pem").write_bytes(leaf.public_bytes(pem) + issuing.public_bytes(pem))
    (root / "node.key").write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return root / "root.pem", TlsFiles(ca=root / "root.pem", cert=root / "node.pem", key=root / "node.key")


def test_corporate_pki_with_an_intermediate_ca(tmp_path: Path, two_pkis: dict[str, Institution]) -> None:
    root, partner_tls = _intermediate_pki(tmp_path / "corp", "partner")
    cas = {"bank": [two_pkis["bank"].ca], "partner": [root]}  # only the root is the partner's anchor
    _exchange(_open_pair({"bank": two_pkis["bank"].tls, "partner": partner_tls}, {"bank": _anchors(cas), "partner": _anchors(cas)}, "corp"))


def test_a_node_that_knows_its_peers_ca_answers_no_such_job_rather_than_failing_tls(two_pkis: dict[str, Institution]) -> None:
    """Before a job is registered, a server trusts its own CA and its configured peers' CAs (extra roots):
    a peer that connects early hears "not running job" and retries, instead of a TLS refusal."""
    cas = {"bank": [two_pkis["bank"].ca], "partner": [two_pkis["partner"].ca]}
    bank_server = PartyServer("bank", two_pkis["bank"].tls, extra_roots=two_pkis["partner"].ca.read_bytes())
    try:
        with pytest.raises(PeerUnreachableError, match="is up but not running job 'early'"):
            open_grpc_channel(
                "partner", {"bank": bank_server.address, "partner": "127.0.0.1:0"}, "early", two_pkis["partner"].tls,
                anchors=_anchors(cas), connect_timeout_s=2,
            )
    finally:
        bank_server.stop(0)
