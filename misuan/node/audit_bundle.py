"""An auditor's package of one job: ``misuan audit export`` writes it, ``misuan audit verify`` checks it offline.

A bundle is a directory::

    manifest.json                      what the bundle holds: every file with its SHA-256 and size,
                                       each party's dataset fingerprint, signed by the exporting party
    spec.toml                          the job spec every party ran (when given)
    parties/<party>/ledger.json        the party's whole disclosure ledger (``misuan ledger export``)
    parties/<party>/state.json         its job state: status, step hashes, ledger head at the end
    parties/<party>/steps/<step>.json  its outputs of each step
    parties/<party>/artefacts/<step>/  the files its steps wrote: model parts, tables
    reports/<file>                     reports handed to the export (validation, monitoring, ...)

The manifest is signed with the exporting party's ledger key (the key of its ledger anchors: its TLS
certificate's key, or a simulation's node key), over ``b"misuan-audit-bundle-v1\\n"`` and the
manifest's canonical JSON without the signature.

:func:`verify_bundle` proves, without any network and without trusting the exporter's files:

1. every file is the one the signed manifest lists (hash and size), no file is missing or added,
   and the manifest's signature verifies (with ``ca_pem``: under a certificate that CA issued);
2. every party's ledger chain is intact, its anchors table too, every anchor's signature verifies,
   and each party's ledger agrees with the anchors of it that the *other* parties hold (so a party
   that rewrote its own history, and re-hashed it, is caught by its peers' signed anchors);
3. the signer of the manifest is the party whose ledger anchors carry the same key;
4. each state file's ledger head is a row of that party's ledger, and its spec hash is the spec's.

What it cannot prove: that the datasets named are the data the parties used (only their
fingerprints, as the exporter computed them, are signed), that the exporter's key belongs to the
institution it names unless a CA is given, or anything about rows a party never recorded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from misuan import __version__
from misuan.atomic_files import write_atomic
from misuan.audit.ledger import Ledger, judge_anchor, verify_anchor_rows, verify_rows
from misuan.crypto.anchor import AnchorSigner, LedgerAnchor, verify_anchor, verify_signed
from misuan.errors import ConfigError, LedgerError, LedgerTamperedError
from misuan.node.runner import job_dir
from misuan.node.spec import JobSpec, canonical_json, loads_spec

__all__ = ["BundleReport", "export_bundle", "verify_bundle"]

FORMAT, VERSION = "misuan-audit-bundle", 1
_CONTEXT = b"misuan-audit-bundle-v1\n"
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _signed_bytes(manifest: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return _CONTEXT + canonical_json(body).encode("utf-8")


# --- export ---------------------------------------------------------------------------------------
def export_bundle(
    out: Path, *, job_id: str, party_dirs: Mapping[str, Path], signer: AnchorSigner, spec: JobSpec | None = None,
    spec_file: Path | None = None, reports: Sequence[Path] = (),
) -> Path:
    """Write the bundle of job ``job_id`` from each party's directory in ``party_dirs`` into ``out``
    (which must not exist; written under a temporary name and renamed at the end)."""
    if out.exists():
        raise ConfigError(f"{out} already exists: choose a new directory for the bundle")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    files: list[dict[str, Any]] = []

    def add(src: Path, rel: str, kind: str) -> None:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp / rel)
        files.append(_entry(tmp, rel, kind))

    try:
        if spec_file is not None:
            add(spec_file, "spec.toml", "job spec")
        for party, pdir in sorted(party_dirs.items()):
            jdir = job_dir(pdir, job_id)
            if not (jdir / "state.json").is_file():
                raise ConfigError(f"{pdir} holds no job {job_id!r} (no {jdir / 'state.json'})")
            base = f"parties/{party}"
            with Ledger(pdir / "ledger.sqlite") as ledger:
                ledger.export_json(tmp / base / "ledger.json")
            files.append(_entry(tmp, f"{base}/ledger.json", "ledger export"))
            add(jdir / "state.json", f"{base}/state.json", "job state")
            for p in sorted((jdir / "steps").glob("*.json")):
                add(p, f"{base}/steps/{p.name}", "step outputs")
            for p in sorted(x for x in (jdir / "artefacts").rglob("*") if x.is_file() and ".staging-" not in str(x)):
                add(p, f"{base}/artefacts/{p.relative_to(jdir / 'artefacts').as_posix()}", "artefact")
        for r in reports:
            add(r, f"reports/{r.name}", "report")
        manifest: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "job_id": job_id, "misuan": __version__,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "parties": sorted(party_dirs), "spec_hash": spec.shared_hash() if spec is not None else None,
            "datasets": _dataset_fingerprints(spec, party_dirs) if spec is not None else {},
            "files": files,
            "signer": {"party": signer.party, "key_kind": signer.key_kind, "public_key": signer.public_pem},
        }
        manifest["signature"] = signer.sign_payload(_signed_bytes(manifest))
        write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _entry(root: Path, rel: str, kind: str) -> dict[str, Any]:
    p = root / rel
    return {"path": rel, "kind": kind, "sha256": _sha256(p), "bytes": p.stat().st_size}


def _dataset_fingerprints(spec: JobSpec, party_dirs: Mapping[str, Path]) -> dict[str, Any]:
    """Each exported party's dataset: file name, SHA-256 and size, where the file is here to read."""
    out: dict[str, Any] = {}
    for p in spec.parties:
        if p.name in party_dirs and p.dataset is not None and p.dataset.path is not None and p.dataset.path.is_file():
            out[p.name] = {"file": p.dataset.path.name, "sha256": _sha256(p.dataset.path),
                           "bytes": p.dataset.path.stat().st_size}
    return out


