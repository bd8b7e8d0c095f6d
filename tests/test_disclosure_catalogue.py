"""Each protocol declares its disclosures once; runs record exactly catalogued entries; the docs agree.

A protocol package's ``DISCLOSURES`` (``protocols/<name>/disclosures.py``) is the one declaration of
what it may reveal, to whom and in what form. Both sides record through it, and ``docs/privacy.md``
shows it, in the protocol's own section, as the table :func:`misuan.net.disclosure.catalogue_table`
writes. The runs below (a credit job, with SecureBoost in both prediction modes, two PSI jobs in
the other reveal modes, a joint describe) between them record every entry of every catalogue, each
entry matched to the catalogue of the protocol its step speaks, with the discloser and recipient the
catalogue declares.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import pkgutil
import re
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

import misuan.protocols
from misuan.api import load_job, simulate
from misuan.datasets import taiwan
from misuan.net.disclosure import CHECK_FAILED, DisclosureKind, catalogue_table
from misuan.net.local import run_local
from misuan.node.steps.registry import STEPS
from misuan.protocols.describe import DescribeParams, joint_describe

PRIVACY_MD = Path(__file__).resolve().parents[1] / "docs" / "privacy.md"
TABLE_HEAD = "| what | form | from | to | when |"
PARTIES = ("bank", "partner")
SECOND_FEATURE_PARTY = "insurer"  # vertical LR's run with two feature parties ("partner" leads)
ROLES = {"bank": "label_party", "partner": "feature_party", SECOND_FEATURE_PARTY: "feature_party"}
# recipients of symmetric protocols: one of the step's parties other than the discloser ("if it
# learns the intersection": one that learns it, in this run's reveal mode)
OTHER = ("the other party", "each peer")
LEARNER = "the other party, if it learns the intersection"


def _protocol_packages() -> list[ModuleType]:
    found = [m.name for m in pkgutil.iter_modules(misuan.protocols.__path__) if m.ispkg]
    return [importlib.import_module(f"misuan.protocols.{name}") for name in sorted(found)]


def _catalogue() -> dict[tuple[str, str, str], DisclosureKind]:
    return {(k.protocol, k.what, k.form): k for pkg in _protocol_packages() for k in pkg.DISCLOSURES}


def test_every_protocol_is_a_package_with_a_catalogue() -> None:
    loose = [m.name for m in pkgutil.iter_modules(misuan.protocols.__path__) if not m.ispkg]
    assert not loose, f"protocol code outside a protocol package: {loose}"
    for pkg in _protocol_packages():
        kinds = pkg.DISCLOSURES
        assert kinds and all(isinstance(k, DisclosureKind) for k in kinds), pkg.__name__
        assert {k.protocol for k in kinds} == {pkg.PROTOCOL.name}, pkg.__name__
        whats = [(k.what, k.form) for k in kinds]
        assert len(whats) == len(set(whats)), f"{pkg.__name__} declares an entry twice"
        assert "Leakage" in (pkg.__doc__ or "") or "leakage" in (pkg.__doc__ or ""), f"{pkg.__name__}: state the leakage"


# --- docs/privacy.md ------------------------------------------------------------------------------
def _sections(text: str) -> dict[str, str]:
    """The document's "## " sections by heading."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    return {part.split("\n", 1)[0]: part for part in parts[1:]}


def _catalogue_tables(section: str) -> list[str]:
    """Every catalogue table of a section (its lines from the header row to the last row)."""
    tables, lines = [], section.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == TABLE_HEAD:
            rows = []
            for row in lines[i:]:
                if not row.startswith("|"):
                    break
                rows.append(row.rstrip())
            tables.append("\n".join(rows) + "\n")
    return tables


