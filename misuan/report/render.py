"""Render a :class:`~misuan.report.schema.Summary` as one self-contained HTML page.

No external CSS, scripts or fonts: the style sheet is inline, plots are inline SVG (:mod:`.svg`), and
every piece of text from the summary goes through :func:`html.escape` (feature and party names come
from user data). The page prints cleanly (sections do not break inside figures).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

import numpy as np

import misuan
from misuan.atomic_files import write_atomic
from misuan.ml.metrics import KsCurve, RocCurve, ks_curve, roc_auc, roc_curve
from misuan.report import svg
from misuan.report.schema import MODEL_KEYS, PLAINTEXT, FeatureIv, Ledger, LedgerEntry, Summary

__all__ = ["iv_strength", "model_results", "render_html", "write_html"]

PARTY_COLORS = ("#1f5fa8", "#d9822b", "#2a9d8f", "#8e44ad", "#7f8c8d")
# (colour, dash, width): the plaintext curve is dotted on top of the joint one, which it often hides
MODEL_STYLE = {
    "joint": ("#1f5fa8", "", 3.2),
    "bank_only": ("#d9822b", "8 5", 2.2),
    "plaintext": ("#14702f", "0.5 5", 2.6),
}
OTHER_MODEL_STYLE = ("#555555", "3 3", 2.0)
MODEL_NAMES = {
    "joint": "Joint model (SecureBoost, bank + partner)",
    "bank_only": "Bank-only model (bank's features)",
    "plaintext": "Plaintext XGBoost (joined data, no privacy)",
}
FORM_WORDS = {
    "plaintext": "readable value",
    "ciphertext": "encrypted: the recipient cannot read it",
    "blinded": "blinded: unreadable without the sender's secret",
    "aggregate": "aggregate over many customers",
}
# Siddiqi's customary thresholds for the information value of a scorecard characteristic
IV_BANDS = ((0.02, "not predictive"), (0.1, "weak"), (0.3, "medium"), (0.5, "strong"))


def iv_strength(iv: float) -> str:
    """The customary label of an information value: below 0.02 not predictive, up to 0.1 weak, ..."""
    for upper, label in IV_BANDS:
        if iv < upper:
            return label
    return "very strong (check for leakage)"


@dataclasses.dataclass(frozen=True)
class ModelResult:
    key: str
    name: str
    auc: float
    ks: float
    roc: RocCurve
    ks_curve: KsCurve

    @property
    def gini(self) -> float:
        return 2.0 * self.auc - 1.0


def model_results(summary: Summary) -> list[ModelResult]:
    """AUC, KS and curves of every evaluated model: joint, bank-only, plaintext (if given), then others."""
    ev = summary.evaluation
    y = np.asarray(ev.y_true, dtype=np.int8)
    known = [k for k in (*MODEL_KEYS, PLAINTEXT) if k in ev.scores]
    keys = known + [k for k in ev.scores if k not in known]
    out = []
    for key in keys:
        p = np.asarray(ev.scores[key], dtype=np.float64)
        out.append(
            ModelResult(
                key=key,
                name=ev.model_names.get(key, MODEL_NAMES.get(key, key)),
                auc=roc_auc(y, p),
                ks=ks_curve(y, p).ks,
                roc=roc_curve(y, p),
                ks_curve=ks_curve(y, p),
            )
        )
    return out


# --- formatting ------------------------------------------------------------------------------------
def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _int(n: int) -> str:
    return f"{n:,}"


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %"


def _bytes(n: int | None) -> str:
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover - loop always returns


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _when(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _shape(shape: Sequence[int]) -> str:
    return "one value" if not shape else " × ".join(_int(s) for s in shape)


def _signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], css: str = "", numeric: Sequence[int] = ()) -> str:
    """A table; ``head`` is escaped here, cells must already be HTML; ``numeric`` columns align right."""
    cls = f' class="{css}"' if css else ""
    th = "".join(f'<th{" class=num" if i in numeric else ""}>{_e(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table{cls}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _explain(officer: str, auditor: str) -> str:
    """Two short plain-language notes; the arguments are trusted prose written in this module."""
    return (
        '<div class="explain"><div><h4>For the risk officer</h4><p>'
        + officer
        + '</p></div><div><h4>For the auditor</h4><p>'
        + auditor
        + "</p></div></div>"
    )


class _Parties:
    """Colours and roles of the job's parties, for badges and bars."""

    def __init__(self, summary: Summary) -> None:
        self.parties = summary.job.parties
        self.color = {p.name: PARTY_COLORS[i % len(PARTY_COLORS)] for i, p in enumerate(self.parties)}
        self.label_party = next(p.name for p in self.parties if p.role == "label_party")

    def badge(self, name: str) -> str:
        return f'<span class="badge" style="background:{self.color.get(name, "#777")}">{_e(name)}</span>'


