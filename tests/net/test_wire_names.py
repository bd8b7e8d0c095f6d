"""Wire message names are part of the protocol: they stay stable whatever the code's layout.

Every registered message is named ``<protocol>.<Message>`` after the protocol package that declares
it (``PROTOCOL.name``), or ``job.`` (the node's job messages), ``transport.`` (the gRPC framing) or
``test.`` (messages declared by tests). The golden table below pins every name and its fields for
the current protocol versions, so that moving or renaming a class cannot change the wire by accident.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from types import ModuleType

import misuan.net.grpc_channel
import misuan.net.grpc_framing
import misuan.net.grpc_server
import misuan.node.anchoring
import misuan.node.runner
import misuan.protocols
from misuan.net import wire

# Changing a message (its name, a field, or what a field means) changes its protocol: bump the
# protocol's version (``PROTOCOL`` in its messages.py) and update that protocol's row here, version
# and fields together, so that peers on the old version are refused rather than misread.
# ``job`` and ``transport`` have no ProtocolInfo: job.Versions's shape is frozen for good (it is how
# versions are compared), and the framing is versioned by its gRPC service name (misuan.transport.v1).
GOLDEN: dict[str, tuple[int | None, dict[str, list[str]]]] = {
    "describe": (1, {
        "describe.SharedSummaries": ["n_rows", "columns", "levels", "missing_rate", "mean", "std", "quantiles"],
    }),
    "kkrt": (3, {  # v2: digests keyed per session (CBC-MAC of an injective encoding); v3: Resume (spilled runs)
        "kkrt.Hello": ["version", "normalization", "reveal", "n_rows", "code_bits", "hashes", "stat_bits", "nonce"],
        "kkrt.ReceiverSetup": ["n_bins", "bin_keys", "base_ot", "session"],
        "kkrt.SenderSetup": ["code_keys", "base_ot"],
        "kkrt.Columns": ["start", "columns"],
        "kkrt.Outputs": ["start", "values"],
        "kkrt.Matches": ["positions"],
        "kkrt.Resume": ["token", "done"],
    }),
    "group_sums": (1, {
        "group_sums.EncryptedColumns": ["public_key", "n_columns", "slot_bits", "ciphertexts"],
        "group_sums.GroupSums": ["attributes", "groups", "ciphertexts"],
    }),
    "monitor": (1, {
        "monitor.FeatureStability": ["features", "index", "levels"],
        "monitor.Alerts": ["alerts"],
    }),
    "psi": (1, {
        "psi.Hello": ["version", "group", "normalization", "reveal", "n_rows", "batch_size", "digest_bytes"],
        "psi.BlindedBatch": ["start", "points"],
        "psi.DigestBatch": ["start", "digests"],
    }),
    "serving": (2, {
        "serving.Hello": ["model_id", "own_part", "peer_part"],
        "serving.ScoreRequest": ["seq", "ids"],
        "serving.ScoreReply": ["seq", "known", "trees", "n_leaves", "masks"],
        "serving.PointsReply": ["seq", "known", "names", "points", "features", "short"],
    }),
    "secagg": (1, {
        "secagg.Advertise": ["version", "length", "frac_bits", "max_abs", "context", "share_key", "mask_key"],
        "secagg.KeyList": ["session", "threshold", "parties", "share_keys", "mask_keys"],
        "secagg.Shares": ["to", "ciphertexts"],
        "secagg.Inbox": ["senders", "ciphertexts"],
        "secagg.Masked": ["values"],
        "secagg.Survivors": ["survivors", "dropped"],
        "secagg.Reveal": ["seed_of", "seed_shares", "key_of", "key_shares"],
        "secagg.Total": ["values", "contributors"],
    }),
    "secure_sum": (1, {
        "secure_sum.Share": ["values"],
        "secure_sum.PartialSum": ["values"],
    }),
    "secureboost": (3, {
        "secureboost.Schema": ["n_rows", "feature_names", "n_bins", "monotone"],
        "secureboost.Setup": ["histograms", "public_key", "session"],
        "secureboost.OtBase": ["point"],
        "secureboost.OtPoints": ["points"],
        "secureboost.OtColumns": ["start", "columns"],
        "secureboost.TreeStart": ["tree", "rows", "ciphertexts", "features", "slot_bits", "per_ct", "label_only", "corrections"],
        "secureboost.LevelPlan": ["depth", "node_ids", "positions", "compute"],
        "secureboost.HistogramReply": ["ciphertexts", "shares"],
        "secureboost.SplitRequest": ["nodes", "features", "bins", "default_left"],
        "secureboost.SplitReply": ["left"],
        "secureboost.DecisionRequest": ["purpose", "tree", "n_rows", "mode", "shape"],
        "secureboost.Decisions": ["trees", "nodes", "left"],
        "secureboost.LeafSets": ["trees", "n_leaves", "masks"],
        "secureboost.TrainEnd": ["n_trees", "shape"],
    }),
    "woe": (1, {
        "woe.EncryptedLabels": ["params_fingerprint", "public_key", "n_rows", "n_chunks"],
        "woe.LabelChunk": ["index", "ciphertexts"],
        "woe.BinSums": ["features", "methods", "n_value_bins", "missing_bins", "counts", "sums", "cuts"],
        "woe.MergeDecisions": ["features", "starts"],
        "woe.IvSummary": ["features", "iv"],
    }),
    "job": (None, {
        "job.Versions": ["misuan", "protocols"],
        "job.Hello": ["spec_hash", "completed", "trust"],
        "job.Goodbye": ["completed"],
        "job.HeldAnchor": ["length", "head", "job_id"],
        "job.LedgerAnchor": ["job_id", "signer", "length", "head", "signed_at", "key_kind", "public_key", "signature"],
    }),
    "vertical_lr": (5, {
        "vertical_lr.CommonRows": ["positions"],
        "vertical_lr.Schema": ["n_rows", "n_bins"],
        "vertical_lr.Setup": ["n_rows", "n_bins", "base_rate", "session", "params", "feature_parties", "n_features"],
        "vertical_lr.Kappa": ["kappa"],
        "vertical_lr.MaskSeed": ["seed"],
        "vertical_lr.Gamma": ["gamma"],
        "vertical_lr.BinRows": ["rows"],
        "vertical_lr.WoeTable": ["multipliers"],
        "vertical_lr.OtBase": ["point"],
        "vertical_lr.OtPoints": ["points"],
        "vertical_lr.OtColumns": ["start", "columns"],
        "vertical_lr.RowWords": ["start", "words"],
        "vertical_lr.Products": ["corrections"],
        "vertical_lr.Shares": ["words"],
        "vertical_lr.PartScores": ["names", "points", "features", "short"],
        "vertical_lr.PartnerTable": ["names", "labels", "points"],
    }),
    "transport": (None, {
        "transport.FrameHeader": ["job_id", "sender", "step", "seq", "size"],
        "transport.Hello": ["job_id", "sender"],
    }),
}
# modules outside the protocol packages that declare messages, by the prefix their names carry
_OTHER_DECLARERS = {"job.": (misuan.node.runner, misuan.node.anchoring), "transport.": (misuan.net.grpc_framing,)}
assert misuan.net.grpc_channel and misuan.net.grpc_server  # imported so that any message they declare registers


def _protocol_packages() -> list[ModuleType]:
    found = sorted(m.name for m in pkgutil.iter_modules(misuan.protocols.__path__) if m.ispkg)
    return [importlib.import_module(f"misuan.protocols.{name}") for name in found]


def _expected_prefix(cls: type) -> str:
    """The prefix a message's name must carry, from the module that declares it."""
    module = cls.__module__
    if module.startswith("misuan.protocols."):
        package = importlib.import_module(".".join(module.split(".")[:3]))
        return f"{package.PROTOCOL.name}."
    for prefix, modules in _OTHER_DECLARERS.items():
        if module in {m.__name__ for m in modules}:
            return prefix
    return "test."