def test_privacy_md_shows_each_catalogue_in_its_protocols_section_and_nothing_else() -> None:
    sections = _sections(PRIVACY_MD.read_text(encoding="utf-8"))
    owned = set()
    for pkg in _protocol_packages():
        name = pkg.PROTOCOL.name
        mine = [h for h in sections if f"`protocols/{name}/" in h]
        assert len(mine) == 1, f"docs/privacy.md needs one section on protocols/{name}/ (has {mine})"
        owned.add(mine[0])
        section = sections[mine[0]]
        assert "catalogue" in section.lower(), f"the section on {name} should say where its catalogue lives"
        expected = catalogue_table(pkg.DISCLOSURES)
        assert _catalogue_tables(section) == [expected], (
            f"the catalogue table of {name} in docs/privacy.md differs from {pkg.__name__}.DISCLOSURES; paste:\n{expected}"
        )
    stray = {h: _catalogue_tables(s) for h, s in sections.items() if h not in owned and _catalogue_tables(s)}
    assert not stray, f"catalogue tables outside a protocol's section: {stray}"


# --- runs -----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Recorded:
    """One ledger entry of one run, with what the run says about its step."""

    run: str
    ledger: str  # the party whose ledger holds it
    protocols: frozenset[str]  # those the step speaks (its kind's, in a job)
    learners: frozenset[str]  # the parties that learn the PSI intersection in this run
    entry: Any  # a LedgerEntry or a Disclosure: step, discloser, recipient, what, form, shape
    spec: Path | None = None  # the job spec of a job run


_CREDIT_JOB = """\
    [[step]]
    kind = "psi"
    params = {{ reveal = "both", normalize = {{ case = "casefold" }} }}
    [[step]]
    kind = "woe"
    params = {{ n_bins = 4, min_bin_size = 20, share_edges = true, share_iv = true, key_bits = 1024, min_key_bits = 1024, workers = 1 }}
    [[step]]
    kind = "woe"
    name = "woe_tree"
    params = {{ method = "tree", n_bins = 3, min_bin_size = 20, key_bits = 1024, min_key_bits = 1024, workers = 1 }}
    [[step]]
    kind = "secureboost"
    params = {{ n_estimators = 2, max_depth = 2, subsample = 0.8, test_fraction = 0.25, n_jobs = 1, histograms = "ot" }}
    [[step]]
    kind = "evaluate"
    [[step]]
    kind = "secureboost"
    name = "secureboost_nodes"
    params = {{ n_estimators = 1, max_depth = 2, test_fraction = 0.25, n_jobs = 1, prediction_mode = "nodes", histograms = "he" }}
    [[step]]
    kind = "evaluate"
    name = "evaluate_nodes"
    params = {{ model_step = "secureboost_nodes" }}
    [[step]]
    kind = "secure_sum"
    params = {{ columns = {{ bank = ["LIMIT_BAL"], partner = ["AGE"] }}, count_rows = true }}
    """

_PSI_JOB = """\
    [[step]]
    kind = "psi"
    params = {{ reveal = "{reveal}", protocol = "{protocol}", normalize = {{ case = "casefold" }}, workers = 1 }}
    """

_SCORECARD_JOB = """\
    [[step]]
    kind = "psi"
    params = {{ reveal = "both", normalize = {{ case = "casefold" }} }}
    [[step]]
    kind = "vertical_lr"
    params = {{ n_bins = 3, max_iter = 2, test_fraction = 0.25, partner_table = "points", binning = "monotonic", encoding = "woe" }}
    """

# the scorecard with two feature parties: a PSI step between the bank and each, the training on the
# customers all three share (the insurer holds four in five of the partner's shared customers)
_SCORECARD_THREE_JOB = """\
    [[party]]
    name = "insurer"
    role = "feature_party"
    address = "127.0.0.1:3"
    dataset = {{ path = "{insurer}", id_column = "customer_id", features = ["BILL_AMT2", "PAY_AMT2"] }}
    [[step]]
    kind = "psi"
    parties = ["bank", "partner"]
    params = {{ reveal = "both", normalize = {{ case = "casefold" }} }}
    [[step]]
    kind = "psi"
    name = "psi_insurer"
    parties = ["bank", "insurer"]
    params = {{ reveal = "both", normalize = {{ case = "casefold" }} }}
    [[step]]
    kind = "vertical_lr"
    params = {{ n_bins = 3, max_iter = 2, test_fraction = 0.25, partner_table = "points", binning = "monotonic", encoding = "woe" }}
    """

