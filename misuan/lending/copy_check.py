"""Marketing-copy checker for Chinese and English credit promotions and product pages.

:func:`check_copy` applies the rules of ``rules/copy_rules.toml`` (:mod:`misuan.lending.copy_rules`)
to one text and returns a :class:`Finding` per offending passage, each with its rule id, severity,
explanation, sources and the exact character span ``text[start:end]``. The rules and what they
come from:

- ``rate-without-annualised``: a daily/monthly rate, a cost per day or an "as low as"/"低至" figure
  with no annualised rate anywhere (PBoC Announcement [2021] No. 3, 12 Mar 2021; CBIRC risk alerts
  29 Dec 2020 and 14 Mar 2022; credit-card notice Jul 2022; Regulation Z 12 CFR 1026.24(c)-(d));
- ``zero-interest-with-fees`` / ``discount-with-fees``: "免息/0 interest" or "优惠/discount" wording on
  a product that charges fees, from its :class:`ProductTerms` or as the copy itself states (CBIRC
  29 Dec 2020: "zero interest" is not zero cost; CBIRC 14 Mar 2022: no credit packaged as a discount);
- ``guaranteed-approval``, ``no-credit-check``: 必下款, 秒批, 无视征信, guaranteed approval, no credit
  check (CBIRC 14 Mar 2022: lowered lending thresholds; FTC Act section 5);
- ``student-targeting``: 大学生, 校园贷, students (five-agency notice, Mar 2021; 12 CFR 1026.57);
- ``over-borrowing``: 多借多得, 想借就借, borrow more (CBIRC alerts; credit-card notice Jul 2022);
- ``missing-risk-warning``: a credit promotion without 理性借贷/量力而行/"borrow responsibly".

Matching is Python's ``re`` over the text with full-width ASCII forms folded one character for one
(so spans stay those of the original). A phrase is not reported where a negation cue stands in the
same clause just before or after it ("we never promise guaranteed approval", "不向在校大学生放贷").
What the checker cannot see is listed in ``docs/lending.md`` ("Marketing-copy checks").
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from misuan.errors import ComplianceViolation, ConfigError
from misuan.lending.copy_rules import CopyRule, CopyRuleSet, LangPatterns, Language, load_copy_rules
from misuan.params import ParamError, check_params, param

__all__ = [
    "VIOLATIONS_EXIT_CODE",
    "CopyCheckParams",
    "Finding",
    "ProductTerms",
    "check_copy",
    "detect_language",
    "failing",
]

VIOLATIONS_EXIT_CODE = ComplianceViolation.exit_code  # 10, as `misuan exit-codes` lists it
"""Exit code of ``misuan lending copy`` when it finds a violation (0: none; 2: bad arguments or rule file)."""

LanguageChoice = Literal["auto", "zh", "en"]
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
# full-width ASCII forms (U+FF01-FF5E) and the ideographic space, folded to ASCII: one char for one
_FOLD = {**{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}, 0x3000: 0x20}
_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")
# a run of quoted phrases ending in the opening quote of the match: “免息”、“秒批”“
_QUOTED_RUN = re.compile(r'(?:[“"「『][^“”"「」『』\n]{1,16}[”"」』][\s、/和及与]*)+[“"「『]\s*$')


@dataclasses.dataclass(frozen=True)
class ProductTerms:
    """What the promoted product charges, to check "免息/interest-free" and "优惠/discount" claims against.

    A claim of zero interest is misleading when the product charges fees or interest (CBIRC risk
    alert, 29 Dec 2020: "零利息" is not zero cost); a "discount" is misleading when it charges fees
    (CBIRC risk alert, 14 Mar 2022: no credit packaged as "优惠").
    """

    name: str = param("", "the product's name, quoted in findings")
    interest_rate: float = param(0.0, "nominal annual interest rate as a fraction (0.072 = 7.2 %)", ge=0)
    fees: Mapping[str, float] = param(
        {}, "fees by name, e.g. { instalment_fee = 0.006 }: an amount or a rate; above 0 means charged"
    )

    def __post_init__(self) -> None:
        check_params(self, "terms")
        bad = sorted(k for k, v in self.fees.items() if v < 0)
        if bad:
            raise ParamError(f"fees.{bad[0]}", f"must be 0 or more, not {self.fees[bad[0]]}", "terms")

    def costs(self, kinds: Sequence[str]) -> list[str]:
        """What of ``kinds`` ("fees", "interest") the product charges, in words; empty if nothing."""
        out = [f"fee {k} = {v:g}" for k, v in sorted(self.fees.items()) if v > 0] if "fees" in kinds else []
        if "interest" in kinds and self.interest_rate > 0:
            out.append(f"interest rate {self.interest_rate:g}")
        return out


@dataclasses.dataclass(frozen=True)
class CopyCheckParams:
    """How the checker reads a text: rules left out and the reach of negations and fee amounts."""

    ignore: Sequence[str] = param([], "rule ids not to check, e.g. [\"missing-risk-warning\"]")
    negation_window_zh: int = param(10, "characters before/after a Chinese phrase searched for a negation", ge=0, le=200)
    negation_window_en: int = param(40, "characters before/after an English phrase searched for a negation", ge=0, le=400)
    fee_window_zh: int = param(12, "characters around a Chinese fee word searched for its amount", ge=0, le=200)
    fee_window_en: int = param(25, "characters around an English fee word searched for its amount", ge=0, le=400)

    def __post_init__(self) -> None:
        check_params(self, "copy check")


_DEFAULT_PARAMS = CopyCheckParams()  # checked once, not per call (check_params costs ~0.1 ms)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One offending passage: ``text == document[start:end]`` (Python string indices, end exclusive).

    Document-level findings (a missing risk warning) span the whole document, less its leading and
    trailing whitespace.
    """

    rule_id: str
    severity: str
    title: str
    explanation: str
    sources: tuple[str, ...]
    start: int
    end: int
    text: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"sources": list(self.sources)}