# --- sections --------------------------------------------------------------------------------------
def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _cost_of_privacy(models: dict[str, ModelResult]) -> float | None:
    """Plaintext AUC - joint AUC, or None when the job had no plaintext baseline."""
    plain = models.get(PLAINTEXT)
    return None if plain is None else plain.auc - models["joint"].auc


def _key_figures(summary: Summary, models: dict[str, ModelResult]) -> str:
    joint, bank = models["joint"], models["bank_only"]
    value = joint.auc - bank.auc
    cost = _cost_of_privacy(models)
    cost_card = (
        ("Cost of privacy", "not measured", "no plaintext baseline in this job", "")
        if cost is None
        else ("Cost of privacy", _signed(cost), "AUC lost against plaintext XGBoost", "good" if abs(cost) < 0.01 else "warn")
    )
    ledgers_ok = all(g.verified for g in summary.ledgers) and bool(summary.ledgers)
    cards = [
        ("Joint model AUC", f"{joint.auc:.3f}", f"KS {joint.ks:.3f} · Gini {joint.gini:.3f}", ""),
        ("Value of partner data", _signed(value), "AUC gain over the bank-only model", "good" if value > 0 else "bad"),
        cost_card,
        ("Shared customers", _int(summary.psi.intersection_size), "found by private set intersection", ""),
        (
            "Disclosure ledgers",
            "verified" if ledgers_ok else "NOT verified",
            f"{sum(len(g.entries) for g in summary.ledgers)} entries in {len(summary.ledgers)} ledger(s)",
            "good" if ledgers_ok else "bad",
        ),
    ]
    return '<div class="cards">' + "".join(
        f'<div class="card {cls}"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div><div class="s">{_e(s)}</div></div>'
        for k, v, s, cls in cards
    ) + "</div>"


def _job_section(summary: Summary, parties: _Parties) -> str:
    job = summary.job
    start, end = _when(job.started_at), _when(job.finished_at)
    facts = [
        ("Job ID", _e(job.job_id)),
        ("Started", _e(job.started_at)),
        ("Finished", _e(job.finished_at)),
        ("Duration", _e(_duration((end - start).total_seconds()))),
        ("Machine", _e(job.machine)),
    ]
    if job.dataset:
        facts.append(("Data", _e(job.dataset)))
    if job.misuan_version:
        facts.append(("misuan version", _e(job.misuan_version)))
    facts_html = '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    role_words = {"label_party": "label party: holds the default labels and the decryption key",
                  "feature_party": "feature party: contributes features only"}
    party_rows = [
        [
            parties.badge(p.name),
            _e(p.organisation or "–"),
            _e(role_words[p.role]),
            _int(p.rows),
            _int(p.columns),
            _e(_bytes(p.bytes_sent)),
            _e(_bytes(p.bytes_received)),
            _e(p.machine or "same as above"),
        ]
        for p in job.parties
    ]
    html = facts_html + "<h3>Parties</h3>" + _table(
        ["Party", "Organisation", "Role", "Rows", "Feature columns", "Sent", "Received", "Machine"],
        party_rows,
        numeric=(3, 4, 5, 6),
    )
    if job.steps:
        total = sum(s.seconds for s in job.steps) or 1.0
        step_rows = [
            [
                _e(s.name),
                _e(s.kind),
                _e(s.status),
                _e(_duration(s.seconds)),
                f'<span class="meter"><span style="width:{100 * s.seconds / total:.1f}%"></span></span>',
            ]
            for s in job.steps
        ]
        html += "<h3>Steps</h3>" + _table(["Step", "Kind", "Status", "Time", "Share of job time"], step_rows, numeric=(3,))
    return _section("job", "1. Job summary", html)


