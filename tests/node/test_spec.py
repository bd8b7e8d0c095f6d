from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from misuan.errors import ConfigError, DataError, JobSpecError
from misuan.node.spec import load_node_config, load_spec, parse_spec


def base_doc() -> dict[str, Any]:
    return {
        "version": 1,
        "job": {"id": "j1"},
        "party": [
            {
                "name": "bank",
                "role": "label_party",
                "address": "127.0.0.1:50051",
                "dataset": {"path": "bank.csv", "id_column": "customer_id", "label_column": "y"},
            },
            {
                "name": "partner",
                "role": "feature_party",
                "address": "partner.example.com:50052",
                "dataset": {"path": "partner.csv", "id_column": "customer_id", "features": ["a", "b"]},
            },
        ],
        "step": [{"kind": "secure_sum", "params": {"columns": ["a"]}}],
    }


def test_valid_spec_parses(tmp_path: Path) -> None:
    spec = parse_spec(base_doc(), tmp_path)
    assert spec.job_id == "j1" and spec.party_names == ("bank", "partner")
    assert spec.label_party.name == "bank" and spec.timeout_s == 600
    assert spec.party("partner").dataset.features == ("a", "b")
    assert spec.party("bank").dataset.features == "all"
    assert spec.party("bank").dataset.path == tmp_path / "bank.csv"
    assert spec.party("partner").host == "partner.example.com" and spec.party("partner").port == 50052
    assert spec.steps[0].name == "secure_sum" and spec.steps[0].parties == ("bank", "partner")


def test_shared_hash_ignores_local_paths_but_not_steps(tmp_path: Path) -> None:
    a = parse_spec(base_doc(), tmp_path)
    doc = base_doc()
    doc["party"][1]["dataset"]["path"] = "elsewhere/partner.csv"
    doc["party"][1]["tls"] = {"ca": "ca.pem", "cert": "p.pem", "key": "p.key"}
    assert parse_spec(doc, tmp_path).shared_hash() == a.shared_hash()
    doc["step"][0]["params"]["columns"] = ["b"]
    assert parse_spec(doc, tmp_path).shared_hash() != a.shared_hash()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        target: Any = doc
        for k in keys[:-1]:
            target = target[k]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return edit


_DELETE = object()


def _horizontal(doc: dict[str, Any], lenders: int) -> dict[str, Any]:
    """``doc`` turned into a horizontal job: ``lenders`` data parties (the bank's dataset) and an aggregator "hub"."""
    bank = doc["party"][0]
    doc["party"] = [
        {**bank, "name": f"lender-{i}", "role": "data_party", "dataset": dict(bank["dataset"])} for i in range(lenders)
    ] + [{"name": "hub", "role": "aggregator", "address": "127.0.0.1:50099"}]
    doc["step"][0].pop("parties", None)
    return doc

