"""Marketing-copy rule sets: the TOML data of ``rules/copy_rules.toml`` read, validated and compiled.

The rules are data (phrases as Python ``re`` patterns, severity, explanation, sources); the code in
:mod:`misuan.lending.copy_check` only knows the four kinds of check a rule can ask for
(:data:`CHECKS`). Each rule cites where it comes from: PBoC Announcement [2021] No. 3 (12 Mar 2021),
the CBIRC consumer-protection risk alerts of 29 Dec 2020 and 14 Mar 2022, the five-agency notice on
college students' internet consumer loans (Mar 2021), the CBIRC/PBoC credit-card notice (Jul 2022),
US Regulation Z 12 CFR 1026.24 / 1026.57 and the FTC Act; the file's ``[sources]`` table holds the
citations. A malformed rule file raises :class:`~misuan.errors.ConfigError` (exit 2) naming the
file and the key to fix.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from misuan.errors import ConfigError
from misuan.toml_files import parse_toml, read_toml

__all__ = [
    "CHECKS",
    "LANGUAGES",
    "SEVERITIES",
    "CopyRule",
    "CopyRuleSet",
    "FeeSpec",
    "Language",
    "LangPatterns",
    "Source",
    "load_copy_rules",
]

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
SEVERITIES = ("error", "warning")
CHECKS = ("phrase", "unless_present", "claim_with_cost", "required_phrase")
COSTS = ("fees", "interest")
RULE_FILE_VERSION = 1
_RULE_KEYS = {
    "id", "severity", "check", "title", "explanation", "explanation_zh", "sources", "patterns", "requires",
    "credit_only", "cost",
}
_FEE_KEYS = ("words", "waived_before", "waived_after", "charged_before", "charged_after")


@dataclasses.dataclass(frozen=True)
class Source:
    """A rule or regulation a copy rule comes from: ``citation`` names it, ``summary`` says what it asks."""

    key: str
    citation: str
    summary: str


@dataclasses.dataclass(frozen=True)
class LangPatterns:
    """One compiled alternation per language (``None`` where the rule has no pattern in it)."""

    zh: re.Pattern[str] | None = None
    en: re.Pattern[str] | None = None

    def get(self, language: Language) -> re.Pattern[str] | None:
        return self.zh if language == "zh" else self.en

    def __bool__(self) -> bool:
        return self.zh is not None or self.en is not None


@dataclasses.dataclass(frozen=True)
class CopyRule:
    id: str
    severity: str
    check: str
    title: str
    explanation: str
    explanation_zh: str
    sources: tuple[Source, ...]
    patterns: LangPatterns
    requires: LangPatterns
    requires_what: str  # what ``requires`` looks for, in words (quoted in findings)
    credit_only: bool  # applies only to credit copy (a pattern of the set's ``credit`` matches)
    cost: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class FeeSpec:
    """How the copy itself says a fee is charged (the ``[fees]`` table), per language.

    ``words``: fee words; ``amount``: a non-zero amount (both languages); ``waived_*``: anchored
    patterns just before/after the fee word that waive it; ``charged_*``: that charge it.
    """

    words: LangPatterns
    amount: re.Pattern[str]
    waived_before: LangPatterns
    waived_after: LangPatterns
    charged_before: LangPatterns
    charged_after: LangPatterns


@dataclasses.dataclass(frozen=True)
class CopyRuleSet:
    name: str
    path: str
    rules: tuple[CopyRule, ...]
    breaks: re.Pattern[str]  # what ends a clause
    credit: LangPatterns  # what makes a text credit copy
    negated_before: LangPatterns
    negated_after: LangPatterns
    fees: FeeSpec

    def rule(self, rule_id: str) -> CopyRule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise ConfigError(f"no copy rule {rule_id!r}; the rules are {', '.join(r.id for r in self.rules)}")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)


# --- loading -------------------------------------------------------------------------------------
DEFAULT_RULES = "copy_rules.toml"


def load_copy_rules(path: str | Path | None = None) -> CopyRuleSet:
    """The rule set in ``path`` (TOML), or the packaged ``misuan/lending/rules/copy_rules.toml``."""
    if path is None:
        return _default_rules()
    p = Path(path)
    return parse_copy_rules(read_toml(p, "copy rule file"), str(p))


@functools.lru_cache(maxsize=1)
def _default_rules() -> CopyRuleSet:
    ref = resources.files("misuan.lending").joinpath("rules").joinpath(DEFAULT_RULES)
    doc = parse_toml(ref.read_text(encoding="utf-8"), f"misuan/lending/rules/{DEFAULT_RULES}")
    return parse_copy_rules(doc, f"misuan/lending/rules/{DEFAULT_RULES}")


def parse_copy_rules(doc: Mapping[str, Any], where: str) -> CopyRuleSet:
    """Validate a parsed rule file; every problem raises ConfigError naming ``where`` and the key."""
    _known_keys(doc, {"version", "name", "description", "sources", "clauses", "negation", "fees", "credit", "rule"}, where)
    if doc.get("version") != RULE_FILE_VERSION:
        raise ConfigError(f"{where}: version must be {RULE_FILE_VERSION}, not {doc.get('version')!r}")
    sources = _sources(_table(doc, "sources", where), where)
    rules_raw = doc.get("rule")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise ConfigError(f"{where}: give at least one [[rule]] table")
    rules = tuple(_rule(r, i, sources, where) for i, r in enumerate(rules_raw))
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise ConfigError(f"{where}: rule id {r.id!r} appears twice; rule ids must be unique")
        seen.add(r.id)
    clauses = _table(doc, "clauses", where)
    negation = _table(doc, "negation", where)
    _known_keys(_table(doc, "credit", where), set(LANGUAGES), f"{where}: credit")
    _known_keys(negation, {f"{lang}_{side}" for lang in LANGUAGES for side in ("before", "after")}, f"{where}: negation")
    return CopyRuleSet(
        name=str(doc.get("name", where)),
        path=where,
        rules=rules,
        breaks=_compile([_text(clauses, "breaks", f"{where}: clauses")], f"{where}: clauses.breaks", 0),
        credit=_lang_patterns(_table(doc, "credit", where), "{lang}", f"{where}: credit"),
        negated_before=_lang_patterns(negation, "{lang}_before", f"{where}: negation"),
        negated_after=_lang_patterns(negation, "{lang}_after", f"{where}: negation"),
        fees=_fees(_table(doc, "fees", where), where),
    )


def _rule(raw: Any, i: int, sources: Mapping[str, Source], where: str) -> CopyRule:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: rule[{i}] must be a table")
    rid = raw.get("id")
    if not isinstance(rid, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", rid):
        raise ConfigError(f"{where}: rule[{i}].id must be lower-case letters, digits and '-', not {rid!r}")
    at = f"{where}: rule {rid!r}"
    _known_keys(raw, _RULE_KEYS, at)
    severity, check = raw.get("severity"), raw.get("check")
    if severity not in SEVERITIES:
        raise ConfigError(f"{at}: severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    if check not in CHECKS:
        raise ConfigError(f"{at}: check must be one of {', '.join(CHECKS)}, not {check!r}")
    keys = raw.get("sources")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{at}: sources must be a non-empty list of keys of [sources]")
    missing = [k for k in keys if k not in sources]
    if missing:
        raise ConfigError(f"{at}: sources {missing} are not in [sources]; known: {', '.join(sorted(sources))}")
    cost = raw.get("cost", [])
    if not isinstance(cost, list) or not set(cost) <= set(COSTS) or (check == "claim_with_cost") != bool(cost):
        raise ConfigError(f"{at}: cost must list some of {', '.join(COSTS)} for check claim_with_cost, and only there")
    rule = CopyRule(
        id=rid, severity=severity, check=check,
        title=_text(raw, "title", at), explanation=_text(raw, "explanation", at),
        explanation_zh=_text(raw, "explanation_zh", at),
        sources=tuple(sources[k] for k in keys),
        patterns=_lang_patterns(_table(raw, "patterns", at, required=False), "{lang}", f"{at}: patterns"),
        requires=_lang_patterns(_table(raw, "requires", at, required=False), "{lang}", f"{at}: requires"),
        requires_what=_requires_what(raw, at),
        credit_only=_flag(raw, "credit_only", at),
        cost=tuple(cost),
    )
    needs = {"phrase": ("patterns",), "unless_present": ("patterns", "requires"),
             "claim_with_cost": ("patterns",), "required_phrase": ("requires",)}[check]
    for name in needs:
        if not getattr(rule, name):
            raise ConfigError(f"{at}: check {check} needs [rule.{name}] with zh and/or en patterns")
    return rule


def _sources(raw: Mapping[str, Any], where: str) -> dict[str, Source]:
    out = {}
    for key, val in raw.items():
        if not isinstance(val, Mapping):
            raise ConfigError(f"{where}: sources.{key} must be a table with citation and summary")
        _known_keys(val, {"citation", "summary", "date", "url"}, f"{where}: sources.{key}")
        out[key] = Source(key, _text(val, "citation", f"{where}: sources.{key}"),
                          _text(val, "summary", f"{where}: sources.{key}"))
    return out


def _fees(raw: Mapping[str, Any], where: str) -> FeeSpec:
    at = f"{where}: fees"
    _known_keys(raw, {"amount"} | {f"{lang}_{k}" for lang in LANGUAGES for k in _FEE_KEYS}, at)
    amount = raw.get("amount")
    if not isinstance(amount, list) or not amount:
        raise ConfigError(f"{at}.amount must be a non-empty list of patterns")
    parts = {k: _lang_patterns(raw, "{lang}_" + k, at) for k in _FEE_KEYS}
    if not parts["words"]:
        raise ConfigError(f"{at}: give zh_words and/or en_words")
    return FeeSpec(amount=_compile(amount, f"{at}.amount", re.IGNORECASE), **parts)


def _lang_patterns(table: Mapping[str, Any], key: str, at: str) -> LangPatterns:
    if key == "{lang}":
        _known_keys(table, {*LANGUAGES, "what"}, at)
    compiled: dict[str, re.Pattern[str] | None] = {}
    for lang in LANGUAGES:
        name = key.format(lang=lang)
        items = table.get(name)
        if items is None:
            compiled[lang] = None
            continue
        if not isinstance(items, list) or not all(isinstance(p, str) and p for p in items):
            raise ConfigError(f"{at}.{name} must be a list of non-empty pattern strings")
        compiled[lang] = _compile(items, f"{at}.{name}", re.IGNORECASE if lang == "en" else 0) if items else None
    return LangPatterns(zh=compiled["zh"], en=compiled["en"])


def _compile(patterns: list[Any], at: str, flags: int) -> re.Pattern[str]:
    for i, p in enumerate(patterns):
        if not isinstance(p, str):
            raise ConfigError(f"{at}[{i}] must be a pattern string, not {p!r}")
        try:
            re.compile(p, flags)
        except re.error as exc:
            raise ConfigError(f"{at}[{i}] is not a valid regular expression ({exc}): {p!r}") from None
    return re.compile("|".join(f"(?:{p})" for p in patterns), flags)


def _table(doc: Mapping[str, Any], key: str, at: str, *, required: bool = True) -> Mapping[str, Any]:
    val = doc.get(key)
    if val is None and not required:
        return {}
    if not isinstance(val, Mapping):
        raise ConfigError(f"{at}: [{key}] must be a table")
    return val


def _text(doc: Mapping[str, Any], key: str, at: str) -> str:
    val = doc.get(key)
    if not isinstance(val, str) or not val.strip():
        raise ConfigError(f"{at}: {key} must be a non-empty string")
    return val


def _requires_what(raw: Mapping[str, Any], at: str) -> str:
    req = _table(raw, "requires", at, required=False)
    return _text(req, "what", f"{at}: requires") if req else ""


def _flag(doc: Mapping[str, Any], key: str, at: str) -> bool:
    val = doc.get(key, False)
    if not isinstance(val, bool):
        raise ConfigError(f"{at}: {key} must be true or false, not {val!r}")
    return val


def _known_keys(doc: Mapping[str, Any], known: set[str], at: str) -> None:
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"{at}: unknown key(s) {unknown}; allowed keys are {sorted(known)}")