def _psi_section(summary: Summary, parties: _Parties) -> str:
    psi = summary.psi
    n = psi.intersection_size
    rows = [
        [parties.badge(name), _int(count), _int(n), _e(_pct(n / count) if count else "–"), _int(count - n)]
        for name, count in psi.rows.items()
    ]
    if psi.mode == "both":
        mode = "Both parties learned which customers are shared (each needs them to train on the same rows)."
    elif psi.mode == "size":
        mode = "Neither party learned which customers are shared; both learned only how many there are."
    else:
        mode = f"Only {_e(psi.mode)} learned which customers are shared; the other party learned only the count."
    details = f"<p><strong>Who learned what:</strong> {mode}</p>"
    if psi.normalization:
        details += f"<p><strong>ID normalisation before matching:</strong> {_e(psi.normalization)}</p>"
    if psi.seconds is not None:
        details += f"<p><strong>Time:</strong> {_e(_duration(psi.seconds))}</p>"
    html = _table(
        ["Party", "Customers put in", "Shared", "Share of its customers", "Not shared (stay private)"],
        rows,
        numeric=(1, 2, 3, 4),
    ) + details + _explain(
        "The model can only learn from customers both institutions know. This is how many they share; the "
        "rest of each customer list never left its owner.",
        "Private set intersection compares blinded IDs (hashed and raised to each side's secret key), so "
        "neither side can read the other's customers outside the intersection. The ledger below records "
        "exactly what each side received.",
    )
    return _section("psi", "2. Shared customers (private set intersection)", html)


def _monotonic(f: FeatureIv) -> bool:
    if f.monotonic is not None:
        return f.monotonic
    w = np.array([b.woe for b in f.bins if not b.contains_missing])
    d = np.diff(w)
    return bool(np.all(d >= 0) or np.all(d <= 0))


def _iv_section(summary: Summary, parties: _Parties) -> str:
    feats = sorted(summary.iv, key=lambda f: -f.iv)
    strength_class = {"not predictive": "s0", "weak": "s1", "medium": "s2", "strong": "s3"}
    rows = []
    for i, f in enumerate(feats, 1):
        label = iv_strength(f.iv)
        rows.append(
            [
                str(i),
                f'<span class="feat">{_e(f.feature)}</span>',
                parties.badge(f.party),
                f"{f.iv:.4f}",
                f'<span class="pill {strength_class.get(label, "s4")}">{_e(label)}</span>',
                f"{f.ks:.3f}" if f.ks is not None else "–",
                str(len(f.bins)) + (f'<br><small>{_e(f.method)}</small>' if f.method else ""),
                svg.woe_sparkbars([b.woe for b in f.bins], [b.label for b in f.bins]),
                "yes" if _monotonic(f) else '<span class="warn-text">no</span>',
            ]
        )
    table = _table(
        ["#", "Feature", "Party", "IV", "Strength", "KS", "Bins", "WOE by bin", "Monotonic"],
        rows,
        css="iv",
        numeric=(0, 3, 5, 6),
    )
    by_party = Counter(f.party for f in feats if f.iv >= 0.1)
    strong_note = ", ".join(f"{_e(p)}: {c}" for p, c in by_party.items()) or "none"
    html = (
        table
        + f'<p class="note">Bars: WOE of each bin in bin order, <span style="color:{svg.WOE_POSITIVE}">above '
        f'the line WOE &gt; 0</span>, <span style="color:{svg.WOE_NEGATIVE}">below it WOE &lt; 0</span>. '
        f"{_e(summary.woe_definition)}. IV = Σ (share of goods − share of bads) × WOE. "
        "Strength by the customary thresholds: below 0.02 not predictive, 0.02–0.1 weak, 0.1–0.3 medium, "
        "0.3–0.5 strong, above 0.5 suspiciously strong (check for leakage of the outcome). "
        f"Features of medium strength or more, per party: {strong_note}.</p>"
        + _explain(
            "Information value ranks how well each feature, on its own, separates customers who defaulted "
            "from those who did not. The partner's rows here are its candidate contribution; the bars show "
            "how risk changes from bin to bin (hover a bar for the bin).",
            "For the partner's features the bank learned per-bin totals of defaulters and customers "
            "(aggregates over many customers), not any customer's value; the partner received the labels "
            "only encrypted under the bank's key. Everything else either side learned is in the ledger.",
        )
    )
    return _section("iv", "3. Feature strength (WOE / IV)", html)


