"""The marketing-copy checker: the labelled corpus, spans, negations, terms, rule files, parameters."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from misuan.errors import ConfigError
from misuan.lending.copy_check import CopyCheckParams, ProductTerms, check_copy, detect_language, failing
from misuan.lending.copy_rules import load_copy_rules, parse_copy_rules

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CORPUS = Path(__file__).with_name("copy_corpus.toml")
RULE_FILE = Path(__file__).resolve().parents[2] / "misuan" / "lending" / "rules" / "copy_rules.toml"


def load_corpus() -> list[dict[str, Any]]:
    with open(CORPUS, "rb") as f:
        examples: list[dict[str, Any]] = tomllib.load(f)["example"]
    return examples


EXAMPLES = load_corpus()


def _terms(example: dict[str, Any]) -> ProductTerms | None:
    return ProductTerms(**example["terms"]) if "terms" in example else None


# --- the corpus ------------------------------------------------------------------------------------
@pytest.mark.parametrize("example", EXAMPLES, ids=[e["id"] for e in EXAMPLES])
def test_every_example_gets_exactly_its_labelled_rules(example: dict[str, Any]) -> None:
    text = example["text"]
    findings = check_copy(text, _terms(example), example.get("language", "auto"))
    assert sorted({f.rule_id for f in findings}) == sorted(example["expect"]), [(f.rule_id, f.text) for f in findings]
    for f in findings:
        assert 0 <= f.start < f.end <= len(text)
        assert f.text == text[f.start:f.end]
        assert f.severity in ("error", "warning") and f.explanation and f.sources


def test_corpus_is_large_bilingual_and_covers_every_rule_with_look_alikes() -> None:
    ids = [e["id"] for e in EXAMPLES]
    assert len(ids) >= 80 and len(set(ids)) == len(ids)
    zh = [e for e in EXAMPLES if detect_language(e["text"]) == "zh"]
    en = [e for e in EXAMPLES if detect_language(e["text"]) == "en"]
    assert len(zh) >= 35 and len(en) >= 35
    clean = [e for e in EXAMPLES if not e["expect"]]
    assert len(clean) >= 30
    rules = load_copy_rules()
    for rule_id in rules.ids:
        positives = [e for e in EXAMPLES if rule_id in e["expect"]]
        langs = {detect_language(e["text"]) for e in positives}
        assert len(positives) >= 5 and langs == {"zh", "en"}, (rule_id, len(positives), langs)
    assert {r for e in EXAMPLES for r in e["expect"]} <= set(rules.ids)


def test_held_out_set_parses_and_names_known_rules() -> None:
    """The held-out sets estimate precision/recall in bench/copy_check.py; they need not pass exactly."""
    held_out = []
    for name in ("copy_heldout.toml", "copy_heldout2.toml"):
        with open(CORPUS.with_name(name), "rb") as f:
            held_out += tomllib.load(f)["example"]
    ids = load_copy_rules().ids
    assert len(held_out) >= 70 and all(set(e["expect"]) <= set(ids) for e in held_out)
    assert len({e["id"] for e in held_out}) == len(held_out)
    assert not {e["text"] for e in held_out} & {e["text"] for e in EXAMPLES}


def test_every_source_is_cited_by_a_rule() -> None:
    with open(RULE_FILE, "rb") as f:
        doc = tomllib.load(f)
    cited = {k for r in doc["rule"] for k in r["sources"]}
    assert cited == set(doc["sources"])


# --- spans, folding, negation, language -------------------------------------------------------------
def test_spans_are_exact_and_in_order() -> None:
    text = "大学生必下款！无视征信，日息低至万分之三"
    found = [(f.rule_id, f.start, f.end, f.text) for f in check_copy(text)]
    assert found == [
        ("student-targeting", 0, 3, "大学生"),
        ("missing-risk-warning", 0, len(text), text),
        ("guaranteed-approval", 3, 6, "必下款"),
        ("no-credit-check", 7, 11, "无视征信"),
        ("rate-without-annualised", 12, 20, "日息低至万分之三"),
    ]


def test_full_width_forms_match_and_keep_original_spans() -> None:
    text = "日利率低至０．０２％，理性借贷"
    (f,) = check_copy(text)
    assert f.rule_id == "rate-without-annualised" and f.text == "日利率低至０．０２％" and (f.start, f.end) == (0, 10)
    assert check_copy("年化利率７．２％起，日利率０．０２％，理性借贷") == []


def test_document_level_finding_spans_the_trimmed_document() -> None:
    text = "\n  Personal loans, 9.9% APR.  \n"
    (f,) = check_copy(text)
    assert f.rule_id == "missing-risk-warning" and f.text == "Personal loans, 9.9% APR."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We never promise guaranteed approval. Borrow responsibly.", []),
        ("We promise guaranteed approval. Borrow responsibly.", ["guaranteed-approval"]),
        ("No paperwork, guaranteed approval. Borrow responsibly.", ["guaranteed-approval"]),
        ("Why not borrow more? Borrow responsibly.", ["over-borrowing"]),
        ("本平台不向大学生放贷。理性借贷。", []),
        ("本平台向大学生放贷。理性借贷。", ["student-targeting"]),
        ("不用等，秒批！理性借贷。", ["guaranteed-approval"]),
    ],
)
def test_negation_needs_a_cue_in_the_same_clause(text: str, expected: list[str]) -> None:
    assert [f.rule_id for f in check_copy(text)] == expected


def test_no_hidden_fees_is_neither_a_fee_nor_zero_interest() -> None:
    assert check_copy("No hidden fees. 0% interest for 12 months, then 19.9% APR. Borrow responsibly.") == []
    found = check_copy("0% interest for 12 months, then 19.9% APR. Account fee $5. Borrow responsibly.")
    assert [f.rule_id for f in found] == ["zero-interest-with-fees"] and "Account fee $5" in found[0].detail


def test_language_choice() -> None:
    text = "必下款！Guaranteed approval. 理性借贷, borrow responsibly."
    assert [f.text for f in check_copy(text, language="zh")] == ["必下款"]
    assert [f.text for f in check_copy(text, language="en")] == ["Guaranteed approval"]
    assert [f.text for f in check_copy(text)] == ["必下款", "Guaranteed approval"]
    assert detect_language("必下款！理性借贷，量力而行。APR") == "zh"
    assert detect_language("Loans from 7% APR, 借款") == "en"
    with pytest.raises(ConfigError, match="language must be auto, zh or en"):
        check_copy(text, language="fr")  # type: ignore[arg-type]


def test_explanations_follow_the_text_language() -> None:
    (zh,) = check_copy("秒批，理性借贷")
    (en,) = check_copy("Instant approval. Borrow responsibly.")
    assert "审核" in zh.explanation and "approval" in en.explanation
    assert any("CBIRC" in s for s in zh.sources)


# --- product terms --------------------------------------------------------------------------------
def test_terms_decide_zero_interest_and_discount_claims() -> None:
    text = "12期免息，分期享优惠！理性消费。"
    assert check_copy(text) == []
    assert check_copy(text, ProductTerms(fees={"instalment_fee": 0.0})) == []
    found = check_copy(text, ProductTerms(name="phone plan", fees={"instalment_fee": 0.006}))
    assert [f.rule_id for f in found] == ["zero-interest-with-fees", "discount-with-fees"]
    assert "phone plan" in found[0].detail and "instalment_fee = 0.006" in found[0].detail
    interest_only = check_copy(text, ProductTerms(interest_rate=0.1))
    assert [f.rule_id for f in interest_only] == ["zero-interest-with-fees"]  # a discount is checked against fees


def test_terms_are_validated() -> None:
    with pytest.raises(ConfigError, match="fees.late: must be 0 or more"):
        ProductTerms(fees={"late": -1.0})
    with pytest.raises(ConfigError, match="interest_rate"):
        ProductTerms(interest_rate=-0.1)
    with pytest.raises(ConfigError, match="fees"):
        ProductTerms(fees={"late": "5"})  # type: ignore[dict-item]


# --- parameters -----------------------------------------------------------------------------------
def test_ignore_and_windows() -> None:
    text = "We never promise guaranteed approval. Borrow responsibly."
    assert check_copy(text) == []
    no_negation = CopyCheckParams(negation_window_en=0)
    assert [f.rule_id for f in check_copy(text, params=no_negation)] == ["guaranteed-approval"]
    assert check_copy("Instant approval! Borrow responsibly.", params=CopyCheckParams(ignore=["guaranteed-approval"])) == []
    with pytest.raises(ConfigError, match="unknown copy rule"):
        check_copy("x", params=CopyCheckParams(ignore=["no-such-rule"]))
    with pytest.raises(ConfigError, match="negation_window_zh"):
        CopyCheckParams(negation_window_zh=-1)


def test_failing_by_severity() -> None:
    found = check_copy("必下款，年化利率18%。")
    assert {f.severity for f in found} == {"error", "warning"}
    assert len(failing(found, "warning")) == 2 and [f.rule_id for f in failing(found, "error")] == ["guaranteed-approval"]
    with pytest.raises(ConfigError):
        failing(found, "info")


def test_text_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match="must be text"):
        check_copy(b"bytes")  # type: ignore[arg-type]


# --- rule files -----------------------------------------------------------------------------------
def _rule_doc() -> dict[str, Any]:
    with open(RULE_FILE, "rb") as f:
        doc: dict[str, Any] = tomllib.load(f)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "version must be 1"),
        (lambda d: d["rule"][0].update(severity="fatal"), "severity must be one of error, warning"),
        (lambda d: d["rule"][0].update(check="magic"), "check must be one of"),
        (lambda d: d["rule"][0].update(sources=["nowhere"]), r"sources \['nowhere'\] are not in \[sources\]"),
        (lambda d: d["rule"][1].update(id=d["rule"][0]["id"]), "appears twice"),
        (lambda d: d["rule"][0]["patterns"]["zh"].append("(unclosed"), r"patterns.zh\[\d+\] is not a valid regular expression"),
        (lambda d: d["rule"][0].update(colour="red"), r"unknown key\(s\) \['colour'\]"),
        (lambda d: d["rule"][0].update(id="Bad Id"), "must be lower-case letters"),
        (lambda d: d["rule"][1].update(cost=[]), "cost must list some of fees, interest"),
        (lambda d: d["rule"][0].pop("requires"), "needs \\[rule.requires\\]"),
        (lambda d: d["rule"][0].update(credit_only="yes"), "credit_only must be true or false"),
        (lambda d: d.pop("fees"), r"\[fees\] must be a table"),
    ],
)
def test_malformed_rule_file_gives_one_clear_line(change: Any, message: str) -> None:
    doc = _rule_doc()
    assert doc["rule"][0]["check"] == "unless_present" and doc["rule"][1]["check"] == "claim_with_cost"
    change(doc)
    with pytest.raises(ConfigError, match=message) as info:
        parse_copy_rules(doc, "rules.toml")
    assert "\n" not in str(info.value) and str(info.value).startswith("rules.toml")


def test_rule_file_from_disk(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_copy_rules(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_copy_rules(bad)
    own = tmp_path / "own.toml"
    own.write_text(RULE_FILE.read_text(encoding="utf-8").replace("'秒批', ", ""), encoding="utf-8")
    rules = load_copy_rules(own)
    assert rules.path == str(own) and check_copy("秒批！理性借贷", rules=rules) == []
    assert dataclasses.replace(rules, name="x").name == "x"