def detect_language(text: str) -> Language:
    """"zh" when Chinese characters make up at least a fifth of the letters, else "en"."""
    cjk = len(_CJK.findall(text))
    return "zh" if cjk and cjk * 5 >= cjk + len(_LATIN.findall(text)) else "en"


def failing(findings: Sequence[Finding], fail_on: str = "warning") -> list[Finding]:
    """The findings that fail a check: every one for ``fail_on="warning"``, errors only for ``"error"``."""
    if fail_on not in ("warning", "error"):
        raise ConfigError(f"fail_on must be 'warning' or 'error', not {fail_on!r}")
    return [f for f in findings if fail_on == "warning" or f.severity == "error"]


def check_copy(
    text: str,
    terms: ProductTerms | None = None,
    language: LanguageChoice = "auto",
    *,
    params: CopyCheckParams | None = None,
    rules: CopyRuleSet | None = None,
) -> list[Finding]:
    """Check one promotion or product page; the findings in order of position.

    ``language``: "zh" or "en" applies that language's phrases only; "auto" applies the English
    phrases to every text and the Chinese ones where the text has Chinese characters, and explains
    in the text's main language. ``terms``: the product's fees and interest, to check zero-interest
    and discount claims against (without them only fees the copy itself states count).
    """
    if not isinstance(text, str):
        raise ConfigError(f"the copy must be text (str), not {type(text).__name__}")
    if language not in ("auto", "zh", "en"):
        raise ConfigError(f"language must be auto, zh or en, not {language!r}")
    params = params if params is not None else _DEFAULT_PARAMS
    rules = rules if rules is not None else load_copy_rules()
    ids = rules.ids
    unknown = sorted(set(params.ignore) - set(ids))
    if unknown:
        raise ConfigError(f"cannot ignore unknown copy rule(s) {unknown}; the rules are {', '.join(rules.ids)}")
    doc = _Document(text, language, rules, params)
    findings: list[Finding] = []
    for rule in rules.rules:
        if rule.id not in params.ignore:
            findings += doc.apply(rule, terms)
    return sorted(findings, key=lambda f: (f.start, f.end, ids.index(f.rule_id)))