_PARTIES = """\
    version = 1
    [job]
    id = "{job_id}"
    [[party]]
    name = "bank"
    role = "label_party"
    address = "127.0.0.1:1"
    dataset = {{ path = "{bank}", id_column = "customer_id", label_column = "default", features = ["LIMIT_BAL", "PAY_0"] }}
    [[party]]
    name = "partner"
    role = "feature_party"
    address = "127.0.0.1:2"
    dataset = {{ path = "{partner}", id_column = "customer_id", features = ["AGE", "BILL_AMT1", "PAY_AMT1"] }}
    """


def _job_run(tmp: Path, name: str, steps: str, learners: Iterable[str], **fields: str) -> list[Recorded]:
    spec = tmp / f"{name}.toml"
    text = textwrap.dedent(_PARTIES) + textwrap.dedent(steps)
    spec.write_text(text.format(job_id=name, bank=tmp / "bank.csv", partner=tmp / "partner.csv",
                                insurer=tmp / "insurer.csv", **fields))
    job = load_job(spec)
    protocols = {s.name: frozenset(p.name for p in STEPS[s.kind].protocols) for s in job.steps}
    res = simulate(spec, workdir=tmp / name)
    return [
        Recorded(name, party.name, protocols[e.step], frozenset(learners), e, spec)
        for party in job.parties for e in res.ledger(party.name)
    ]


def _describe_run() -> list[Recorded]:
    data = {
        "bank": pd.DataFrame({"LIMIT_BAL": [float(i * 1000) for i in range(40)]}),
        "partner": pd.DataFrame({"AGE": [float(20 + i % 30) for i in range(40)], "BILL": [float(i) for i in range(40)]}),
    }

    def party(me: str, peer: str) -> Callable[[Any], Any]:
        return lambda chan: joint_describe(chan, peer=peer, data=data[me], params=DescribeParams(share="all"))

    out = run_local({"bank": party("bank", "partner"), "partner": party("partner", "bank")}, job_id="describe")
    return [Recorded("describe", p, frozenset({"describe"}), frozenset(), e) for p in PARTIES for e in out[p].disclosures]


def _serving_run() -> list[Recorded]:
    """Online scoring: the pins, one request with a known and an unknown applicant."""
    import threading

    from misuan.ml.secureboost import SecureBoostClassifier, fit_local
    from misuan.net.memory import MemoryNetwork
    from misuan.protocols.serving import BankModel, PartnerModel
    from misuan.serving.session import BankSession, PartnerService, Pins

    rng = np.random.default_rng(0)
    xb, xp = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    y = (xb[:, 0] + xp[:, 0] + rng.normal(size=300) > 0).astype(int)
    models, _ = fit_local(SecureBoostClassifier(n_estimators=2, max_depth=2), {"bank": xb, "partner": xp}, y, label_party="bank")
    chans = MemoryNetwork(list(PARTIES), job_id="serving").channels(timeout_s=10)
    rec = {p: chans[p].recorder for p in PARTIES}
    service = PartnerService(PartnerModel(models["partner"].model_), lambda ids: (np.tile(xp[:1], (len(ids), 1)),
                             np.array([i == "c1" for i in ids])), Pins("m", "p" * 64, "b" * 64), lambda: chans["partner"])
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    BankSession(BankModel(models["bank"].model_), Pins("m", "b" * 64, "p" * 64), lambda: chans["bank"]).score(["c1", "c2"], xb[:2])
    service.stop.set()
    thread.join(5)
    return [Recorded("serving", p, frozenset({"serving"}), frozenset(), e) for p in PARTIES for e in rec[p].entries]  # type: ignore[attr-defined]


