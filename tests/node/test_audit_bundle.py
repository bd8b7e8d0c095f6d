"""The auditor's package: ``misuan audit export`` of a finished job, ``misuan audit verify`` catching
tampering with every kind of file it holds, and an insider who re-signs a rewritten history."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import misuan.api as ms
from misuan.audit.ledger import GENESIS_HASH, row_hash
from misuan.cli import main as cli
from misuan.crypto.anchor import AnchorSigner
from misuan.errors import LedgerTamperedError
from misuan.node.audit_bundle import MANIFEST, _signed_bytes, export_bundle, verify_bundle

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "horizontal" / "job.toml"
JOB = "example-horizontal"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("audit") / "work"
    ms.simulate(EXAMPLE, workdir=work)
    (work / "validation.html").write_text("<html><body>validation report</body></html>")
    return work


@pytest.fixture
def bundle(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    code = cli(["audit", "export", "--job", JOB, "--workdir", str(finished), "--as", "lender-a", "--spec", str(EXAMPLE),
                "--report", str(finished / "validation.html"), "--out", str(out)])
    assert code == 0
    return out


def test_an_exported_bundle_verifies_and_says_what_it_proved(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    kinds = {f["kind"] for f in manifest["files"]}
    assert kinds == {"job spec", "ledger export", "job state", "step outputs", "artefact", "report"}
    assert set(manifest["datasets"]) == {"lender-a", "lender-b", "lender-c", "lender-d"}  # hub holds none
    assert (bundle / "parties" / "hub" / "artefacts" / "scorecard" / "scorecard.json").is_file()
    assert cli(["audit", "verify", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "lender-a's ledger" in out and "agrees with 4 signed anchor(s)" in out and "not proved: whose keys" in out


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2))


TAMPERS: list[tuple[str, Callable[[Path], None], str]] = [
    ("spec", lambda b: (b / "spec.toml").write_text((b / "spec.toml").read_text().replace("min_iv = 0.1", "min_iv = 0.0")),
     r"spec.toml \(job spec\) was changed"),
    ("ledger row", lambda b: _edit_json(b / "parties/lender-b/ledger.json", lambda d: d["rows"][3].update(recipient="x")),
     r"parties/lender-b/ledger.json \(ledger export\) was changed"),
    ("state", lambda b: _edit_json(b / "parties/hub/state.json", lambda d: d.update(status="failed")),
     r"parties/hub/state.json \(job state\) was changed"),
    ("step outputs", lambda b: _edit_json(b / "parties/lender-c/steps/scorecard.json", lambda d: d["outputs"].update(intercept=0.0)),
     r"parties/lender-c/steps/scorecard.json \(step outputs\) was changed"),
    ("model part", lambda b: (b / "parties/hub/artefacts/boosting/model.json").write_text("{}"),
     r"parties/hub/artefacts/boosting/model.json \(artefact\) was changed"),
    ("report", lambda b: (b / "reports/validation.html").write_text("<html>all fine</html>"), r"reports/validation.html \(report\) was changed"),
    ("file removed", lambda b: (b / "parties/lender-d/steps/boosting.json").unlink(), r"boosting.json is listed in the manifest but missing"),
    ("file added", lambda b: (b / "parties/lender-d/extra.csv").write_text("id\n1\n"), r"files not in the manifest were added"),
    ("manifest hash", lambda b: _edit_json(b / MANIFEST, lambda d: d["files"][0].update(sha256="0" * 64)),
     r"the bundle's manifest does not verify"),
]


@pytest.mark.parametrize("how, message", [(t[1], t[2]) for t in TAMPERS], ids=[t[0] for t in TAMPERS])
def test_tampering_with_any_file_kind_is_caught(bundle: Path, how: Callable[[Path], None], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    how(bundle)
    with pytest.raises(LedgerTamperedError, match=message):
        verify_bundle(bundle)
    assert cli(["audit", "verify", str(bundle)]) == LedgerTamperedError.exit_code
    assert "misuan: error: audit bundle:" in capsys.readouterr().err


def _resign(bundle: Path, signer: AnchorSigner) -> None:
    """Recompute the manifest's hashes and sign it: what someone holding ``signer``'s key can do."""
    from misuan.node.audit_bundle import _sha256

    doc = json.loads((bundle / MANIFEST).read_text())
    for f in doc["files"]:
        f["sha256"], f["bytes"] = _sha256(bundle / f["path"]), (bundle / f["path"]).stat().st_size
    doc["signer"] = {"party": signer.party, "key_kind": signer.key_kind, "public_key": signer.public_pem}
    doc["signature"] = signer.sign_payload(_signed_bytes(doc))
    (bundle / MANIFEST).write_text(json.dumps(doc))


def test_a_stranger_who_re_signs_the_manifest_is_caught(bundle: Path, tmp_path: Path) -> None:
    (bundle / "parties/hub/state.json").write_text((bundle / "parties/hub/state.json").read_text().replace("completed", "done"))
    _resign(bundle, AnchorSigner.node_key("lender-a", tmp_path / "stranger"))
    with pytest.raises(LedgerTamperedError, match="signed by a key that none of lender-a's ledger anchors carries"):
        verify_bundle(bundle)


def test_an_insider_who_rewrites_its_history_and_re_signs_is_caught_by_its_peers_anchors(
    bundle: Path, finished: Path,
) -> None:
    """lender-a edits a row of its own ledger, recomputes every hash after it and signs the manifest
    with its real key: the anchors the other lenders hold of lender-a's ledger give it away."""
    path = bundle / "parties/lender-a/ledger.json"
    doc = json.loads(path.read_text())
    doc["rows"][2]["what"] = "nothing at all"
    prev = GENESIS_HASH
    for row in doc["rows"]:
        row["prev_hash"] = prev
        row["hash"] = prev = row_hash(row)
    path.write_text(json.dumps(doc))
    _resign(bundle, AnchorSigner.node_key("lender-a", finished / "lender-a"))
    with pytest.raises(LedgerTamperedError, match=r"lender-a's ledger: the ledger was rewritten: its row #\d+"):
        verify_bundle(bundle)