def _registered() -> dict[str, type]:
    _protocol_packages()  # every protocol's messages register on import
    return wire.registered_messages()


def test_every_message_name_starts_with_its_protocol() -> None:
    wrong = [
        f"{name} (declared in {cls.__module__}) should start with {_expected_prefix(cls)!r}"
        for name, cls in sorted(_registered().items())
        if not name.startswith(_expected_prefix(cls))
    ]
    assert not wrong, "\n".join(wrong)


def test_protocol_names_are_unique_and_match_their_package() -> None:
    packages = _protocol_packages()
    names = [pkg.PROTOCOL.name for pkg in packages]
    assert len(names) == len(set(names)), names
    assert not {"job", "transport", "test"} & set(names), "a protocol may not take a reserved prefix"


def test_names_fields_and_versions_match_the_golden_table() -> None:
    current = {
        name: [f.name for f in dataclasses.fields(cls)]
        for name, cls in _registered().items()
        if not name.startswith("test.")
    }
    golden = {name: fields for _, messages in GOLDEN.values() for name, fields in messages.items()}
    assert sorted(current) == sorted(golden), (
        f"messages added: {sorted(set(current) - set(golden))}; removed or renamed: {sorted(set(golden) - set(current))}"
        " (a wire change: bump the protocol's version and update GOLDEN)"
    )
    changed = {name: (golden[name], fields) for name, fields in current.items() if fields != golden[name]}
    assert not changed, f"fields changed (golden, now): {changed} (bump the protocol's version and update GOLDEN)"
    versions = {pkg.PROTOCOL.name: pkg.PROTOCOL.version for pkg in _protocol_packages()}
    assert versions == {p: v for p, (v, _) in GOLDEN.items() if v is not None}, (
        "a protocol's version changed or a protocol was added: update its row of GOLDEN to the new messages"
    )
    for protocol, (_, messages) in GOLDEN.items():
        assert all(name.startswith(f"{protocol}.") for name in messages), protocol
