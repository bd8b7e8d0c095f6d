"""Trust anchors in specs and node configs, the hello's anchor check, certificate lifecycle commands,
and the consent page (escaped, rendered by headless Chromium)."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from misuan.crypto.certs import TlsFiles, create_ca, issue_party_cert
from misuan.crypto.trust import expiry_warnings, file_expiry_warnings, fingerprint, read_deny_list
from misuan.errors import ConfigError, JobSpecError
from misuan.node.consent import preview_job
from misuan.node.runner import JobHello, check_hello
from misuan.node.spec import load_node_config, load_spec
from misuan.node.transport import resolve_trust
from misuan.report.consent_page import render_consent_page
from tests.jobfiles import write_job

ROOT = Path(__file__).resolve().parents[2]


def _misuan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "misuan.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def two_cas(tmp_path: Path) -> Path:
    create_ca(tmp_path / "bank-ca", name="Bank CA")
    create_ca(tmp_path / "partner-ca", name="Partner CA")
    issue_party_cert(tmp_path / "bank-ca", "bank")
    issue_party_cert(tmp_path / "partner-ca", "partner")
    return tmp_path


def test_a_shared_bundle_of_two_cas_without_anchors_is_refused(two_cas: Path) -> None:
    # the report's setup: both CAs in one bundle, no per-party anchors; any CA could vouch for any party
    bundle = two_cas / "bundle.pem"
    bundle.write_bytes((two_cas / "bank-ca" / "ca.pem").read_bytes() + (two_cas / "partner-ca" / "ca.pem").read_bytes())
    spec = load_spec(write_job(two_cas))
    tls = TlsFiles(bundle, two_cas / "bank-ca" / "bank.pem", two_cas / "bank-ca" / "bank.key")
    with pytest.raises(ConfigError, match=r"holds 2 CAs \(CN=Bank CA; CN=Partner CA\) and the spec names no trust anchor"):
        resolve_trust(spec, "bank", tls)


def test_spec_anchors_win_over_node_peers_and_the_hello_compares_them(two_cas: Path) -> None:
    job = write_job(two_cas)
    text = job.read_text().replace(
        'name = "partner"\n', 'name = "partner"\ntrust = { ca = "partner-ca/ca.pem", pin = ["SHA256:' + "AB" * 32 + '"] }\n', 1
    )
    job.write_text(text)
    spec = load_spec(job)
    assert spec.party("partner").trust is not None and spec.party("partner").trust.pins == ("sha256:" + "ab" * 32,)
    (two_cas / "node.toml").write_text(
        'version = 1\nparty = "bank"\nlisten = "127.0.0.1:1"\ndata_dir = "d"\nrevoked = "revoked.txt"\n'
        'tls = { ca = "bank-ca/ca.pem", cert = "bank-ca/bank.pem", key = "bank-ca/bank.key" }\n'
        '[peer.partner]\ntrust = { ca = "bank-ca/ca.pem" }\n'
    )
    node = load_node_config(two_cas / "node.toml")
    anchors = resolve_trust(spec, "bank", node.tls, node)
    assert [c.subject.rfc4514_string() for c in anchors["partner"].cas] == ["CN=Partner CA"]  # the spec's, not the node's
    assert anchors["partner"].revoked == frozenset()  # a deny list nobody wrote yet
    view = {p: a.fingerprints for p, a in anchors.items()}
    ours = JobHello(spec.shared_hash(), [], view)
    other = dict(view, partner=[fingerprint(x509.load_pem_x509_certificate((two_cas / "bank-ca" / "ca.pem").read_bytes()))])
    with pytest.raises(JobSpecError, match=r"partner trusts other anchors than this party for \['partner'\]"):
        check_hello(ours, dataclasses.replace(ours, trust=other), "partner", spec)
    with pytest.raises(ConfigError, match=r"approval: write \"required\""):
        (two_cas / "bad.toml").write_text((two_cas / "node.toml").read_text().replace('revoked = "revoked.txt"', 'approval = "yes"'))
        load_node_config(two_cas / "bad.toml")


def test_revoke_check_and_expiry_warnings(two_cas: Path) -> None:
    (two_cas / "node.toml").write_text(
        'version = 1\nparty = "bank"\nlisten = "127.0.0.1:1"\ndata_dir = "d"\nrevoked = "revoked.txt"\n'
        'tls = { ca = "bank-ca/ca.pem", cert = "bank-ca/bank.pem", key = "bank-ca/bank.key" }\n'
    )
    res = _misuan("certs", "revoke", "partner-ca/partner.pem", "--config", "node.toml", "--reason", "key lost", cwd=two_cas)
    assert res.returncode == 0, res.stderr
    fp = fingerprint(x509.load_pem_x509_certificate((two_cas / "partner-ca" / "partner.pem").read_bytes()))
    assert read_deny_list(two_cas / "revoked.txt") == {fp} and "key lost" in (two_cas / "revoked.txt").read_text()
    res = _misuan("certs", "check", "--config", "node.toml", cwd=two_cas)
    assert res.returncode == 0 and "revoked fingerprints: 1" in res.stdout and "warning" not in res.stdout
    res = _misuan("certs", "check", "--config", "node.toml", "--days", "900", "--strict", cwd=two_cas)
    assert res.returncode == 2 and "bank.pem" in res.stdout and "expires on" in res.stdout  # node certs last 825 days

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = datetime.datetime.now(datetime.timezone.utc)
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
           .serial_number(1).not_valid_before(now - datetime.timedelta(days=400)).not_valid_after(now - datetime.timedelta(days=1))
           .sign(key, hashes.SHA256()))
    assert expiry_warnings([("old CA", old)])[0].startswith("old CA: CN=old expired on")
    (two_cas / "old.pem").write_bytes(old.public_bytes(serialization.Encoding.PEM))
    assert "expired" in file_expiry_warnings([("peer CA", two_cas / "old.pem")])[0]


def _preview_doc(two_cas: Path) -> dict:
    spec = load_spec(write_job(two_cas))
    doc = preview_job(spec, "partner").as_dict()
    doc["parties"][0]["name"] = "<script>alert(1)</script>"
    return doc


def test_the_consent_page_shows_what_the_party_sends_and_learns_escaped(two_cas: Path) -> None:
    html = render_consent_page(_preview_doc(two_cas), submitted_at="2026-11-30")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "What partner sends" in html and "What partner learns" in html
    assert "sum of all parties&#x27; vectors" in html and "misuan node approve job-1" in html


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no headless Chromium installed (apt-get install chromium)",
)
def test_headless_chromium_renders_the_consent_page(two_cas: Path) -> None:
    html = two_cas / "consent.html"
    html.write_text(render_consent_page(_preview_doc(two_cas)))
    script = ROOT / "scripts" / "screenshot_report.py"
    spec = importlib.util.spec_from_file_location("screenshot_report", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = module.screenshot(html, two_cas / "consent.png", width=1100, height=1400).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 40_000