def test_export_refuses_an_existing_directory_and_a_job_it_lacks(finished: Path, tmp_path: Path) -> None:
    signer = AnchorSigner.node_key("lender-a", finished / "lender-a")
    (tmp_path / "b").mkdir()
    with pytest.raises(Exception, match="already exists"):
        export_bundle(tmp_path / "b", job_id=JOB, party_dirs={"lender-a": finished / "lender-a"}, signer=signer)
    with pytest.raises(Exception, match="holds no job 'nope'"):
        export_bundle(tmp_path / "c", job_id="nope", party_dirs={"lender-a": finished / "lender-a"}, signer=signer)
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".c.partial-*"))
    shutil.rmtree(tmp_path / "b")


def test_a_re_signed_manifest_cannot_name_paths_outside_or_another_spec(bundle: Path, finished: Path) -> None:
    signer = AnchorSigner.node_key("lender-a", finished / "lender-a")
    _edit_json(bundle / MANIFEST, lambda d: d.update(parties=["../../etc"]))
    _resign(bundle, signer)
    with pytest.raises(LedgerTamperedError, match="parties must be a list of party names"):
        verify_bundle(bundle)
    _edit_json(bundle / MANIFEST, lambda d: d.update(parties=["hub", "lender-a", "lender-b", "lender-c", "lender-d"]))
    (bundle / "spec.toml").write_text((bundle / "spec.toml").read_text().replace("min_iv = 0.1", "min_iv = 0.0"))
    _resign(bundle, signer)  # the insider re-signs a bundle whose spec is not the one the parties ran
    with pytest.raises(LedgerTamperedError, match="spec.toml is not the spec the manifest's hash names"):
        verify_bundle(bundle)


def test_a_bundle_of_one_party_says_what_it_cannot_vouch_for(finished: Path, tmp_path: Path) -> None:
    signer = AnchorSigner.node_key("hub", finished / "hub")
    export_bundle(tmp_path / "b", job_id=JOB, party_dirs={"hub": finished / "hub"}, signer=signer)
    report = verify_bundle(tmp_path / "b")
    assert any("hub's ledger" in line and "no other party's anchor" in line for line in report.not_proved)
