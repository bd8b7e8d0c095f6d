from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from misuan.crypto import certs
from misuan.crypto.certs import (
    TlsFiles,
    check_tls_files,
    create_ca,
    issue_party_cert,
    party_from_certificate,
)
from misuan.errors import AuthenticationError, ConfigError


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_ca_and_party_certificate_name_the_party(tmp_path: Path) -> None:
    ca_pem = create_ca(tmp_path)
    files = issue_party_cert(tmp_path, "bank", hosts=["localhost", "127.0.0.1", "bank.example.com"])
    assert files == TlsFiles(ca=ca_pem, cert=tmp_path / "bank.pem", key=tmp_path / "bank.key")
    assert _mode(tmp_path / "ca.key") == 0o600 and _mode(files.key) == 0o600
    assert _mode(files.cert) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.key", "bank.pem", "ca.key", "ca.pem"]  # no temp files left

    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bank"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["bank", "localhost", "bank.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert party_from_certificate(files.cert.read_bytes()) == "bank"
    assert check_tls_files(files, "bank").cert == files.cert.read_bytes()


def test_issue_into_another_directory_copies_the_ca(tmp_path: Path) -> None:
    create_ca(tmp_path / "ca")
    files = issue_party_cert(tmp_path / "ca", "partner", out_dir=tmp_path / "node")
    assert files.ca == tmp_path / "node" / "ca.pem"
    assert files.ca.read_bytes() == (tmp_path / "ca" / "ca.pem").read_bytes()
    assert not (tmp_path / "node" / "ca.key").exists()
    check_tls_files(files, "partner")


def test_certificate_of_another_ca_is_refused_naming_the_files(tmp_path: Path) -> None:
    create_ca(tmp_path / "a")
    create_ca(tmp_path / "b")
    good = issue_party_cert(tmp_path / "a", "bank")
    foreign = issue_party_cert(tmp_path / "b", "bank", out_dir=tmp_path / "b-out")
    mixed = TlsFiles(ca=good.ca, cert=foreign.cert, key=foreign.key)
    with pytest.raises(AuthenticationError, match=rf"{foreign.cert}.* is not signed by a CA in {good.ca}"):
        check_tls_files(mixed, "bank")
    with pytest.raises(AuthenticationError, match="is for party 'bank', but this node is 'partner'"):
        check_tls_files(good, "partner")
    with pytest.raises(AuthenticationError, match=rf"private key {good.key} does not belong to certificate {foreign.cert}"):
        check_tls_files(TlsFiles(ca=tmp_path / "b" / "ca.pem", cert=foreign.cert, key=good.key), "bank")


def test_every_certificate_of_a_ca_bundle_is_read(tmp_path: Path) -> None:
    # the bug of the two-PKI report: only the first certificate of a bundle was read
    create_ca(tmp_path / "bank", name="Bank CA")
    create_ca(tmp_path / "partner", name="Partner CA")
    own = issue_party_cert(tmp_path / "partner", "partner", out_dir=tmp_path / "p-out")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes((tmp_path / "bank" / "ca.pem").read_bytes() + (tmp_path / "partner" / "ca.pem").read_bytes())
    check_tls_files(TlsFiles(ca=bundle, cert=own.cert, key=own.key), "partner")


def test_a_foreign_leaf_with_the_right_ca_appended_is_refused(tmp_path: Path) -> None:
    # only a valid path counts: appending the expected CA to a certificate from another CA proves nothing
    create_ca(tmp_path / "x", name="X CA")
    create_ca(tmp_path / "y", name="Y CA")
    foreign = issue_party_cert(tmp_path / "x", "bank", out_dir=tmp_path / "x-out")
    stitched = tmp_path / "stitched.pem"
    stitched.write_bytes(foreign.cert.read_bytes() + (tmp_path / "y" / "ca.pem").read_bytes())
    with pytest.raises(AuthenticationError, match="is not signed by a CA in"):
        check_tls_files(TlsFiles(ca=tmp_path / "y" / "ca.pem", cert=stitched, key=foreign.key), "bank")


def test_bad_names_and_existing_ca_are_config_errors(tmp_path: Path) -> None:
    create_ca(tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        create_ca(tmp_path)
    for bad in ["Bank", "bank.example", "-bank", "", "a" * 64, "bank_1"]:
        with pytest.raises(ConfigError, match="cannot name a certificate"):
            issue_party_cert(tmp_path, bad)
    with pytest.raises(ConfigError, match="cannot read the CA certificate"):
        issue_party_cert(tmp_path / "missing", "bank")


def test_party_from_certificate_needs_cn_among_dns_names(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("partner")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(AuthenticationError, match="does not list 'bank' among its DNS names"):
        party_from_certificate(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(AuthenticationError, match="not a PEM X.509 certificate"):
        party_from_certificate(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create_ca(tmp_path)
    first = issue_party_cert(tmp_path, "bank")
    old_key = first.key.read_bytes()

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(certs.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        issue_party_cert(tmp_path, "bank")
    assert first.key.read_bytes() == old_key
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_party_certificates_carry_only_the_party_name_and_localhost_is_no_party(tmp_path: Path) -> None:
    """Issue #11, 5: every certificate used to carry the DNS name localhost, a legal party name."""
    create_ca(tmp_path)
    cert = x509.load_pem_x509_certificate(issue_party_cert(tmp_path, "bank").cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["bank"] and not san.get_values_for_type(x509.IPAddress)
    with pytest.raises(ConfigError, match="'localhost' is reserved"):
        issue_party_cert(tmp_path, "localhost")
    with pytest.raises(ConfigError, match="reserved"):
        certs.check_party_name("localhost")