def _models_section(summary: Summary, results: list[ModelResult]) -> str:
    models = {r.key: r for r in results}
    joint, bank = models["joint"], models["bank_only"]
    rows = [
        [
            f'<span class="swatch" style="background:{MODEL_STYLE.get(r.key, OTHER_MODEL_STYLE)[0]}"></span>{_e(r.name)}',
            f"{r.auc:.4f}",
            f"{r.gini:.4f}",
            f"{r.ks:.4f}",
            _e(_signed(r.auc - joint.auc, 4)) if r.key != "joint" else "–",
        ]
        for r in results
    ]
    table = _table(["Model", "AUC", "Gini", "KS", "AUC vs joint"], rows, numeric=(1, 2, 3, 4))
    value, cost = joint.auc - bank.auc, _cost_of_privacy(models)
    deltas = _table(
        ["Measure", "Definition", "AUC points"],
        [
            ["<strong>Value of partner data</strong>", "joint AUC − bank-only AUC", _e(_signed(value, 4))],
            [
                "<strong>Cost of privacy</strong>",
                "plaintext XGBoost AUC − joint AUC",
                "not measured (no plaintext baseline)" if cost is None else _e(_signed(cost, 4)),
            ],
        ],
        numeric=(2,),
    )
    ev = summary.evaluation
    n_bad = int(sum(ev.y_true))
    sample = (
        f"<p><strong>Evaluated on:</strong> {_e(ev.dataset)}: {_int(len(ev.y_true))} customers, "
        f"{_int(n_bad)} defaulted ({_e(_pct(n_bad / len(ev.y_true)))})"
        + (f"; models trained on {_int(ev.n_train)} customers" if ev.n_train is not None else "")
        + ".</p>"
    )
    html = sample + table + deltas + _explain(
        "AUC is the chance that a random defaulter scores riskier than a random non-defaulter (0.5 = coin "
        "toss, 1 = perfect); Gini = 2·AUC − 1; KS is the largest gap between the score distributions of "
        "defaulters and non-defaulters. The value of partner data is what the partnership adds; the cost "
        "of privacy is what the privacy protections take away against pooling the raw data.",
        "The plaintext baseline pools both institutions' raw rows, which the joint job never does: it is "
        "a yardstick that exists only where both tables sit on one machine (as in a demonstration), trained "
        "on the same rows and features. All metrics are computed by misuan from the models' predictions "
        "for customers not used in training.",
    )
    return _section("models", "4. Model comparison", html)


def _roc_figure(results: list[ModelResult]) -> str:
    series = []
    for r in results:
        color, dash, width = MODEL_STYLE.get(r.key, OTHER_MODEL_STYLE)
        series.append(svg.Series(f"{r.name} (AUC {r.auc:.3f})", r.roc.fpr, r.roc.tpr, color, dash, width))
    chart = svg.line_chart(
        series,
        title="ROC curves",
        x_label="false positive rate (share of non-defaulters flagged)",
        y_label="true positive rate (share of defaulters caught)",
        diagonal=True,
    )
    return (
        f'<figure id="roc">{chart}<figcaption><strong>ROC curves.</strong> For every cut-off, the share of '
        "defaulters caught against the share of good customers wrongly flagged. Higher and further left is "
        "better; the dashed diagonal is a random score.</figcaption></figure>"
    )


