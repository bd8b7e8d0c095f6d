"""Rate and amount caps as data: TOML rule sets with their source and effective date, and the checks.

The rules live in ``misuan/lending/rules/caps_<jurisdiction>.toml`` (China: ``CN``, United States:
``US``); ``caps_cn.toml`` describes the schema. A rule compares one figure of a loan (its annualised
rate, MAPR, amount, the partner's funding share) with a fixed limit or with a multiple of the one-year
LPR in force at the contract date (the rule set's dated ``[[lpr]]`` table, or an LPR given by the
caller). :func:`check_caps` applies every rule that binds the lender type and the loan's term and
returns, per rule, pass or fail, the rule id, the figure, the limit and the source; rules that take
effect after the contract date are reported as upcoming and never fail the check. A malformed rule
file raises :class:`~misuan.errors.ConfigError` with one line naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from misuan.errors import ConfigError
from misuan.lending.errors import LoanError, RuleFileError
from misuan.toml_files import read_toml

__all__ = [
    "FIGURES",
    "RULES_DIR",
    "CapCheck",
    "CapReport",
    "CapRule",
    "LoanFacts",
    "LprEntry",
    "PolicyCaps",
    "RuleSet",
    "binding_caps",
    "check_caps",
    "jurisdictions",
    "load_rules",
    "lpr_on",
]

RULES_DIR = Path(__file__).resolve().parent / "rules"
FIGURES: tuple[str, ...] = (
    "annualised_rate", "annualised_rate_compound", "mapr", "amount", "partner_share", "term_days",
)
RATE_FIGURES = ("annualised_rate", "annualised_rate_compound", "mapr")
Status = Literal["pass", "fail", "upcoming-pass", "upcoming-fail"]
_RULE_KEYS = {
    "id", "title", "figure", "check", "limit", "lpr_multiple", "lenders", "effective", "until", "min_term_days",
    "max_term_days", "covered_only", "source", "note",
}


@dataclasses.dataclass(frozen=True)
class LprEntry:
    date: dt.date
    one_year: float


@dataclasses.dataclass(frozen=True)
class CapRule:
    """One cap: ``figure`` ``<=`` (check ``max``) or ``>=`` (``min``) ``limit`` or ``lpr_multiple`` x LPR."""

    id: str
    title: str
    figure: str
    check: Literal["max", "min"]
    limit: float | None
    lpr_multiple: float | None
    lenders: tuple[str, ...]
    effective: dt.date
    source: str
    until: dt.date | None = None
    min_term_days: int | None = None
    max_term_days: int | None = None
    covered_only: bool = False
    note: str = ""

    def binds_lender(self, lender: str, covered: bool) -> bool:
        """Whether the rule applies to this lender type and borrower."""
        return ("*" in self.lenders or lender in self.lenders) and (covered or not self.covered_only)

    def binds_term(self, term_days: int | None) -> bool | None:
        """Whether the rule applies to a loan of this term; None when it depends on an unknown term."""
        if self.min_term_days is None and self.max_term_days is None:
            return True
        if term_days is None:
            return None
        return not ((self.min_term_days is not None and term_days < self.min_term_days)
                    or (self.max_term_days is not None and term_days > self.max_term_days))


@dataclasses.dataclass(frozen=True)
class RuleSet:
    jurisdiction: str
    title: str
    currency: str
    rules: tuple[CapRule, ...]
    lpr: tuple[LprEntry, ...]
    path: Path

    @property
    def lenders(self) -> tuple[str, ...]:
        return tuple(sorted({x for r in self.rules for x in r.lenders if x != "*"}))


# --- loading ---------------------------------------------------------------------------------------
def jurisdictions(rules_dir: Path = RULES_DIR) -> dict[str, Path]:
    """The bundled rule sets by jurisdiction code (``caps_cn.toml`` -> ``CN``)."""
    return {p.stem.removeprefix("caps_").upper(): p for p in sorted(rules_dir.glob("caps_*.toml"))}


def load_rules(jurisdiction: str | None = None, *, path: str | Path | None = None) -> RuleSet:
    """The rule set of ``jurisdiction`` (bundled) or the file at ``path``; one-line ConfigError if bad."""
    if path is None:
        known = jurisdictions()
        code = (jurisdiction or "").strip().upper()
        if code not in known:
            raise ConfigError(f"unknown jurisdiction {jurisdiction!r}; the rule sets cover {', '.join(known) or 'none'}")
        path = known[code]
    p = Path(path)
    doc = read_toml(p, "rules file", RuleFileError)
    ruleset = _parse_ruleset(doc, p)
    if jurisdiction is not None and ruleset.jurisdiction != jurisdiction.strip().upper():
        raise RuleFileError(f"rules file {p}: is for jurisdiction {ruleset.jurisdiction}, not {jurisdiction}")
    return ruleset


def _parse_ruleset(doc: Mapping[str, Any], p: Path) -> RuleSet:
    head = doc.get("ruleset")
    if not isinstance(head, Mapping):
        raise RuleFileError(f"rules file {p}: needs a [ruleset] table with jurisdiction and title")
    unknown = sorted(set(doc) - {"ruleset", "rule", "lpr"})
    if unknown:
        raise RuleFileError(f"rules file {p}: unknown table(s) {unknown}; allowed are ruleset, rule, lpr")
    where = f"rules file {p}: ruleset"
    jur = _text(head, "jurisdiction", where).upper()
    rules_raw = doc.get("rule", [])
    if not isinstance(rules_raw, list) or not rules_raw:
        raise RuleFileError(f"rules file {p}: needs at least one [[rule]]")
    rules = tuple(_parse_rule(r, f"rules file {p}: rule[{k + 1}]") for k, r in enumerate(rules_raw))
    ids = [r.id for r in rules]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise RuleFileError(f"rules file {p}: rule id(s) {dup} appear more than once")
    lpr_raw = doc.get("lpr", [])
    if not isinstance(lpr_raw, list):
        raise RuleFileError(f"rules file {p}: lpr must be a list of [[lpr]] tables")
    lpr = tuple(sorted((_parse_lpr(e, f"rules file {p}: lpr[{k + 1}]") for k, e in enumerate(lpr_raw)),
                       key=lambda e: e.date))
    if any(r.lpr_multiple is not None for r in rules) and not lpr:
        raise RuleFileError(f"rules file {p}: a rule uses lpr_multiple but the file has no [[lpr]] table")
    return RuleSet(jur, _text(head, "title", where), str(head.get("currency", "")), rules, lpr, p)


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    v = table.get(key)
    if not isinstance(v, str) or not v.strip():
        raise RuleFileError(f"{where}.{key}: must be non-empty text, not {v!r}")
    return v.strip()


def _date(table: Mapping[str, Any], key: str, where: str, required: bool = True) -> dt.date | None:
    v = table.get(key)
    if v is None and not required:
        return None
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    raise RuleFileError(f"{where}.{key}: must be a date such as 2025-10-01, not {v!r}")


def _number(table: Mapping[str, Any], key: str, where: str, lo: float = 0.0) -> float | None:
    v = table.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
        raise RuleFileError(f"{where}.{key}: must be a number >= {lo:g}, not {v!r}")
    return float(v)


def _parse_rule(raw: Any, where: str) -> CapRule:
    if not isinstance(raw, Mapping):
        raise RuleFileError(f"{where}: must be a table")
    where = f"{where} {raw.get('id')!r}" if isinstance(raw.get("id"), str) else where
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise RuleFileError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(_RULE_KEYS)}")
    figure = _text(raw, "figure", where)
    if figure not in FIGURES:
        raise RuleFileError(f"{where}.figure: must be one of {', '.join(FIGURES)}, not {figure!r}")
    check = _text(raw, "check", where)
    if check not in ("max", "min"):
        raise RuleFileError(f"{where}.check: must be 'max' or 'min', not {check!r}")
    limit, multiple = _number(raw, "limit", where), _number(raw, "lpr_multiple", where)
    if (limit is None) == (multiple is None):
        raise RuleFileError(f"{where}: give exactly one of limit or lpr_multiple")
    if multiple is not None and figure not in RATE_FIGURES:
        raise RuleFileError(f"{where}.lpr_multiple: only rate figures ({', '.join(RATE_FIGURES)}) compare with the LPR")
    lenders = raw.get("lenders")
    if not isinstance(lenders, list) or not lenders or not all(isinstance(x, str) and x for x in lenders):
        raise RuleFileError(f"{where}.lenders: must be a non-empty list of lender types (or [\"*\"]), not {lenders!r}")
    covered = raw.get("covered_only", False)
    if not isinstance(covered, bool):
        raise RuleFileError(f"{where}.covered_only: must be true or false, not {covered!r}")
    terms = [_number(raw, k, where) for k in ("min_term_days", "max_term_days")]
    return CapRule(
        id=_text(raw, "id", where), title=_text(raw, "title", where), figure=figure,
        check=check,  # type: ignore[arg-type]
        limit=limit, lpr_multiple=multiple, lenders=tuple(lenders),
        effective=_date(raw, "effective", where) or dt.date.min, source=_text(raw, "source", where),
        until=_date(raw, "until", where, required=False),
        min_term_days=None if terms[0] is None else int(terms[0]),
        max_term_days=None if terms[1] is None else int(terms[1]),
        covered_only=covered, note=str(raw.get("note", "")),
    )


def _parse_lpr(raw: Any, where: str) -> LprEntry:
    if not isinstance(raw, Mapping) or set(raw) != {"date", "one_year"}:
        raise RuleFileError(f"{where}: must be a table with exactly date and one_year")
    rate = _number(raw, "one_year", where)
    if rate is None or rate >= 1:
        raise RuleFileError(f"{where}.one_year: must be a fraction such as 0.031, not {raw.get('one_year')!r}")
    return LprEntry(_date(raw, "date", where) or dt.date.min, rate)


def lpr_on(ruleset: RuleSet, when: dt.date) -> LprEntry:
    """The one-year LPR in force on ``when`` (the latest row on or before it)."""
    rows = [e for e in ruleset.lpr if e.date <= when]
    if not rows:
        first = ruleset.lpr[0].date if ruleset.lpr else None
        raise ConfigError(f"no one-year LPR on {when} in {ruleset.path.name} (its table starts {first}); pass the LPR")
    return rows[-1]


# --- checking --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LoanFacts:
    """The figures of one loan the caps compare (rates as fractions: 0.24 for 24 %); None = not known."""

    lender: str
    contract_date: dt.date
    annualised_rate: float | None = None
    annualised_rate_compound: float | None = None
    mapr: float | None = None
    amount: float | None = None
    partner_share: float | None = None
    term_days: int | None = None
    covered_borrower: bool = False
    lpr: float | None = None

    def figure(self, name: str) -> float | None:
        v = getattr(self, name)
        return None if v is None else float(v)


@dataclasses.dataclass(frozen=True)
class CapCheck:
    """The outcome of one rule: ``status``, the rule id, the figure, the limit and the source."""

    rule_id: str
    title: str
    status: Status
    figure_name: str
    figure: float
    check: str
    limit: float
    limit_text: str
    source: str
    effective: dt.date
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["effective"] = self.effective.isoformat()
        d["passed"] = self.passed
        return d


@dataclasses.dataclass(frozen=True)
class CapReport:
    jurisdiction: str
    lender: str
    contract_date: dt.date
    checks: tuple[CapCheck, ...]
    not_checked: tuple[tuple[str, str], ...]

    @property
    def violations(self) -> tuple[CapCheck, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {"jurisdiction": self.jurisdiction, "lender": self.lender,
                "contract_date": self.contract_date.isoformat(), "ok": self.ok,
                "checks": [c.as_dict() for c in self.checks],
                "not_checked": [{"rule_id": r, "reason": why} for r, why in self.not_checked]}


def _limit(rule: CapRule, ruleset: RuleSet, when: dt.date, lpr: float | None) -> tuple[float, str]:
    if rule.limit is not None:
        return rule.limit, (f"{rule.limit:.2%}" if rule.figure in RATE_FIGURES else f"{rule.limit:,.2f}")
    multiple = rule.lpr_multiple or 0.0  # a rule has a limit or a multiple (_parse_rule)
    if lpr is not None:
        rate, whence = lpr, "given"
    else:
        entry = lpr_on(ruleset, when)
        rate, whence = entry.one_year, f"from {entry.date}"
    value = multiple * rate
    return value, f"{multiple:g} x one-year LPR {rate:.2%} ({whence}) = {value:.2%}"


def check_caps(facts: LoanFacts, ruleset: RuleSet) -> CapReport:
    """Every rule of ``ruleset`` that binds ``facts.lender`` and the loan's term, checked against the facts."""
    if facts.lender not in ruleset.lenders and not any("*" in r.lenders for r in ruleset.rules):
        raise ConfigError(f"unknown lender type {facts.lender!r} for {ruleset.jurisdiction}; "
                          f"known: {', '.join(ruleset.lenders)}")
    checks: list[CapCheck] = []
    skipped: list[tuple[str, str]] = []
    for rule in ruleset.rules:
        if not rule.binds_lender(facts.lender, True):
            continue
        if not rule.binds_lender(facts.lender, facts.covered_borrower):
            skipped.append((rule.id, "binds covered borrowers only (32 CFR 232.3(g)); the borrower is not covered"))
            continue
        if rule.until is not None and facts.contract_date > rule.until:
            continue
        term = rule.binds_term(facts.term_days)
        if term is False:
            continue
        value = facts.figure(rule.figure)
        if term is None or value is None:
            skipped.append((rule.id, "no term_days given" if term is None else f"no {rule.figure} given"))
            continue
        if not math.isfinite(value):
            raise LoanError(f"{rule.figure} must be a finite number, not {value!r}")
        limit, text = _limit(rule, ruleset, facts.contract_date, facts.lpr)
        ok = value <= limit + 1e-12 if rule.check == "max" else value >= limit - 1e-12
        upcoming = facts.contract_date < rule.effective
        status: Status = ("upcoming-" if upcoming else "") + ("pass" if ok else "fail")  # type: ignore[assignment]
        checks.append(CapCheck(rule.id, rule.title, status, rule.figure, value, rule.check, limit, text,
                               rule.source, rule.effective, rule.note))
    return CapReport(ruleset.jurisdiction, facts.lender, facts.contract_date, tuple(checks), tuple(skipped))