def _scorecard_serving_run() -> list[Recorded]:
    """Online scoring of a scorecard: the pins, one request with a known and an unknown applicant."""
    import threading

    from misuan.ml.vertical_lr import VerticalLogisticRegression, fit_local, scorecard_part
    from misuan.net.memory import MemoryNetwork
    from misuan.protocols.serving import BankScorecard, PartnerScorecard
    from misuan.serving.session import BankSession, PartnerService, Pins

    rng = np.random.default_rng(1)
    bins = {p: rng.integers(0, 3, size=(200, 2)) for p in PARTIES}
    y = (bins["bank"][:, 0] + bins["partner"][:, 0] + rng.normal(size=200) > 2).astype(int)
    models, _ = fit_local(VerticalLogisticRegression(max_iter=3), bins, {p: [3, 3] for p in PARTIES}, y, label_party="bank")
    docs = {}
    for p, m in models.items():
        card = m.scorecard(["f0", "f1"], [["lo", "hi", "missing"]] * 2, 4)
        docs[p] = scorecard_part(p, m.role_, card, m.coef_, m.intercept_, [np.array([0.5])] * 2, 4)
    chans = MemoryNetwork(list(PARTIES), job_id="serving-card").channels(timeout_s=10)
    rec = {p: chans[p].recorder for p in PARTIES}
    service = PartnerService(PartnerScorecard(docs["partner"], "bank"),
                             lambda ids: (np.zeros((len(ids), 2)), np.array([i == "c1" for i in ids])),
                             Pins("m", "p" * 64, "b" * 64), lambda: chans["partner"])
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    BankSession(BankScorecard(docs["bank"], "partner"), Pins("m", "b" * 64, "p" * 64), lambda: chans["bank"]).score(
        ["c1", "c2"], np.ones((2, 2)))
    service.stop.set()
    thread.join(5)
    return [Recorded("serving", p, frozenset({"serving"}), frozenset(), e) for p in PARTIES for e in rec[p].entries]  # type: ignore[attr-defined]


def _group_sums_run() -> list[Recorded]:
    from misuan.crypto.he import generate_keypair
    from misuan.protocols.group_sums import sums_feature_party, sums_label_party

    cols = np.column_stack([np.ones(60, np.int64), np.arange(60) % 2])
    sex = (np.arange(60) % 3 == 0).astype(np.int64), ["male", "female"]
    keys = generate_keypair("ou", 1024)
    fns = {
        "bank": lambda c: sums_label_party(c, "partner", cols, keypair=keys),
        "partner": lambda c: sums_feature_party(c, "bank", {"SEX": sex}, min_group_size=5),
    }
    out = run_local(fns, job_id="group-sums")
    return [Recorded("group_sums", p, frozenset({"group_sums"}), frozenset(), e) for p in PARTIES for e in out[p].disclosures]


def _monitor_run() -> list[Recorded]:
    from misuan.protocols.monitor import monitor_feature_party, monitor_label_party

    fns = {
        "bank": lambda c: monitor_label_party(c, "partner", lambda rows: [f"{n}: {lv}" for n, _, lv in rows]),
        "partner": lambda c: monitor_feature_party(c, "bank", ["AGE", "BILL"], [0.3, 0.01], ["alert", "stable"]),
    }
    out = run_local(fns, job_id="monitor")
    return [Recorded("monitor", p, frozenset({"monitor"}), frozenset(), e) for p in PARTIES for e in out[p].disclosures]


def _kkrt_bucket_run() -> list[Recorded]:
    """KKRT-PSI over several buckets (the bucket size made small): each bucket's entries are catalogued."""
    import misuan.protocols.kkrt as kkrt
    from misuan.protocols.psi import PsiParams, psi

    ids = {"bank": [f"c{i}" for i in range(150)], "partner": [f"c{i}" for i in range(100, 250)]}
    params = PsiParams(protocol="kkrt")
    fns = {p: (lambda c, p=p: psi(c, ids[p], "partner" if p == "bank" else "bank", params)) for p in PARTIES}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kkrt, "BUCKET_ITEMS", 64)
        out = run_local(fns, job_id="kkrt-buckets")
    return [Recorded("kkrt_buckets", p, frozenset({"kkrt"}), frozenset(PARTIES), e) for p in PARTIES for e in out[p].disclosures]