def _ks_figure(summary: Summary, joint: ModelResult) -> str:
    k = joint.ks_curve
    n = len(summary.evaluation.y_true)
    # x: share of all customers with a score at or above the threshold (riskiest first)
    n_bad = sum(summary.evaluation.y_true)
    population = (k.cum_bad * n_bad + k.cum_good * (n - n_bad)) / n
    x_at = float(population[k.argmax])
    chart = svg.line_chart(
        [
            svg.Series("defaulters (cumulative share)", population, k.cum_bad, "#c0392b"),
            svg.Series("non-defaulters (cumulative share)", population, k.cum_good, "#1f5fa8"),
        ],
        title="KS plot of the joint model",
        x_label="share of customers, riskiest score first",
        y_label="cumulative share of the class",
        marks=[(x_at, float(k.cum_good[k.argmax]), float(k.cum_bad[k.argmax]), f"KS = {k.ks:.3f}")],
    )
    caption = (
        f"Largest gap KS = {k.ks:.3f} at predicted PD ≥ {k.ks_threshold:.3f}: flagging the riskiest "
        f"{_pct(x_at)} of customers catches {_pct(float(k.cum_bad[k.argmax]))} of defaulters and "
        f"{_pct(float(k.cum_good[k.argmax]))} of non-defaulters."
    )
    return f'<figure id="ks">{chart}<figcaption><strong>KS plot (joint model).</strong> {_e(caption)}</figcaption></figure>'


def _curves_section(summary: Summary, results: list[ModelResult], joint: ModelResult) -> str:
    return _section(
        "curves", "5. ROC and KS curves", f'<div class="grid2">{_roc_figure(results)}{_ks_figure(summary, joint)}</div>'
    )


def _score_section(summary: Summary) -> str:
    ev = summary.evaluation
    y = np.asarray(ev.y_true, dtype=np.int8)
    p = np.asarray(ev.scores["joint"], dtype=np.float64)
    lo, hi = (0.0, 1.0) if p.min() >= 0 and p.max() <= 1 else (float(p.min()), float(p.max()))
    edges = np.linspace(lo, hi, 26)
    groups = []
    for cls, name, color in ((0, "non-defaulters", "#1f5fa8"), (1, "defaulters", "#c0392b")):
        counts, _ = np.histogram(p[y == cls], bins=edges)
        groups.append((f"{name} (n = {int(np.sum(y == cls)):,})", counts / max(counts.sum(), 1), color))
    chart = svg.histogram(
        edges,
        groups,
        title="Predicted PD by actual outcome",
        x_label="predicted probability of default (joint model)",
        y_label="share of the class",
    )
    figure = (
        f'<figure id="score-histogram">{chart}<figcaption><strong>Score distribution.</strong> Where the joint '
        "model puts customers who did and did not default; each colour sums to 100 %. Little overlap means "
        "good separation.</figcaption></figure>"
    )
    # the classic gains table: customers in ten equal bands by score, riskiest first
    order = np.argsort(-p, kind="mergesort")
    bands = np.array_split(order, 10)
    caught = 0
    rows = []
    for i, band in enumerate(bands, 1):
        if band.size == 0:
            continue
        bad = int(y[band].sum())
        caught += bad
        rows.append(
            [
                str(i),
                f"{p[band].min():.3f}–{p[band].max():.3f}",
                _int(int(band.size)),
                _int(bad),
                _e(_pct(bad / band.size)),
                _e(_pct(caught / max(int(y.sum()), 1))),
            ]
        )
    gains = (
        '<div><h3 class="tight">Default rate by score band (joint model)</h3>'
        + _table(
            ["Band", "Predicted PD", "Customers", "Defaulters", "Default rate", "Share of defaulters so far"],
            rows,
            css="gains",
            numeric=(0, 1, 2, 3, 4, 5),
        )
        + '<p class="note">Ten equal bands of hold-out customers, riskiest first. A good model puts most '
        "defaulters in the first bands.</p></div>"
    )
    return _section("scores", "6. Score distribution", f'<div class="grid2">{figure}{gains}</div>')