@dataclasses.dataclass(frozen=True)
class PolicyCaps:
    """The tightest in-force rate and amount caps for one lender type on one date, with the rule ids."""

    rate_cap: float | None
    amount_cap: float | None
    rule_ids: tuple[str, ...]


def binding_caps(ruleset: RuleSet, lender: str, when: dt.date, *, lpr: float | None = None,
                 term_days: int | None = None, covered_borrower: bool = False) -> PolicyCaps:
    """The lowest ``max`` limit on a rate figure and on the amount among the rules that bind ``lender``
    on ``when`` (rules limited to some terms count when ``term_days`` is not given: the tighter cap)."""
    rate: list[tuple[float, str]] = []
    amount: list[tuple[float, str]] = []
    for rule in ruleset.rules:
        if rule.check != "max" or rule.effective > when or (rule.until is not None and when > rule.until):
            continue
        if not rule.binds_lender(lender, covered_borrower) or rule.binds_term(term_days) is False:
            continue
        value, _ = _limit(rule, ruleset, when, lpr)
        if rule.figure in RATE_FIGURES:
            rate.append((value, rule.id))
        elif rule.figure == "amount":
            amount.append((value, rule.id))
    best_rate = min(rate) if rate else None
    best_amount = min(amount) if amount else None
    ids = tuple(x[1] for x in (best_rate, best_amount) if x is not None)
    return PolicyCaps(best_rate[0] if best_rate else None, best_amount[0] if best_amount else None, ids)