def _kkrt_spill_run(tmp: Path) -> list[Recorded]:
    """KKRT-PSI over spilled buckets, stopped after its first bucket and resumed: the resumed run's entries."""
    import misuan.protocols.kkrt as kkrt
    from misuan.protocols.kkrt.spill import kkrt_psi_spilled

    ids = {"bank": [f"c{i}".encode() for i in range(150)], "partner": [f"c{i}".encode() for i in range(100, 250)]}

    def fn(p: str, stop: bool):  # noqa: ANN202
        def hook(b: int) -> None:
            if stop and p == "partner":
                raise RuntimeError("stopped")
        peer = "partner" if p == "bank" else "bank"
        return lambda c: kkrt_psi_spilled(c, lambda: [ids[p]], len(ids[p]), peer, tmp / "spill" / p, reveal="both",
                                          normalization="n", on_bucket=hook)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kkrt, "BUCKET_ITEMS", 64)
        with pytest.raises(Exception, match="stopped"):
            run_local({p: fn(p, True) for p in PARTIES}, job_id="kkrt-spill")
        out = run_local({p: fn(p, False) for p in PARTIES}, job_id="kkrt-spill")
    return [Recorded("kkrt_spill", p, frozenset({"kkrt"}), frozenset(PARTIES), e) for p in PARTIES for e in out[p].disclosures]


def _vertical_lr_run() -> list[Recorded]:
    """Vertical LR: a few iterations on small random bins, with two feature parties (the second's
    exchanges with the lead are recorded only then), and joint scoring."""
    from misuan.protocols.vertical_lr import (
        TrainingParams,
        score_feature_party,
        score_label_party,
        train_feature_party,
        train_label_party,
    )

    rng = np.random.default_rng(4)
    bins = rng.integers(0, 3, size=(300, 5))
    y = (rng.random(300) < 0.3).astype(np.int64)
    params = TrainingParams(max_iter=2, tol=0.0)
    points = rng.normal(size=(2, 3))
    partners = {"partner": (2, 4), SECOND_FEATURE_PARTY: (4, 5)}

    def bank(c: Any) -> Any:
        train_label_party(c, list(partners), bins[:, :2], [3, 3], y, params)
        return score_label_party(c, list(partners), ["a", "b"], points, bins[:, :2], 20.0, 600.0, 50.0)

    def partner(c: Any) -> Any:
        a, b = partners[c.party]
        train_feature_party(c, "bank", bins[:, a:b], [3] * (b - a), params)
        return score_feature_party(c, "bank", [f"f{j}" for j in range(a, b)], points[: b - a], bins[:, a:b])

    out = run_local({"bank": bank, **{p: partner for p in partners}}, job_id="vertical-lr")
    l1 = TrainingParams(max_iter=2, tol=0.0, encoding="woe", penalty="l1")  # each partner then sees its own gradient
    own = run_local({"bank": lambda c: train_label_party(c, "partner", bins[:, :2], [3, 3], y, l1),
                     "partner": lambda c: train_feature_party(c, "bank", bins[:, 2:4], [3, 3], l1)}, job_id="vertical-lr-l1")
    return [Recorded(run, p, frozenset({"vertical_lr"}), frozenset(), e)
            for run, res in (("vertical_lr", out), ("vertical_lr_l1", own)) for p in res for e in res[p].disclosures]


SECAGG_DATA = ("lender_a", "lender_b", "lender_c", "lender_d")
SECAGG_AGGREGATOR = "hub"


