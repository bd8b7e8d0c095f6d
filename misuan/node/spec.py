"""Job specs and node configs: TOML files validated into frozen dataclasses.

A job spec is one file that every party runs unchanged, each with its own identity
(``misuan run job.toml --as bank`` or the ``party`` of its node config); no central driver sees
anyone's data. Relative paths are resolved against the spec file's directory, and each party only
opens its own dataset and TLS files. Example::

    version = 1

    [job]
    id = "credit-2026-11"
    timeout_s = 600                        # optional: how long to wait for a peer's message

    [[party]]
    name = "bank"
    role = "label_party"                   # exactly one label_party; the others are feature_party
    address = "bank.example.com:50051"     # where its node listens
    tls = { ca = "certs/ca.pem", cert = "certs/bank.pem", key = "certs/bank.key" }  # optional
    trust = { ca = "certs/bank-ca.pem" }   # optional: the CA(s) that may vouch for "bank" (two in a rollover),
                                           # pin = ["sha256:..."] to accept only those certificates
    dataset = { path = "data/bank.csv", id_column = "customer_id", label_column = "default_90d" }

    [[party]]
    name = "partner"
    role = "feature_party"
    address = "partner.example.com:50051"
    dataset = { path = "data/partner.csv", id_column = "customer_id", features = ["income", "age"] }
    # or a Parquet/Arrow file, or postgres = "postgresql://..." with table or query (misuan.node.sources);
    # stream = true: checked a chunk at a time into columns on disk (misuan.node.column_store)

    [[step]]
    kind = "secure_sum"                    # a kind of misuan.node.steps.STEPS (`misuan params`)
    name = "totals"                        # optional; defaults to the kind; unique in the job
    parties = ["bank", "partner"]          # optional; defaults to every party
    params = { columns = ["balance"] }

A horizontal job (several lenders with the same columns on different customers, each with its own
labels) has three or more parties of role ``data_party`` and one ``aggregator``, which holds no
dataset and learns only the sums of secure aggregation (:mod:`misuan.protocols.secagg`)::

    [[party]]
    name = "lender-a"
    role = "data_party"                    # its own customers and labels
    address = "lender-a.example.com:50051"
    dataset = { path = "data/lender-a.csv", id_column = "customer_id", label_column = "default" }

    [[party]]
    name = "hub"
    role = "aggregator"                    # no dataset
    address = "hub.example.com:50051"

A node config (``node.toml``) names one institution's node::

    version = 1
    party = "bank"
    listen = "0.0.0.0:50051"
    data_dir = "/var/lib/misuan"           # ledger.sqlite, inbox/ and jobs/<job_id>/ live here
    tls = { ca = "certs/ca.pem", cert = "certs/bank.pem", key = "certs/bank.key" }
    revoked = "certs/revoked.txt"          # optional deny list: one certificate fingerprint per line
    approval = "required"                  # optional: "required" (default) or "auto" (no operator consent)

    [peer.partner]                         # optional: a peer's trust anchors when a spec names none
    trust = { ca = "certs/partner-ca.pem" }

Trust: a party's certificate is accepted only when it chains to that party's own anchors: its
``trust`` in the spec, else the node's ``[peer.NAME]``, else the node's ``tls.ca`` (allowed only
while that file holds a single CA, so one institution's CA cannot vouch for another's party).

Every mistake raises :class:`JobSpecError` (or :class:`ConfigError` for node configs) naming the
field, e.g. ``party[2] 'partner'.dataset.id_column``, and saying what to write instead. A missing
dataset file is a :class:`DataError` raised by :meth:`JobSpec.check_local`; the file's contents are
checked by :mod:`misuan.node.data` before a party connects to anyone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from misuan.crypto.certs import TlsFiles
from misuan.crypto.pool import checked_compute
from misuan.crypto.trust import parse_fingerprint
from misuan.errors import ConfigError, DataError, JobSpecError
from misuan.net.protocol import AGGREGATOR, DATA_PARTY, FEATURE_PARTY, LABEL_PARTY, ROLES
from misuan.node.dataset_spec import DatasetSpec, parse_dataset
from misuan.node.spec_fields import file_path, only_keys, sub_table
from misuan.protocols.secagg.params import MAX_PARTIES, MIN_PARTIES
from misuan.toml_files import parse_toml, read_toml

__all__ = [
    "ROLES",
    "SPEC_VERSION",
    "DatasetSpec",
    "JobSpec",
    "NodeConfig",
    "PartySpec",
    "StepSpec",
    "TrustSpec",
    "load_node_config",
    "load_spec",
    "loads_spec",
    "parse_address",
    "parse_spec",
]

SPEC_VERSION = 1
# "all": the discloser of joint results; "localhost": a host name many certificates carry
RESERVED_PARTY_NAMES = ("all", "localhost")
RESERVED_STEP_NAMES = ("job",)  # the runner's versions, hello and goodbye travel as steps "job/versions", "job/hello", "job/goodbye"

# names become directory and file names and certificate subjects: keep them plain
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PARTY_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # as misuan.crypto.certs requires
_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")


@dataclasses.dataclass(frozen=True)
class TrustSpec:
    """Where a party's trust anchors are named: CA files (each may hold several) and pinned fingerprints."""

    ca: tuple[Path, ...]
    pins: tuple[str, ...]
    where: str  # e.g. "party[2] 'partner'.trust", for messages