def _importance_section(summary: Summary, parties: _Parties) -> str:
    fis = sorted(summary.feature_importance, key=lambda f: -f.gain)
    if not fis:
        return _section("importance", "7. Feature importance", "<p>No feature importance was reported.</p>")
    shown = fis[:30]
    bars = [
        svg.Bar(label=f.feature, value=f.gain, color=parties.color.get(f.party, "#777"), note=f"{f.splits:,} splits")
        for f in shown
    ]
    chart = svg.hbar_chart(bars, title="Feature importance by total gain", value_label="total split gain")
    total_gain = sum(f.gain for f in fis) or 1.0
    per_party = [
        [
            parties.badge(p.name),
            f"{sum(f.gain for f in fis if f.party == p.name):,.1f}",
            _e(_pct(sum(f.gain for f in fis if f.party == p.name) / total_gain)),
            _int(sum(f.splits for f in fis if f.party == p.name)),
            _int(sum(1 for f in fis if f.party == p.name)),
        ]
        for p in summary.job.parties
    ]
    legend = " ".join(parties.badge(p.name) for p in summary.job.parties)
    more = f" (top {len(shown)} of {len(fis)})" if len(fis) > len(shown) else ""
    html = (
        f"<p>Bars coloured by the party holding the feature: {legend}{_e(more)}</p>"
        f"<figure>{chart}</figure>"
        + _table(["Party", "Total gain", "Share of gain", "Splits", "Features used"], per_party, numeric=(1, 2, 3, 4))
        + _explain(
            "Gain is how much the model's fit improved from splits on a feature; the share per party shows "
            "how much of the joint model rests on each institution's data.",
            "Gains are computed by the bank from encrypted sums the partner returned. A split on a partner "
            "feature is known to the bank as (feature, bin number): the threshold value stays with the "
            "partner. Which customers went left at such a split, and the other training disclosures, are "
            "in the ledger.",
        )
    )
    return _section("importance", "7. Feature importance", html)


def _group_entries(entries: Sequence[LedgerEntry]) -> list[tuple[LedgerEntry, int, str]]:
    """Collapse repeated disclosures (one per tree node, say) into one row with a count."""
    groups: dict[tuple[str, str, str, str, str], list[LedgerEntry]] = {}
    for e in entries:
        groups.setdefault((e.discloser, e.recipient, e.step, e.what, e.form), []).append(e)
    out = []
    for members in groups.values():
        shapes = {tuple(m.shape) for m in members}
        shape = _shape(members[0].shape) if len(shapes) == 1 else f"{len(shapes)} different shapes"
        out.append((members[0], len(members), shape))
    return out


def _detail(e: LedgerEntry, count: int) -> str:
    if count != 1 or not e.detail:
        return ""
    parts = []
    for k, v in e.detail.items():
        text = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
        parts.append(f"{k} = {text if len(text) <= 60 else text[:59] + '…'}")
    return "; ".join(parts)


def _mirror_check(ledgers: Sequence[Ledger]) -> list[str]:
    """For each pair of ledgers, do both record the same disclosures between the two parties?"""
    notes = []
    for i, a in enumerate(ledgers):
        for b in ledgers[i + 1 :]:
            def between(g: Ledger, a: Ledger = a, b: Ledger = b) -> Counter[tuple[object, ...]]:
                return Counter(
                    (e.step, e.discloser, e.recipient, e.what, tuple(e.shape), e.form)
                    for e in g.entries
                    if {e.discloser, e.recipient} == {a.party, b.party}
                )

            ca, cb = between(a), between(b)
            if ca == cb:
                notes.append(
                    f"The ledgers of {_e(a.party)} and {_e(b.party)} agree: both record the same "
                    f"{sum(ca.values())} disclosures between them."
                )
            else:
                diff = sum(((ca - cb) + (cb - ca)).values())
                notes.append(
                    f'<span class="warn-text">The ledgers of {_e(a.party)} and {_e(b.party)} disagree on '
                    f"{diff} disclosures between them: investigate.</span>"
                )
    return notes