def _secagg_run() -> list[Recorded]:
    """Secure aggregation: four data parties and a separate aggregator, everyone up."""
    from misuan.protocols.secagg import SecAggParams, aggregate_as_aggregator, aggregate_as_data_party

    params = SecAggParams(max_abs=100.0)
    names = list(SECAGG_DATA)
    fns: dict[str, Callable[[Any], Any]] = {
        p: (lambda c, p=p: aggregate_as_data_party(c, np.full(5, float(len(p))), SECAGG_AGGREGATOR, names, params))
        for p in names
    }
    fns[SECAGG_AGGREGATOR] = lambda c: aggregate_as_aggregator(c, names, params)
    out = run_local(fns, job_id="secagg")
    return [Recorded("secagg", p, frozenset({"secagg"}), frozenset(), e) for p in fns for e in out[p].disclosures]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[Recorded]:
    tmp = tmp_path_factory.mktemp("catalogue")
    bank, partner = taiwan.split_for_demo(seed=2)
    bank = bank.iloc[:600]
    # about 500 shared customers (the partner's IDs differ in case and white space) and 50 of its own
    shared = partner["customer_id"].str.strip().str.casefold().isin(set(bank["customer_id"].str.casefold()))
    partner = pd.concat([partner[shared], partner[~shared].iloc[:50]])
    bank.to_csv(tmp / "bank.csv", index=False)
    partner.to_csv(tmp / "partner.csv", index=False)
    insured = partner.iloc[: int(shared.sum())]  # the shared customers: the concatenation's first rows
    insured[np.arange(len(insured)) % 5 != 0].to_csv(tmp / "insurer.csv", index=False)  # four in five of them
    return (
        _job_run(tmp, "credit", _CREDIT_JOB, PARTIES)
        + _job_run(tmp, "psi_size", _PSI_JOB, (), reveal="size", protocol="auto")
        + _job_run(tmp, "psi_bank", _PSI_JOB, ("bank",), reveal="bank", protocol="kkrt")
        + _job_run(tmp, "psi_ecdh_both", _PSI_JOB, PARTIES, reveal="both", protocol="ecdh")
        + _job_run(tmp, "psi_ecdh_partner", _PSI_JOB, ("partner",), reveal="partner", protocol="ecdh")
        + _job_run(tmp, "scorecard", _SCORECARD_JOB, PARTIES)
        + _job_run(tmp, "scorecard_three", _SCORECARD_THREE_JOB, (*PARTIES, SECOND_FEATURE_PARTY))
        + _describe_run()
        + _monitor_run()
        + _group_sums_run()
        + _serving_run()
        + _scorecard_serving_run()
        + _kkrt_bucket_run()
        + _kkrt_spill_run(tmp)
        + _secagg_run()
        + _vertical_lr_run()
    )


def _role_problem(declared: str, actual: str, other: str, r: Recorded) -> str | None:
    """Why the party ``actual`` cannot play the catalogue's role ``declared`` (``other`` is the
    entry's other side), or None when it can."""
    if declared in ROLES.values():
        ok = ROLES.get(actual) == declared
    elif declared == "all":
        ok = actual == "all"
    elif declared == "each party":
        ok = actual in (*PARTIES, SECOND_FEATURE_PARTY)
    elif declared in OTHER:
        ok = actual in (*PARTIES, SECOND_FEATURE_PARTY) and actual != other
    elif declared == "the lead feature party":  # vertical LR's first feature party
        ok = actual == "partner"
    elif declared == LEARNER:
        ok = actual in (*PARTIES, SECOND_FEATURE_PARTY) and actual != other and actual in r.learners
    elif declared in ("the receiver", "the sender"):  # KKRT-PSI: the learner, or in mode "both" the first by name
        receiver = sorted(r.learners)[0] if r.learners else ""
        ok = (actual == receiver) == (declared == "the receiver") and actual in (*PARTIES, SECOND_FEATURE_PARTY)
    elif declared == "each data party":  # secure aggregation
        ok = actual in SECAGG_DATA
    elif declared == "the aggregator":
        ok = actual == SECAGG_AGGREGATOR
    else:
        return f"the test does not know the role {declared!r}: teach _role_problem"
    return None if ok else f"catalogue says {declared}, the run had {actual}"


def _kind_of(r: Recorded, catalogue: dict[tuple[str, str, str], DisclosureKind]) -> DisclosureKind:
    e = r.entry
    kinds = [catalogue[key] for key in ((p, e.what, e.form) for p in sorted(r.protocols)) if key in catalogue]
    assert len(kinds) == 1, (
        f"run {r.run}: step {e.step} (protocols {sorted(r.protocols)}) recorded an entry outside their "
        f"catalogues: {e.what!r} ({e.form})"
    )
    return kinds[0]