@dataclasses.dataclass(frozen=True)
class PartySpec:
    name: str
    role: str
    address: str
    dataset: DatasetSpec | None  # None only for the aggregator of a horizontal job
    tls: TlsFiles | None
    trust: TrustSpec | None = None

    @property
    def host(self) -> str:
        return parse_address(self.address, "address")[0]

    @property
    def port(self) -> int:
        return parse_address(self.address, "address")[1]


@dataclasses.dataclass(frozen=True)
class StepSpec:
    name: str
    kind: str
    parties: tuple[str, ...]
    params: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class JobSpec:
    version: int
    job_id: str
    parties: tuple[PartySpec, ...]
    steps: tuple[StepSpec, ...]
    timeout_s: float
    base_dir: Path  # where relative paths were resolved from

    @property
    def party_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parties)

    def party(self, name: str) -> PartySpec:
        for p in self.parties:
            if p.name == name:
                return p
        raise JobSpecError(f"party {name!r} is not in job {self.job_id!r}; its parties are {list(self.party_names)}")

    @property
    def horizontal(self) -> bool:
        """Whether the parties are data parties and an aggregator (else a label party and feature parties)."""
        return any(p.role == AGGREGATOR for p in self.parties)

    @property
    def label_party(self) -> PartySpec:
        """The label party of a vertical job."""
        if self.horizontal:
            raise JobSpecError(f"job {self.job_id!r} is horizontal: it has data parties and an aggregator, no label_party")
        return next(p for p in self.parties if p.role == LABEL_PARTY)

    @property
    def aggregator(self) -> str:
        """The aggregator of a horizontal job."""
        names = [p.name for p in self.parties if p.role == AGGREGATOR]
        if not names:
            raise JobSpecError(f"job {self.job_id!r} is vertical: it has no aggregator")
        return names[0]

    @property
    def data_parties(self) -> list[str]:
        """The data parties of a horizontal job, in the spec's order."""
        return [p.name for p in self.parties if p.role == DATA_PARTY]

    def shared_hash(self) -> str:
        """SHA-256 of what every party must agree on: job id, party names and roles, and steps.

        Local matters (dataset paths, TLS files, addresses as one site sees them) are left out, so
        institutions may edit those in their copy; the runner compares this hash with every peer.
        """
        doc = {
            "version": self.version,
            "job_id": self.job_id,
            "parties": [[p.name, p.role] for p in self.parties],
            "steps": [[s.name, s.kind, list(s.parties), dict(s.params)] for s in self.steps],
        }
        return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()

    def check_local(self, party: str) -> None:
        """Check that ``party``'s dataset file exists here (:class:`DataError`); TLS files are checked
        where they are chosen (:func:`misuan.node.transport.resolve_tls`)."""
        idx = self.party_names.index(self.party(party).name)
        p = self.parties[idx]
        where = f"party[{idx + 1}] {p.name!r}"
        if p.dataset is not None and p.dataset.path is not None and not p.dataset.path.is_file():
            raise DataError(f"{where}.dataset.path: dataset file {p.dataset.path} does not exist")


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    party: str
    listen: str
    data_dir: Path
    tls: TlsFiles
    path: Path
    peers: Mapping[str, TrustSpec] = dataclasses.field(default_factory=dict)
    revoked: Path | None = None
    approval: Literal["required", "auto"] = "required"
    compute: str = "local"  # where this party's worker pools run: "local" or "ray:<address>" (misuan.crypto.pool)

    def certificate_files(self) -> list[tuple[str, Path]]:
        """Every certificate file this node relies on, named for messages: its own, its CA file, its peers' anchors."""
        files = [("this node's certificate", self.tls.cert), ("this node's CA file", self.tls.ca)]
        return files + [(f"the anchor of peer {name}", f) for name, trust in self.peers.items() for f in trust.ca]

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    @property
    def inbox(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"


def check_tls_exist(tls: TlsFiles, where: str) -> None:
    for field in ("ca", "cert", "key"):
        p: Path = getattr(tls, field)
        if not p.is_file():
            raise ConfigError(f"{where}.{field}: TLS file {p} does not exist (create it with `misuan certs init`)")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# --- loading -------------------------------------------------------------------------------------
def load_spec(path: str | os.PathLike[str]) -> JobSpec:
    """Read and validate a job spec file; relative paths resolve against its directory."""
    p = Path(path)
    doc = read_toml(p, error=JobSpecError)
    try:
        return parse_spec(doc, p.resolve().parent)
    except JobSpecError as exc:
        raise JobSpecError(f"{p}: {exc}") from None


def loads_spec(text: str, base_dir: str | os.PathLike[str], source: str = "spec") -> JobSpec:
    """Validate a spec given as TOML text (relative paths against ``base_dir``)."""
    doc = parse_toml(text, source, JobSpecError)
    try:
        return parse_spec(doc, base_dir)
    except JobSpecError as exc:
        raise JobSpecError(f"{source}: {exc}") from None


def parse_spec(doc: Mapping[str, Any], base_dir: str | os.PathLike[str] = ".") -> JobSpec:
    """Validate a parsed spec (a TOML document or an equivalent dict)."""
    base = Path(base_dir).resolve()
    if not isinstance(doc, Mapping):
        raise JobSpecError(f"a job spec must be a table, not {type(doc).__name__}")
    only_keys(doc, "the spec's top level", {"version", "job", "party", "step"})
    version = doc.get("version")
    if version != SPEC_VERSION:
        raise JobSpecError(f"version: this misuan reads spec version {SPEC_VERSION}; write `version = 1` (got {version!r})")
    job = sub_table(doc, "job", "the spec's top level", required=True)
    only_keys(job, "job", {"id", "timeout_s"})
    job_id = _name(job.get("id"), "job.id", "a job id")
    timeout_s = job.get("timeout_s", 600)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= 7 * 86400:
        raise JobSpecError(f"job.timeout_s: give seconds between 0 and 604800, not {timeout_s!r}")

    raw_parties = doc.get("party")
    if not isinstance(raw_parties, list) or len(raw_parties) < 2:
        raise JobSpecError("party: a job needs at least two [[party]] tables (each with name, role, address, dataset)")
    parties: list[PartySpec] = []
    for i, raw in enumerate(raw_parties, start=1):
        party = _party(raw, i, base)
        if party.name in {p.name for p in parties}:
            raise JobSpecError(f"party[{i}].name: party name {party.name!r} is used twice; give each party its own name")
        parties.append(party)
    _check_roles(parties)
    names = tuple(p.name for p in parties)

    raw_steps = doc.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise JobSpecError("step: a job needs at least one [[step]] table with a kind, e.g. kind = \"psi\"")
    steps: list[StepSpec] = []
    for i, raw in enumerate(raw_steps, start=1):
        step = _step(raw, i, names)
        if step.name in {s.name for s in steps}:
            raise JobSpecError(f"step[{i}].name: step name {step.name!r} is used twice; give the step a unique name")
        steps.append(step)
    return JobSpec(SPEC_VERSION, job_id, tuple(parties), tuple(steps), float(timeout_s), base)


def _check_roles(parties: list[PartySpec]) -> None:
    """A vertical job: one label_party and feature_parties; a horizontal one: one aggregator and
    MIN_PARTIES to MAX_PARTIES data_parties (secure aggregation hides a party's vector only among
    at least three); never the two mixed."""
    by_role: dict[str, list[str]] = {r: [p.name for p in parties if p.role == r] for r in ROLES}
    vertical = by_role[LABEL_PARTY] + by_role[FEATURE_PARTY]
    horizontal = by_role[DATA_PARTY] + by_role[AGGREGATOR]
    if vertical and horizontal:
        raise JobSpecError(
            f"party.role: a job is vertical (label_party and feature_party) or horizontal (data_party and aggregator), "
            f"not both; {vertical} and {horizontal} mix them"
        )
    if vertical and len(by_role[LABEL_PARTY]) != 1:
        raise JobSpecError(
            f"party.role: exactly one party must have role = \"label_party\"; found {len(by_role[LABEL_PARTY])} "
            f"({by_role[LABEL_PARTY]})"
        )
    if horizontal and len(by_role[AGGREGATOR]) != 1:
        raise JobSpecError(
            f"party.role: a horizontal job has exactly one party with role = \"aggregator\"; found "
            f"{len(by_role[AGGREGATOR])} ({by_role[AGGREGATOR]})"
        )
    if horizontal and not MIN_PARTIES <= len(by_role[DATA_PARTY]) <= MAX_PARTIES:
        raise JobSpecError(
            f"party.role: a horizontal job needs {MIN_PARTIES} to {MAX_PARTIES} parties with role = \"data_party\" "
            f"(with two, each would learn the other's data from the sum); found {len(by_role[DATA_PARTY])}"
        )


def _party(raw: Any, i: int, base: Path) -> PartySpec:
    where = f"party[{i}]"
    if not isinstance(raw, Mapping):
        raise JobSpecError(f"{where}: must be a table ([[party]])")
    name = _party_name(raw.get("name"), f"{where}.name", JobSpecError)
    if name in RESERVED_PARTY_NAMES:
        raise JobSpecError(f"{where}.name: {name!r} is reserved; choose another party name")
    where = f"{where} {name!r}"
    only_keys(raw, where, {"name", "role", "address", "tls", "trust", "dataset"})
    role = raw.get("role")
    if role not in ROLES:
        raise JobSpecError(f"{where}.role: must be one of {list(ROLES)}, not {role!r}")
    address = _address(raw.get("address"), f"{where}.address", JobSpecError)
    tls = _tls(raw["tls"], f"{where}.tls", base, JobSpecError) if "tls" in raw else None
    trust = _trust(raw["trust"], f"{where}.trust", base, JobSpecError) if "trust" in raw else None
    if role == AGGREGATOR:
        if "dataset" in raw:
            raise JobSpecError(f"{where}.dataset: the aggregator holds no data and learns only sums; remove its dataset")
        return PartySpec(name, role, address, None, tls, trust)
    return PartySpec(name, role, address, parse_dataset(raw, where, role, base), tls, trust)


def _step(raw: Any, i: int, party_names: tuple[str, ...]) -> StepSpec:
    where = f"step[{i}]"
    if not isinstance(raw, Mapping):
        raise JobSpecError(f"{where}: must be a table ([[step]])")
    only_keys(raw, where, {"kind", "name", "parties", "params"})
    kind = raw.get("kind")
    # which kinds exist is the step registry's to say (misuan.node.steps.STEPS, checked by the runner)
    if not isinstance(kind, str) or not kind:
        raise JobSpecError(f"{where}.kind: write the step's kind, e.g. kind = \"psi\" (`misuan params` lists them)")
    name = _name(raw.get("name", kind), f"{where}.name", "a step name")
    if name in RESERVED_STEP_NAMES:
        raise JobSpecError(f"{where}.name: {name!r} is reserved for the runner's own messages; choose another name")
    where = f"{where} {name!r}"
    parties = raw.get("parties", list(party_names))
    if not isinstance(parties, list) or len(parties) < 2 or not all(isinstance(p, str) for p in parties):
        raise JobSpecError(f"{where}.parties: give a list of at least two party names, not {parties!r}")
    for p in parties:
        if p not in party_names:
            raise JobSpecError(f"{where}.parties: {p!r} is not a party of this job; parties are {list(party_names)}")
    if len(set(parties)) != len(parties):
        raise JobSpecError(f"{where}.parties: a party is listed twice in {parties}")
    params = raw.get("params", {})
    if not isinstance(params, Mapping):
        raise JobSpecError(f"{where}.params: must be a table, e.g. params = {{ columns = [\"x\"] }}")
    _check_plain(params, f"{where}.params")
    # keep the job's party order whatever order the step lists them in: every party derives the same
    order = tuple(p for p in party_names if p in parties)
    return StepSpec(name, kind, order, dict(params))


def _check_plain(value: Any, where: str) -> None:
    """Params travel into JSON state files and hashes: allow only JSON's types (no TOML dates)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, list):
        for k, v in enumerate(value, start=1):
            _check_plain(v, f"{where}[{k}]")
    elif isinstance(value, float) and value != value:
        raise JobSpecError(f"{where}: nan is not allowed")
    elif not isinstance(value, (str, int, float, bool)):
        raise JobSpecError(f"{where}: values of type {type(value).__name__} are not allowed; use a string or number")


# --- node config ---------------------------------------------------------------------------------
def load_node_config(path: str | os.PathLike[str]) -> NodeConfig:
    """Read and validate a node config (``node.toml``); relative paths resolve against its directory."""
    p = Path(path)
    doc = read_toml(p)
    base = p.resolve().parent
    try:
        only_keys(
            doc, "the node config's top level",
            {"version", "party", "listen", "data_dir", "tls", "peer", "revoked", "approval", "compute"}, ConfigError,
        )
        if doc.get("version") != SPEC_VERSION:
            raise ConfigError(f"version: write `version = {SPEC_VERSION}` (got {doc.get('version')!r})")
        party = _party_name(doc.get("party"), "party", ConfigError)
        listen = _address(doc.get("listen"), "listen", ConfigError)
        data_dir = file_path(doc.get("data_dir"), "data_dir", base, ConfigError)
        if "tls" not in doc:
            raise ConfigError("tls: give tls = { ca = ..., cert = ..., key = ... } (files from `misuan certs init`)")
        tls = _tls(doc["tls"], "tls", base, ConfigError)
        peers = _node_peers(doc.get("peer", {}), base)
        revoked = file_path(doc["revoked"], "revoked", base, ConfigError) if "revoked" in doc else None
        approval = doc.get("approval", "required")
        if approval not in ("required", "auto"):
            raise ConfigError(f"approval: write \"required\" (an operator approves each job) or \"auto\", not {approval!r}")
        compute = checked_compute(doc.get("compute", "local"))
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    return NodeConfig(party, listen, data_dir, tls, p.resolve(), peers, revoked, approval, compute)


def _node_peers(raw: Any, base: Path) -> dict[str, TrustSpec]:
    if not isinstance(raw, Mapping):
        raise ConfigError("peer: write [peer.NAME] tables, each with trust = { ca = ... }")
    out = {}
    for name, table in raw.items():
        where = f"peer.{name}"
        _party_name(name, where, ConfigError)
        if not isinstance(table, Mapping) or "trust" not in table:
            raise ConfigError(f"{where}: write trust = {{ ca = \"certs/{name}-ca.pem\" }}")
        only_keys(table, where, {"trust"}, ConfigError)
        out[name] = _trust(table["trust"], f"{where}.trust", base, ConfigError)
    return out


# --- field helpers -------------------------------------------------------------------------------
def parse_address(value: Any, where: str, err: type[ConfigError] = JobSpecError) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port), or ``err`` naming ``where``."""
    m = _ADDRESS.match(value) if isinstance(value, str) else None
    if m is None or not 1 <= int(m["port"]) <= 65535:
        raise err(f"{where}: write host:port with a port from 1 to 65535, e.g. \"127.0.0.1:50051\" (got {value!r})")
    return m["host"].strip("[]"), int(m["port"])


def _address(value: Any, where: str, err: type[ConfigError]) -> str:
    parse_address(value, where, err)
    return str(value)


def _name(value: Any, where: str, what: str, err: type[ConfigError] = JobSpecError) -> str:
    if value is None:
        raise err(f"{where}: missing; give {what}")
    if not isinstance(value, str) or not _NAME.match(value):
        raise err(f"{where}: {what} uses letters, digits, '_', '-' and '.', starts with a letter or digit (got {value!r})")
    return value


def _party_name(value: Any, where: str, err: type[ConfigError]) -> str:
    # a party name is also the DNS name in its TLS certificate (misuan.crypto.certs)
    if value is None:
        raise err(f"{where}: missing; give a party name")
    if not isinstance(value, str) or not _PARTY_NAME.match(value):
        raise err(f"{where}: a party name is 1-63 lowercase letters, digits or '-', not starting or ending with '-' (got {value!r})")
    if value == "localhost":
        raise err(f"{where}: 'localhost' is reserved (a host name many certificates carry); choose another party name")
    return value


def _trust(value: Any, where: str, base: Path, err: type[ConfigError]) -> TrustSpec:
    if not isinstance(value, Mapping):
        raise err(f"{where}: write {{ ca = \"ca.pem\" }} or {{ ca = [\"old-ca.pem\", \"new-ca.pem\"], pin = [\"sha256:...\"] }}")
    only_keys(value, where, {"ca", "pin"}, err)
    raw_ca = value.get("ca")
    files = [raw_ca] if isinstance(raw_ca, str) else raw_ca
    if not isinstance(files, list) or not files:
        raise err(f"{where}.ca: name the party's CA certificate file(s): a path or a list of paths")
    ca = tuple(file_path(f, f"{where}.ca", base, err) for f in files)
    raw_pins = value.get("pin", [])
    if not isinstance(raw_pins, list):
        raise err(f"{where}.pin: write a list of fingerprints, e.g. [\"sha256:...\"]")
    try:
        pins = tuple(parse_fingerprint(v, f"{where}.pin") for v in raw_pins)
    except ConfigError as exc:
        raise err(str(exc)) from None
    return TrustSpec(ca, pins, where)


def _tls(value: Any, where: str, base: Path, err: type[ConfigError]) -> TlsFiles:
    if not isinstance(value, Mapping):
        raise err(f"{where}: write {{ ca = ..., cert = ..., key = ... }}")
    only_keys(value, where, {"ca", "cert", "key"}, err)
    missing = [k for k in ("ca", "cert", "key") if k not in value]
    if missing:
        raise err(f"{where}: missing {missing}")
    return TlsFiles(*(file_path(value[k], f"{where}.{k}", base, err) for k in ("ca", "cert", "key")))