BAD_SPECS = [
    ("version", _set("version", 2), r"version: this misuan reads spec version 1"),
    ("unknown top key", _set("jobs", {}), r"the spec's top level: unknown key\(s\) \['jobs'\]"),
    ("unknown party key", _set("party.0.adress", "x"), r"party\[1\] 'bank': unknown key\(s\) \['adress'\]"),
    ("unknown dataset key", _set("party.1.dataset.label", "y"), r"party\[2\] 'partner'.dataset: unknown key\(s\) \['label'\]"),
    ("missing job", _set("job", _DELETE), r"missing \[job\] table"),
    ("bad job id", _set("job.id", "../etc"), r"job.id: a job id uses letters"),
    ("bad timeout", _set("job.timeout_s", -1), r"job.timeout_s: give seconds"),
    ("missing parties", _set("party", _DELETE), r"party: a job needs at least two \[\[party\]\] tables"),
    ("one party", lambda d: d["party"].pop(), r"party: a job needs at least two"),
    ("duplicate party", _set("party.1.name", "bank"), r"party\[2\].name: party name 'bank' is used twice"),
    ("missing party name", _set("party.0.name", _DELETE), r"party\[1\].name: missing"),
    ("uppercase name", _set("party.0.name", "Bank"), r"party\[1\].name: a party name is 1-63 lowercase"),
    ("reserved name", _set("party.0.name", "all"), r"party\[1\].name: 'all' is reserved"),
    ("bad role", _set("party.1.role", "features"), r"party\[2\] 'partner'.role: must be one of"),
    ("label party without label", _set("party.1.role", "label_party"), r"'partner'.dataset.label_column: a label_party must"),
    (
        "two label parties",
        lambda d: (d["party"][1].update(role="label_party"), d["party"][1]["dataset"].update(label_column="y")),
        r"party.role: exactly one party must have role",
    ),
    ("no port", _set("party.0.address", "localhost"), r"party\[1\] 'bank'.address: write host:port"),
    ("bad port", _set("party.0.address", "localhost:70000"), r"party\[1\] 'bank'.address: write host:port"),
    ("address not str", _set("party.0.address", 50051), r"party\[1\] 'bank'.address"),
    ("missing dataset", _set("party.0.dataset", _DELETE), r"party\[1\] 'bank'.dataset: missing"),
    ("missing id column", _set("party.0.dataset.id_column", _DELETE), r"party\[1\] 'bank'.dataset.id_column: give a column"),
    ("missing label", _set("party.0.dataset.label_column", _DELETE), r"'bank'.dataset.label_column: a label_party must name"),
    ("label on feature party", _set("party.1.dataset.label_column", "y"), r"'partner'.dataset.label_column: a feature_party has no label column"),
    ("mixed roles", lambda d: d["party"][1].update(role="data_party", dataset={**d["party"][1]["dataset"], "label_column": "y"}), r"party.role: a job is vertical .* or horizontal .*, not both"),
    ("aggregator with data", lambda d: _horizontal(d, 3).__setitem__("party", [*d["party"][:3], {**d["party"][3], "dataset": d["party"][0]["dataset"]}]),
     r"party\[4\] 'hub'.dataset: the aggregator holds no data"),
    ("two data parties", lambda d: _horizontal(d, 2), r"party.role: a horizontal job needs 3 to 100 parties with role = \"data_party\""),
    ("two aggregators", lambda d: (_horizontal(d, 3), d["party"].append({**d["party"][3], "name": "hub2"})),
     r"exactly one party with role = \"aggregator\"; found 2"),
    ("data party without label", lambda d: (_horizontal(d, 3), d["party"][1]["dataset"].pop("label_column")),
     r"'lender-1'.dataset.label_column: a data_party must name its label column"),
    ("not csv", _set("party.0.dataset.path", "bank.xlsx"), r"'bank'.dataset.path: bank.xlsx is not a file misuan reads; it reads \['.csv', '.parquet'"),
    ("bad features", _set("party.1.dataset.features", "some"), r"'partner'.dataset.features: write \"all\""),
    ("id as feature", _set("party.1.dataset.features", ["customer_id"]), r"'partner'.dataset.features: .*id or label"),
    ("tls incomplete", _set("party.0.tls", {"ca": "ca.pem"}), r"'bank'.tls: missing \['cert', 'key'\]"),
    ("no steps", _set("step", []), r"step: a job needs at least one \[\[step\]\]"),
    ("no kind", _set("step.0.kind", 3), r"step\[1\].kind: write the step.s kind"),
    ("unknown step key", _set("step.0.param", {}), r"step\[1\]: unknown key\(s\) \['param'\]"),
    ("unknown party in step", _set("step.0.parties", ["bank", "telco"]), r"step\[1\] 'secure_sum'.parties: 'telco' is not a party"),
    ("duplicate step", lambda d: d["step"].append(copy.deepcopy(d["step"][0])), r"step\[2\].name: step name 'secure_sum' is used twice"),
    ("reserved step name", _set("step.0.name", "job"), r"step\[1\].name: 'job' is reserved"),
    ("params not table", _set("step.0.params", 3), r"step\[1\] 'secure_sum'.params: must be a table"),
    ("date param", _set("step.0.params.when", dt.date(2026, 1, 1)), r"params.when: values of type date are not allowed"),
]


@pytest.mark.parametrize("edit, message", [b[1:] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_names_the_field(tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str) -> None:
    doc = base_doc()
    edit(doc)
    with pytest.raises(JobSpecError, match=message):
        parse_spec(doc, tmp_path)


def test_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "job.toml"
    bad.write_text('version = 1\n[job\nid = "x"\n')
    with pytest.raises(JobSpecError, match=r"job.toml is not valid TOML: .*line 2"):
        load_spec(bad)
    with pytest.raises(JobSpecError, match="nope.toml does not exist"):
        load_spec(tmp_path / "nope.toml")


def test_missing_dataset_file_is_a_data_error(tmp_path: Path) -> None:
    spec = parse_spec(base_doc(), tmp_path)
    with pytest.raises(DataError, match=r"party\[1\] 'bank'.dataset.path: dataset file .*bank.csv does not exist"):
        spec.check_local("bank")
    with pytest.raises(JobSpecError, match="party 'telco' is not in job 'j1'"):
        spec.check_local("telco")


def test_node_config(tmp_path: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        'version = 1\nparty = "bank"\nlisten = "0.0.0.0:50051"\ndata_dir = "data"\n'
        'tls = { ca = "certs/ca.pem", cert = "certs/bank.pem", key = "certs/bank.key" }\n'
    )
    node = load_node_config(cfg)
    assert node.party == "bank" and node.data_dir == tmp_path / "data"
    assert node.ledger_path == tmp_path / "data" / "ledger.sqlite" and node.tls.key == tmp_path / "certs" / "bank.key"
    cfg.write_text('version = 1\nparty = "bank"\nlisten = "0.0.0.0"\ndata_dir = "d"\n')
    with pytest.raises(ConfigError, match=r"node.toml: listen: write host:port"):
        load_node_config(cfg)
    cfg.write_text('version = 1\nparty = "bank"\nlisten = "0.0.0.0:1"\ndata_dir = "d"\n')
    with pytest.raises(ConfigError, match=r"tls: give tls ="):
        load_node_config(cfg)


def test_localhost_is_not_a_party_name(tmp_path: Path) -> None:
    """Issue #11, 5: a host name many certificates carry must not name a party."""
    from misuan.node.spec import loads_spec
    from tests.jobfiles import SUM_STEPS, spec_text

    with pytest.raises(JobSpecError, match=r"party\[1\]\.name: 'localhost' is reserved"):
        loads_spec(spec_text(("localhost", "partner"), SUM_STEPS), tmp_path)