def _ledger_section(summary: Summary, parties: _Parties) -> str:
    html = ""
    for g in summary.ledgers:
        status = (
            '<span class="ok">✔ hash chain verified</span>'
            if g.verified
            else '<span class="bad-text">✘ hash chain NOT verified</span>'
        )
        when = f" at {_e(g.verified_at)}" if g.verified_at else ""
        note = f" — {_e(g.note)}" if g.note else ""
        html += (
            f"<h3>Ledger of {parties.badge(g.party)}</h3>"
            f'<p class="chain">{status}{when}{note} · {_int(len(g.entries))} entries · chain head '
            f'<code title="{_e(g.head)}">{_e(g.head)}</code></p>'
        )
        for direction, who, entries in (
            (f"What {_e(g.party)} learned", "From", [e for e in g.entries if e.recipient == g.party]),
            (f"What {_e(g.party)} revealed", "To", [e for e in g.entries if e.discloser == g.party]),
        ):
            rows = [
                [
                    parties.badge(e.discloser) if e.recipient == g.party else parties.badge(e.recipient),
                    _e(e.step),
                    _e(e.what),
                    _e(shape),
                    f'<span class="form {_e(e.form)}">{_e(e.form)}</span><br><small>{_e(FORM_WORDS.get(e.form, ""))}</small>',
                    f"×{count}" if count > 1 else "1",
                    _e(_detail(e, count)),
                ]
                for e, count, shape in _group_entries(entries)
            ]
            html += f"<h4>{direction}</h4>"
            html += (
                _table([who, "Step", "What", "Shape", "Form", "Times", "Detail"], rows, css="ledger", numeric=(3, 5))
                if rows
                else "<p>Nothing.</p>"
            )
    mirror = _mirror_check(summary.ledgers)
    if mirror:
        html += "<p>" + "<br>".join(mirror) + "</p>"
    html += _explain(
        "Every value one institution revealed to the other during this job is listed here, whether readable "
        "or not. Anything not listed was not revealed.",
        "Each party keeps its own append-only ledger; every entry includes the hash of the one before, so "
        "changing or deleting an entry breaks the chain. The head hash above fixes the whole history: "
        "compare it with the party's copy. 'Aggregate' values sum over many customers; 'ciphertext' values "
        "are encrypted under a key the recipient does not hold.",
    )
    return _section("ledger", "8. Disclosure ledger", html)


def _params_section(summary: Summary) -> str:
    rows = [[f"<code>{_e(k)}</code>", _e("–" if v is None else v)] for k, v in summary.secureboost.items()]
    return _section("params", "9. SecureBoost parameters", _table(["Parameter", "Value"], rows, css="params"))