@pytest.mark.slow
def test_runs_record_only_catalogued_entries_between_the_declared_roles(recorded: list[Recorded]) -> None:
    catalogue = _catalogue()
    problems = []
    for r in recorded:
        kind, e = _kind_of(r, catalogue), r.entry
        for declared, actual, other in ((kind.discloser, e.discloser, e.recipient), (kind.recipient, e.recipient, e.discloser)):
            problem = _role_problem(declared, actual, other, r)
            if problem:
                problems.append(f"run {r.run}, step {e.step}: {e.what!r}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_every_catalogue_entry_is_recorded_by_some_run(recorded: list[Recorded]) -> None:
    catalogue = _catalogue()
    seen = {(k.protocol, k.what, k.form) for k in (_kind_of(r, catalogue) for r in recorded)}
    # a failed consistency check is recorded only when a peer's values fail one (no honest run here):
    # the protocols' own tests forge such values and check the record
    checks = {key for key, k in catalogue.items() if k.when == CHECK_FAILED}
    assert seen == set(catalogue) - checks, f"catalogued but recorded by no run: {sorted(set(catalogue) - checks - seen)}"
    # in the credit job, whatever a protocol it ran always discloses was recorded there
    credit = {(k.protocol, k.what, k.form) for k in (_kind_of(r, catalogue) for r in recorded if r.run == "credit")}
    ran = {p for p, _, _ in credit}  # the protocols that ran (a psi step speaks KKRT or ECDH, not both)
    always = {key for key, k in catalogue.items() if k.protocol in ran and k.when == "always"}
    assert always <= credit, f"declared as always disclosed but not recorded: {sorted(always - credit)}"


@pytest.mark.slow
def test_both_parties_record_each_disclosure_between_them(recorded: list[Recorded]) -> None:
    def between(run: str, ledger: str, other: str) -> list[tuple[str, str, str, str, str]]:
        return sorted(
            (r.entry.step, r.entry.discloser, r.entry.recipient, r.entry.what, r.entry.form)
            for r in recorded
            if r.run == run and r.ledger == ledger and r.entry.discloser != "all"  # "all": a joint result
            and other in (r.entry.discloser, r.entry.recipient)
        )

    for run in dict.fromkeys(r.run for r in recorded):
        ledgers = sorted({r.ledger for r in recorded if r.run == run})
        for a, b in itertools.combinations(ledgers, 2):
            assert between(run, a, b) == between(run, b, a), f"run {run}: the ledgers of {a} and {b} differ"


@pytest.mark.slow
def test_the_consent_preview_lists_exactly_what_each_run_recorded(recorded: list[Recorded]) -> None:
    """What a node shows its operator before a job (misuan.node.consent) is what the run then records."""
    from misuan.node.consent import preview_job
    from misuan.node.spec import load_spec

    runs = {(r.run, r.ledger): r.spec for r in recorded if r.spec is not None}
    assert {run for run, _ in runs} == {"credit", "psi_size", "psi_bank", "psi_ecdh_both", "psi_ecdh_partner", "scorecard",
                                        "scorecard_three"}
    for (run, party), spec_path in runs.items():
        assert spec_path is not None
        preview = preview_job(load_spec(spec_path), party)
        planned = {d.key for d in preview.disclosures}
        maybe = {d.key for d in preview.disclosures if d.data_dependent}
        seen = {(e.step, e.what, e.form, e.discloser, e.recipient) for r in recorded if (r.run, r.ledger) == (run, party) for e in [r.entry]}
        assert seen <= planned, f"{run}/{party}: recorded but not previewed: {sorted(seen - planned)}"
        assert planned - maybe <= seen, f"{run}/{party}: previewed but not recorded: {sorted(planned - maybe - seen)}"
    credit = {d.key for d in preview_job(load_spec(runs[("credit", "bank")]), "bank").disclosures}  # type: ignore[arg-type]
    credit_seen = {(r.entry.step, r.entry.what, r.entry.form, r.entry.discloser, r.entry.recipient) for r in recorded if (r.run, r.ledger) == ("credit", "bank")}
    assert credit == credit_seen  # in this run the data led to every data-dependent entry as well