# --- verify ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class BundleReport:
    """What :func:`verify_bundle` proved, in sentences, and what it could not."""

    proved: list[str]
    not_proved: list[str]


def _tampered(problem: str) -> LedgerTamperedError:
    return LedgerTamperedError(f"audit bundle: {problem}")


def _load_manifest(root: Path) -> dict[str, Any]:
    try:
        doc = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _tampered(f"cannot read {MANIFEST}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise _tampered(f"{MANIFEST} is not a {FORMAT} v{VERSION} manifest")
    if not isinstance(doc.get("files"), list) or not isinstance(doc.get("signer"), dict):
        raise _tampered(f"{MANIFEST} lacks its file list or its signer")
    return doc


def _check_files(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    listed: list[str] = []
    for f in manifest["files"]:
        rel = f.get("path") if isinstance(f, dict) else None
        if not isinstance(rel, str) or PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
            raise _tampered(f"the manifest lists a path outside the bundle: {rel!r}")
        p = root / rel
        if not p.is_file():
            raise _tampered(f"{rel} is listed in the manifest but missing")
        if p.stat().st_size != f.get("bytes") or _sha256(p) != f.get("sha256"):
            raise _tampered(f"{rel} ({f.get('kind')}) was changed: its SHA-256 is not the one the signed manifest lists")
        listed.append(rel)
    present = {x.relative_to(root).as_posix() for x in root.rglob("*") if x.is_file()} - {MANIFEST}
    extra = sorted(present - set(listed))
    if extra:
        raise _tampered(f"files not in the manifest were added: {extra[:5]}")
    return listed


_PARTY = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # as a job spec's party names


def _parties(manifest: Mapping[str, Any], listed: list[str]) -> list[str]:
    """The manifest's parties: plain names, each with its ledger and state among the listed files."""
    parties = manifest.get("parties")
    if not isinstance(parties, list) or not parties or not all(isinstance(p, str) and _PARTY.match(p) for p in parties):
        raise _tampered("the manifest's parties must be a list of party names")
    for p in parties:
        for name in ("ledger.json", "state.json"):
            if f"parties/{p}/{name}" not in listed:
                raise _tampered(f"party {p}'s {name} is not among the manifest's files")
    return list(parties)


def _ledgers(root: Path, parties: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for party in parties:
        path = root / "parties" / party / "ledger.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != "misuan-ledger" or not doc.get("complete") \
                or doc.get("party") not in (None, party) or not isinstance(doc.get("rows"), list):
            raise _tampered(f"{path.relative_to(root)} is not {party}'s whole ledger export")
        try:
            verify_rows(doc["rows"])
            verify_anchor_rows(doc.get("anchors") or [])
        except LedgerTamperedError as exc:
            raise _tampered(f"{party}'s ledger: {exc}") from None
        out[party] = doc
    return out


def _anchor(row: Mapping[str, Any]) -> LedgerAnchor:
    fields = [f.name for f in dataclasses.fields(LedgerAnchor)]
    return LedgerAnchor(**{k: row[k] for k in fields})


def _check_cross_anchors(ledgers: Mapping[str, dict[str, Any]], ca_pem: bytes | None) -> tuple[list[str], list[str]]:
    """Each party's ledger against the anchors of it that the other parties hold: what that proved, and
    the ledgers (or their tails) no other party's anchor covers, which the bundle cannot vouch for."""
    proved, unanchored = [], []
    for party, doc in ledgers.items():
        held = [(holder, _anchor(a)) for holder, other in ledgers.items() if holder != party
                for a in other.get("anchors") or [] if a.get("signer") == party and a.get("holder") == holder]
        rows = doc["rows"]
        for holder, a in held:
            try:
                verify_anchor(a, signer=party, ca_pem=ca_pem)
                source = f"{party}'s anchor held by {holder} (job {a.job_id!r})"
                judge_anchor(len(rows), rows[a.length - 1]["hash"] if 0 < a.length <= len(rows) else None,
                             a.length, a.head, source)
            except LedgerTamperedError as exc:
                raise _tampered(f"{party}'s ledger: {exc}") from None
        if held:
            newest = max(a.length for _, a in held)
            proved.append(f"{party}'s ledger ({len(rows)} rows) agrees with {len(held)} signed anchor(s) "
                          f"of it held by {sorted({h for h, _ in held})}, the newest at row {newest}")
            if newest < len(rows):
                unanchored.append(f"{party}'s rows after row {newest}: no peer's anchor in the bundle covers them")
        else:
            unanchored.append(f"{party}'s ledger ({len(rows)} rows, chain intact) against a rewrite: no other "
                              "party's anchor of it is in the bundle")
    return proved, unanchored


def _check_spec(root: Path, manifest: Mapping[str, Any], listed: list[str], spec: JobSpec | None) -> None:
    """The bundled spec (and the one given) is the spec whose hash the manifest names."""
    want = manifest.get("spec_hash")
    if "spec.toml" in listed:
        try:
            bundled = loads_spec((root / "spec.toml").read_text(encoding="utf-8"), root, "spec.toml")
        except (OSError, ConfigError) as exc:
            raise _tampered(f"spec.toml does not parse: {exc}") from None
        if bundled.shared_hash() != want:
            raise _tampered("spec.toml is not the spec the manifest's hash names")
    if spec is not None and spec.shared_hash() != want:
        raise _tampered("the spec given is not the spec the manifest's hash names")


def _signer_key_in_anchors(ledgers: Mapping[str, dict[str, Any]], signer: Mapping[str, Any]) -> bool:
    keys = {a.get("public_key") for doc in ledgers.values() for a in doc.get("anchors") or []
            if a.get("signer") == signer.get("party")}
    return signer.get("public_key") in keys


def _check_states(root: Path, manifest: Mapping[str, Any], ledgers: Mapping[str, dict[str, Any]]) -> None:
    for party, doc in ledgers.items():
        state = json.loads((root / "parties" / party / "state.json").read_text(encoding="utf-8"))
        n, head = state.get("ledger_length"), state.get("ledger_head")
        rows = doc["rows"]
        if not isinstance(n, int) or not 0 < n <= len(rows) or rows[n - 1]["hash"] != head:
            raise _tampered(f"{party}'s state.json names ledger head {str(head)[:16]}... at row {n}, "
                            "which is not a row of its ledger")
        if manifest.get("spec_hash") and state.get("spec_hash") != manifest["spec_hash"]:
            raise _tampered(f"{party}'s state.json ran another spec than the bundle's spec.toml")


def verify_bundle(root: Path, *, ca_pem: bytes | None = None, spec: JobSpec | None = None) -> BundleReport:
    """Check the bundle in ``root`` as the module docstring says; raises :class:`LedgerTamperedError`
    naming the first thing that does not hold, else returns what was proved."""
    if not (root / MANIFEST).is_file():
        raise ConfigError(f"{root} is not an audit bundle: it has no {MANIFEST}")
    manifest = _load_manifest(root)
    signer = manifest["signer"]
    try:
        verify_signed(str(signer.get("key_kind")), str(signer.get("public_key")), str(signer.get("party")),
                      _signed_bytes(manifest), str(manifest.get("signature", "")), "the bundle's manifest", ca_pem=ca_pem)
    except LedgerTamperedError as exc:
        raise _tampered(str(exc)) from None
    listed = _check_files(root, manifest)
    _check_spec(root, manifest, listed, spec)
    parties = _parties(manifest, listed)
    try:
        ledgers = _ledgers(root, parties)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSON that is not a ledger export
        raise _tampered(f"a ledger export is malformed: {type(exc).__name__} {exc}") from None
    proved = [f"{len(listed)} files match the manifest signed by {signer.get('party')} "
              f"({'certificate' if signer.get('key_kind') == 'certificate' else 'node key'})"]
    if not _signer_key_in_anchors(ledgers, signer):
        raise _tampered(f"the manifest is signed by a key that none of {signer.get('party')}'s ledger anchors carries")
    proved.append(f"the manifest's key is the key of {signer.get('party')}'s ledger anchors")
    try:
        cross, unanchored = _check_cross_anchors(ledgers, ca_pem)
        _check_states(root, manifest, ledgers)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise _tampered(f"an anchor or a job state is malformed: {type(exc).__name__} {exc}") from None
    proved += cross
    proved.append("every party's job state ends at a row of its ledger" + (" and ran the bundled spec" if manifest.get("spec_hash") else ""))
    not_proved = [*unanchored,
                  "that the datasets were the ones fingerprinted: the fingerprints are the exporter's statement",
                  "anything a party did without recording it in its ledger"]
    if ca_pem is None:
        not_proved.insert(0, "whose keys these are: pass --ca with the institutions' CA certificates to check the "
                             "certificates' issuers (a simulation's node keys have none)")
    return BundleReport(proved, not_proved)


def read_party_signer(party: str, party_dir: Path, tls_cert: Path | None, tls_key: Path | None) -> AnchorSigner:
    """The exporting party's ledger key: its TLS key when given, else its directory's node key."""
    if tls_cert is not None and tls_key is not None:
        return AnchorSigner.from_tls(party, tls_cert.read_bytes(), tls_key.read_bytes())
    if not (party_dir / "anchor_key.pem").is_file():
        raise LedgerError(f"{party_dir} has no anchor key: pass the node's --tls-cert and --tls-key")
    return AnchorSigner.node_key(party, party_dir)