class _Document:
    """One text, folded, with its clause boundaries; applies rules to it."""

    def __init__(self, text: str, language: LanguageChoice, rules: CopyRuleSet, params: CopyCheckParams) -> None:
        self.original = text
        self.text = text.translate(_FOLD) if _FULL_WIDTH.search(text) else text
        self.rules = rules
        self.params = params
        has_cjk = _CJK.search(self.text) is not None
        self.languages: tuple[Language, ...] = (
            (language,) if language != "auto" else (("zh", "en") if has_cjk else ("en",))
        )
        self.explain_in: Language = language if language != "auto" else detect_language(self.text)
        breaks = list(rules.breaks.finditer(self.text))
        self._break_starts = [m.start() for m in breaks]
        self._break_ends = [m.end() for m in breaks]
        self._fee_spans: list[tuple[int, int, str]] | None = None
        self._credit: bool | None = None

    # --- rules ---------------------------------------------------------------------------------------
    def apply(self, rule: CopyRule, terms: ProductTerms | None) -> list[Finding]:
        if rule.credit_only and not self.is_credit_copy():
            return []
        if rule.check == "required_phrase":
            if self._present(rule.requires):
                return []
            start = len(self.text) - len(self.text.lstrip())
            end = max(start, len(self.text.rstrip()))
            return [self._finding(rule, start, end, f"the text has no {rule.requires_what}")]
        if rule.check == "unless_present":
            if self._present(rule.requires):
                return []
            spans = self._matches(rule.patterns, negatable=False)
            return [self._finding(rule, s, e, f"the text has no {rule.requires_what}") for s, e in spans]
        spans = self._matches(rule.patterns, negatable=True)
        if rule.check == "phrase" or not spans:
            return [self._finding(rule, s, e) for s, e in spans]
        costs = terms.costs(rule.cost) if terms is not None else []
        label = f"the terms of {terms.name!r}" if terms is not None and terms.name else "the product's terms"
        why = [f"{label} charge {', '.join(costs)}"] if costs else []
        why += [f"the copy states a fee: {quote!r}" for _, _, quote in self.fee_spans()[:2]]
        if not why:
            return []
        return [self._finding(rule, s, e, "; ".join(why)) for s, e in spans]

    def _finding(self, rule: CopyRule, start: int, end: int, detail: str = "") -> Finding:
        return Finding(
            rule_id=rule.id, severity=rule.severity, title=rule.title,
            explanation=rule.explanation_zh if self.explain_in == "zh" else rule.explanation,
            sources=tuple(s.citation for s in rule.sources),
            start=start, end=end, text=self.original[start:end], detail=detail,
        )

    # --- matching ------------------------------------------------------------------------------------
    def is_credit_copy(self) -> bool:
        if self._credit is None:
            self._credit = any(self._found(self.rules.credit, lang) for lang in self.languages)
        return self._credit

    def _found(self, patterns: LangPatterns, lang: Language) -> bool:
        pat = patterns.get(lang)
        return pat is not None and pat.search(self.text) is not None

    def _present(self, patterns: LangPatterns) -> bool:
        """Whether a pattern of any language matches: an annualised rate counts in either language."""
        return any(self._found(patterns, lang) for lang in ("zh", "en"))

    def _matches(self, patterns: LangPatterns, *, negatable: bool) -> list[tuple[int, int]]:
        """Non-overlapping spans of the patterns' matches, leftmost-longest first, negated ones left out."""
        spans: list[tuple[int, int, Language]] = []
        for lang in self.languages:
            pat = patterns.get(lang)
            if pat is not None:
                spans += [(m.start(), m.end(), lang) for m in pat.finditer(self.text) if m.end() > m.start()]
        out: list[tuple[int, int]] = []
        last_end = -1
        for s, e, lang in sorted(spans, key=lambda t: (t[0], -t[1])):
            if s < last_end:
                continue
            last_end = e
            if not (negatable and self._negated(s, e, lang)):
                out.append((s, e))
        return out

    def _clause(self, start: int, end: int) -> tuple[int, int]:
        """The clause around ``text[start:end]``: from the last break before it to the next after it."""
        i = bisect.bisect_right(self._break_ends, start)
        lo = self._break_ends[i - 1] if i else 0
        j = bisect.bisect_left(self._break_starts, end)
        hi = self._break_starts[j] if j < len(self._break_starts) else len(self.text)
        return lo, hi

    def _negated(self, start: int, end: int, lang: Language) -> bool:
        """A negation cue within the window before or after the match, in its clause. A quoted phrase in
        a list of quoted phrases (警惕“免息”“秒批”“无视征信”等) counts from the start of the list."""
        window = self.params.negation_window_zh if lang == "zh" else self.params.negation_window_en
        lo, hi = self._clause(start, end)
        quoted = _QUOTED_RUN.search(self.text, lo, start)
        before_from = max(lo, (quoted.start() if quoted else start) - window)
        before, after = self.rules.negated_before.get(lang), self.rules.negated_after.get(lang)
        return bool(
            (before is not None and before.search(self.text, before_from, start))
            or (after is not None and after.search(self.text, end, min(hi, end + window)))
        )

    def fee_spans(self) -> list[tuple[int, int, str]]:
        """Fees the copy says are charged: (start, end, quote) of each fee word with its amount or verb."""
        if self._fee_spans is None:
            self._fee_spans = []
            for lang in self.languages:
                self._fee_spans += self._charged_fees(lang)
            self._fee_spans.sort()
        return self._fee_spans

    def _charged_fees(self, lang: Language) -> list[tuple[int, int, str]]:
        fees = self.rules.fees
        words = fees.words.get(lang)
        if words is None:
            return []
        window = self.params.fee_window_zh if lang == "zh" else self.params.fee_window_en
        out = []
        for m in words.finditer(self.text):
            lo, hi = self._clause(m.start(), m.end())
            before = self.text[max(lo, m.start() - window): m.start()]
            after = self.text[m.end(): min(hi, m.end() + window)]
            if _hit(fees.waived_before.get(lang), before) or _hit(fees.waived_after.get(lang), after):
                continue
            if (fees.amount.search(before) or fees.amount.search(after)
                    or _hit(fees.charged_before.get(lang), before) or _hit(fees.charged_after.get(lang), after)):
                quote = self.original[max(lo, m.start() - window): min(hi, m.end() + window)].strip()
                out.append((m.start(), m.end(), quote))
        return out


def _hit(pattern: re.Pattern[str] | None, text: str) -> bool:
    return pattern is not None and pattern.search(text) is not None
