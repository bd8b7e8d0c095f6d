"""Each protocol declares its disclosures once; a run records exactly catalogued entries; the docs agree.

A protocol package's ``DISCLOSURES`` (``protocols/<name>/disclosures.py``) is the one declaration of
what it may reveal, to whom and in what form. Both sides record through it, ``docs/privacy.md``
shows it as the table :func:`misuan.net.disclosure.catalogue_table` writes, and a full credit job
must record nothing outside it and everything it declares as always disclosed.
"""

from __future__ import annotations

import importlib
import pkgutil
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import misuan.protocols
from misuan.api import simulate
from misuan.datasets import taiwan
from misuan.net.disclosure import DisclosureKind, catalogue_table

PRIVACY_MD = Path(__file__).resolve().parents[1] / "docs" / "privacy.md"
ROLE_NAMES = ("label_party", "feature_party")


def _protocol_packages() -> list[ModuleType]:
    found = [m.name for m in pkgutil.iter_modules(misuan.protocols.__path__) if m.ispkg]
    return [importlib.import_module(f"misuan.protocols.{name}") for name in sorted(found)]


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


def test_privacy_md_lists_every_catalogue() -> None:
    text = PRIVACY_MD.read_text(encoding="utf-8")
    for pkg in _protocol_packages():
        table = catalogue_table(pkg.DISCLOSURES)
        assert table in text, f"docs/privacy.md lacks the catalogue of {pkg.PROTOCOL.name}; paste:\n{table}"


_JOB = """\
    version = 1
    [job]
    id = "catalogue"
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
    [[step]]
    kind = "psi"
    params = {{ reveal = "both", normalize = {{ case = "casefold" }} }}
    [[step]]
    kind = "woe"
    params = {{ n_bins = 4, min_bin_size = 20, share_edges = true, share_iv = true }}
    [[step]]
    kind = "woe"
    name = "woe_tree"
    params = {{ method = "tree", n_bins = 4, min_bin_size = 20 }}
    [[step]]
    kind = "secureboost"
    params = {{ n_estimators = 2, max_depth = 2, test_fraction = 0.25 }}
    [[step]]
    kind = "evaluate"
    [[step]]
    kind = "secure_sum"
    params = {{ columns = {{ bank = ["LIMIT_BAL"], partner = ["AGE"] }}, count_rows = true }}
    """


@pytest.mark.slow
def test_a_credit_job_records_exactly_its_catalogue(tmp_path: Path) -> None:
    bank, partner = taiwan.split_for_demo(seed=2)
    bank.iloc[:1500].to_csv(tmp_path / "bank.csv", index=False)
    partner.iloc[:1500].to_csv(tmp_path / "partner.csv", index=False)
    spec = tmp_path / "job.toml"
    spec.write_text(textwrap.dedent(_JOB).format(bank=tmp_path / "bank.csv", partner=tmp_path / "partner.csv"))
    res = simulate(spec, workdir=tmp_path / "w")
    roles = {"bank": "label_party", "partner": "feature_party", "all": "all"}
    catalogue = {(k.what, k.form): k for pkg in _protocol_packages() for k in pkg.DISCLOSURES}
    recorded: set[tuple[str, str]] = set()
    for party in ("bank", "partner"):
        for e in res.ledger(party):
            kind = catalogue.get((e.what, e.form))
            assert kind is not None, f"{party}'s ledger holds an uncatalogued disclosure: {e.what!r} ({e.form}) in {e.step}"
            for declared, actual in ((kind.discloser, e.discloser), (kind.recipient, e.recipient)):
                if declared in ROLE_NAMES or declared == "all":
                    assert roles[actual] == declared, f"{e.what!r}: catalogue says {declared}, the run had {actual}"
            recorded.add((e.what, e.form))
    ran = {"psi", "woe", "secureboost", "secure_sum"}
    always = {key for key, k in catalogue.items() if k.protocol in ran and k.when == "always"}
    assert always <= recorded, f"declared as always disclosed but not recorded: {sorted(always - recorded)}"
