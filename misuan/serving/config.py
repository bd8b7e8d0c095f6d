"""A serving node's configuration (``serve.toml``), one file per node, validated into :class:`ServeConfig`::

    version = 1
    party = "bank"                        # this node; its role comes from its model part
    model = "models/bank_model.json"      # this node's model part, a job's artefact: SecureBoost's model.json
                                          # or the vertical_lr step's scorecard.json
    model_id = "credit-2026-11"           # the version both nodes pin
    peer_model_sha256 = "9eff4da1..."     # the SHA-256 of the peer's model part file
    listen = "0.0.0.0:50061"              # this node's gRPC endpoint (mutual TLS)
    peer = { name = "partner", address = "partner.example.com:50062" }
    tls = { ca = "certs/ca.pem", cert = "certs/bank.pem", key = "certs/bank.key" }
    data_dir = "/var/lib/misuan-serve"    # ledger.sqlite
    features = { csv = "data/bank.csv", id_column = "customer_id" }   # the feature store's source
    normalize = { case = "casefold" }     # the IDs' normalisation, as the job's PSI step did it
    http = "127.0.0.1:8080"               # the bank only: the decision API and the credit officer's page
    deadline_ms = 200                     # the bank only: the longest wait for the partner's answer
    cover = { k = 3, ids = "shared_ids.txt" }   # the bank only, optional: k decoys per applicant, drawn from
                                          # these normalised IDs (the PSI intersection, one per line)
    anchor_every = 1000                   # both nodes the same: signed ledger anchors after the first request
                                          # and every this many

Relative paths resolve against the file's directory. Every mistake is a :class:`ConfigError` naming
the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from misuan.crypto.certs import TlsFiles
from misuan.errors import ConfigError
from misuan.node.spec import parse_address
from misuan.protocols.psi import IdNormalization
from misuan.protocols.serving import is_scorecard
from misuan.toml_files import read_toml

__all__ = ["ServeConfig", "load_serve_config", "model_sha256", "serve_config_text"]


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    party: str
    model: Path
    model_id: str
    peer_model_sha256: str
    listen: str
    peer: str
    peer_address: str
    tls: TlsFiles
    data_dir: Path
    features_csv: Path
    id_column: str
    normalization: IdNormalization
    http: str | None
    deadline_ms: int
    path: Path
    cover_k: int = 0
    cover_ids: Path | None = None
    anchor_every: int = 1000

    @property
    def store_path(self) -> Path:
        return self.data_dir / "features.sqlite"

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    def model_doc(self) -> dict[str, Any]:
        """The model part: a SecureBoost part's ``model``, or a scorecard part (``scorecard.json``) whole."""
        try:
            doc = json.loads(self.model.read_text(encoding="utf-8"))
            return dict(doc) if is_scorecard(doc) else dict(doc["model"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: model: {self.model} is not a model part, SecureBoost's model.json or a "
                              f"scorecard.json ({exc})") from None


def model_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _str(doc: dict[str, Any], key: str, where: str) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{where}{key}: give a non-empty string")
    return v


def load_serve_config(path: str | Path) -> ServeConfig:
    p = Path(path)
    doc = read_toml(p)
    base = p.resolve().parent
    allowed = {"version", "party", "model", "model_id", "peer_model_sha256", "listen", "peer", "tls", "data_dir",
               "features", "normalize", "http", "deadline_ms", "cover", "anchor_every"}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")
    if doc.get("version") != 1:
        raise ConfigError(f"{p}: version: write `version = 1`")
    w = f"{p}: "
    sha = _str(doc, "peer_model_sha256", w)
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ConfigError(f"{w}peer_model_sha256: give the 64 hex digits of the peer's model part's SHA-256")
    peer, tls, feats = doc.get("peer"), doc.get("tls"), doc.get("features")
    if not isinstance(peer, dict) or not isinstance(tls, dict) or not isinstance(feats, dict):
        raise ConfigError(f"{w}peer, tls and features must be tables (see misuan.serving.config)")
    listen = _str(doc, "listen", w)
    parse_address(listen, f"{w}listen", ConfigError)
    peer_address = _str(peer, "address", f"{w}peer.")
    parse_address(peer_address, f"{w}peer.address", ConfigError)
    http = doc.get("http")
    if http is not None:
        parse_address(http, f"{w}http", ConfigError)
    deadline = doc.get("deadline_ms", 200)
    if isinstance(deadline, bool) or not isinstance(deadline, int) or not 1 <= deadline <= 60_000:
        raise ConfigError(f"{w}deadline_ms: give milliseconds from 1 to 60000")
    cover = doc.get("cover", {"k": 0})
    k = cover.get("k") if isinstance(cover, dict) else None
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 9 or (k and not isinstance(cover.get("ids"), str)):
        raise ConfigError(f"{w}cover: write {{ k = 3, ids = \"shared_ids.txt\" }} (k from 0 to 9 decoys per applicant)")
    every = doc.get("anchor_every", 1000)
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= 10**9:
        raise ConfigError(f"{w}anchor_every: give a number of requests from 1 up")
    try:
        norm = IdNormalization(**doc.get("normalize", {}))
    except (TypeError, ValueError, ConfigError) as exc:
        raise ConfigError(f"{w}normalize: {exc}") from None
    return ServeConfig(
        party=_str(doc, "party", w), model=(base / _str(doc, "model", w)).resolve(), model_id=_str(doc, "model_id", w),
        peer_model_sha256=sha, listen=listen, peer=_str(peer, "name", f"{w}peer."), peer_address=peer_address,
        tls=TlsFiles(*((base / _str(tls, k, f"{w}tls.")).resolve() for k in ("ca", "cert", "key"))),
        data_dir=(base / _str(doc, "data_dir", w)).resolve(), features_csv=(base / _str(feats, "csv", f"{w}features.")).resolve(),
        id_column=_str(feats, "id_column", f"{w}features."), normalization=norm, http=http, deadline_ms=deadline, path=p,
        cover_k=k, cover_ids=(base / cover["ids"]).resolve() if k else None, anchor_every=every,
    )


def serve_config_text(
    *, party: str, model: str, model_id: str, peer_model_sha256: str, listen: str, peer: str, peer_address: str,
    tls: tuple[str, str, str], data_dir: str, features_csv: str, id_column: str, normalize_case: str = "casefold",
    http: str | None = None, deadline_ms: int | None = None, cover: tuple[int, str] | None = None, header: str = "",
) -> str:
    """A ``serve.toml`` for :func:`load_serve_config` (paths as given: relative ones resolve against the
    file's directory); ``tls`` is (ca, cert, key), ``cover`` (k, ids file). For demos, tests and benches."""
    def q(v: str) -> str:
        return json.dumps(v)  # a TOML basic string

    lines = [f"# {line}" for line in header.splitlines()] + [
        "version = 1", f"party = {q(party)}", f"model = {q(model)}", f"model_id = {q(model_id)}",
        f"peer_model_sha256 = {q(peer_model_sha256)}", f"listen = {q(listen)}",
        f"peer = {{ name = {q(peer)}, address = {q(peer_address)} }}",
        f"tls = {{ ca = {q(tls[0])}, cert = {q(tls[1])}, key = {q(tls[2])} }}", f"data_dir = {q(data_dir)}",
        f"features = {{ csv = {q(features_csv)}, id_column = {q(id_column)} }}", f"normalize = {{ case = {q(normalize_case)} }}",
    ]
    if http is not None:
        lines.append(f"http = {q(http)}")
    if deadline_ms is not None:
        lines.append(f"deadline_ms = {deadline_ms}")
    if cover is not None:
        lines.append(f"cover = {{ k = {cover[0]}, ids = {q(cover[1])} }}")
    return "\n".join(lines) + "\n"