CSS = """
:root{--ink:#1d2430;--muted:#5b6573;--line:#dfe3e8;--bg:#f6f7f9;--accent:#1f5fa8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14.5px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 32px 48px;background:#fff;min-height:100vh}
header h1{margin:0 0 4px;font-size:26px}
header .sub{color:var(--muted);margin:0 0 18px}
nav{font-size:13px;margin:8px 0 20px;color:var(--muted)}
nav a{color:var(--accent);text-decoration:none;margin-right:12px;white-space:nowrap}
h2{font-size:20px;border-bottom:2px solid var(--ink);padding-bottom:4px;margin:34px 0 12px}
h3{font-size:16px;margin:22px 0 8px}
h4{font-size:14px;margin:14px 0 6px;color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:8px 0 12px;font-size:13.5px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
th{background:#eef1f5;font-weight:600;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:10px;margin:6px 0 8px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fbfcfd}
.card .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:24px;font-weight:650;font-variant-numeric:tabular-nums;margin:2px 0}
.card .s{font-size:12px;color:var(--muted)}
.card.good .v{color:#1e7b3a}.card.bad .v{color:#b3261e}.card.warn .v{color:#a15c00}
dl.facts{display:grid;grid-template-columns:170px 1fr;gap:2px 12px;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
.badge{display:inline-block;color:#fff;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;line-height:19px}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;line-height:19px;white-space:nowrap}
.pill.s0{background:#eceff3;color:#555}.pill.s1{background:#fdf0d5;color:#8a5a00}
.pill.s2{background:#dcecfb;color:#1f4f86}.pill.s3{background:#d6f0dd;color:#1e6b34}.pill.s4{background:#fbdcdc;color:#9b1c1c}
.feat{font-weight:600;word-break:break-word}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:7px;vertical-align:-1px}
.meter{display:inline-block;width:160px;height:9px;background:#eceff3;border-radius:5px;overflow:hidden;vertical-align:middle}
.meter span{display:block;height:100%;background:var(--accent)}
.form{font-weight:600}.form.plaintext{color:#a15c00}.form.ciphertext,.form.blinded{color:#1e6b34}.form.aggregate{color:#1f4f86}
.ok{color:#1e7b3a;font-weight:600}.bad-text,.warn-text{color:#b3261e;font-weight:600}
.chain{font-size:13px}
.note{font-size:12.5px;color:var(--muted)}
.explain{display:grid;grid-template-columns:1fr 1fr;gap:12px;margin:10px 0 4px}
.explain>div{background:#f3f6fa;border-left:3px solid var(--accent);padding:6px 12px;border-radius:0 6px 6px 0}
.explain>div:last-child{border-left-color:#6b7785}
.explain h4{margin:4px 0 2px;color:var(--ink);font-size:13px}
.explain p{margin:0 0 4px;font-size:13px;color:#323b47}
figure{margin:8px 0}
figcaption{font-size:13px;color:var(--muted);max-width:760px}
svg.chart{max-width:100%;height:auto;display:block}
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:24px;align-items:start}
h3.tight{margin-top:4px}
table.params{width:auto;min-width:420px}
table.gains td,table.gains th{padding:4px 6px}table.gains th{white-space:normal}
svg.chart text{font-family:inherit}
svg.spark{display:block}
table.iv td{padding-top:3px;padding-bottom:3px}
footer{margin-top:36px;font-size:12px;color:var(--muted);border-top:1px solid var(--line);padding-top:10px}
@media (max-width:900px){.cards{grid-template-columns:repeat(2,1fr)}.explain,.grid2{grid-template-columns:1fr}}
@media print{
  body{background:#fff;font-size:11pt}
  main{max-width:none;padding:0}
  nav{display:none}
  figure,.explain,.cards,dl.facts{break-inside:avoid}
  .grid2{display:block}
  tr{break-inside:avoid}
  h2,h3,h4{break-after:avoid}
  a{color:inherit;text-decoration:none}
  @page{margin:14mm}
}
"""


def render_html(summary: Summary, *, generated_at: str | None = None) -> str:
    """The whole page as a string."""
    parties = _Parties(summary)
    results = model_results(summary)
    by_key = {r.key: r for r in results}
    when = generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    job = summary.job
    names = " and ".join(
        f"{_e(p.organisation or p.name)} ({_e(p.role.replace('_', ' '))})" for p in job.parties
    )
    nav = "".join(
        f'<a href="#{a}">{_e(t)}</a>'
        for a, t in (
            ("job", "Job"), ("psi", "Shared customers"), ("iv", "WOE / IV"), ("models", "Models"),
            ("curves", "ROC / KS"), ("scores", "Scores"), ("importance", "Importance"),
            ("ledger", "Ledger"), ("params", "Parameters"),
        )
    )
    body = "".join(
        [
            f"<header><h1>{_e(job.title)}</h1>"
            f'<p class="sub">Job <code>{_e(job.job_id)}</code> · {names} · finished {_e(job.finished_at)}</p></header>',
            f"<nav>{nav}</nav>",
            _key_figures(summary, by_key),
            _job_section(summary, parties),
            _psi_section(summary, parties),
            _iv_section(summary, parties),
            _models_section(summary, results),
            _curves_section(summary, results, by_key["joint"]),
            _score_section(summary),
            _importance_section(summary, parties),
            _ledger_section(summary, parties),
            _params_section(summary),
            f"<footer>Generated by misuan {_e(misuan.__version__)} on {_e(when)}. This page is self-contained: "
            "it loads nothing from the network.</footer>",
        ]
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(job.title)} · {_e(job.job_id)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def write_html(html: str, path: str | Path) -> Path:
    """Write ``html`` to ``path`` atomically (temporary file in the same directory, fsync, rename)."""
    target = Path(path)
    write_atomic(target, html)
    return target
