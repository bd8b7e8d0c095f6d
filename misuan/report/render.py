"""Render a :class:`~misuan.report.schema.Summary` as one self-contained HTML page.

No external CSS, scripts or fonts: the style sheet is inline, plots are inline SVG (:mod:`.svg`), and
every piece of text from the summary goes through :func:`html.escape` (feature and party names come
from user data). The page prints cleanly (sections do not break inside figures).

This module holds the page, its style sheet and the job, PSI, WOE/IV, importance and parameter
sections; the model sections are in :mod:`.performance`, the ledger section in :mod:`.ledger_section`,
the lending section (only for a summary with ``lending``) in :mod:`.lending_section`, the HTML
building blocks in :mod:`.markup`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np

import misuan
from misuan.atomic_files import write_atomic
from misuan.report import svg
from misuan.report.ledger_section import ledger_section
from misuan.report.lending_section import LENDING_CSS, lending_section
from misuan.report.markup import (
    Parties,
    byte_size,
    duration,
    esc,
    explain,
    html_table,
    parse_time,
    percent,
    section,
    signed,
    thousands,
)
from misuan.report.performance import (
    ModelResult,
    cost_of_privacy,
    curves_section,
    model_results,
    models_section,
    score_section,
)
from misuan.report.schema import FeatureIv, Summary
from misuan.report.scorecard_section import scorecard_section

__all__ = ["iv_strength", "model_results", "render_html", "write_html"]

# Siddiqi's customary thresholds for the information value of a scorecard characteristic
IV_BANDS = ((0.02, "not predictive"), (0.1, "weak"), (0.3, "medium"), (0.5, "strong"))


def iv_strength(iv: float) -> str:
    """The customary label of an information value: below 0.02 not predictive, up to 0.1 weak, ..."""
    for upper, label in IV_BANDS:
        if iv < upper:
            return label
    return "very strong (check for leakage)"


def _key_figures(summary: Summary, models: dict[str, ModelResult]) -> str:
    joint, bank = models["joint"], models["bank_only"]
    value = joint.auc - bank.auc
    cost = cost_of_privacy(models)
    cost_card = (
        ("Cost of privacy", "not measured", "no plaintext baseline in this job", "")
        if cost is None
        else ("Cost of privacy", signed(cost), "AUC lost against plaintext XGBoost", "good" if abs(cost) < 0.01 else "warn")
    )
    ledgers_ok = all(g.verified for g in summary.ledgers) and bool(summary.ledgers)
    cards = [
        ("Joint model AUC", f"{joint.auc:.3f}", f"KS {joint.ks:.3f} · Gini {joint.gini:.3f}", ""),
        ("Value of partner data", signed(value), "AUC gain over the bank-only model", "good" if value > 0 else "bad"),
        cost_card,
        ("Shared customers", thousands(summary.psi.intersection_size), "found by private set intersection", ""),
        (
            "Disclosure ledgers",
            "verified" if ledgers_ok else "NOT verified",
            f"{sum(len(g.entries) for g in summary.ledgers)} entries in {len(summary.ledgers)} ledger(s)",
            "good" if ledgers_ok else "bad",
        ),
    ]
    return '<div class="cards">' + "".join(
        f'<div class="card {cls}"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div><div class="s">{esc(s)}</div></div>'
        for k, v, s, cls in cards
    ) + "</div>"


def _job_section(summary: Summary, parties: Parties) -> str:
    job = summary.job
    start, end = parse_time(job.started_at), parse_time(job.finished_at)
    facts = [
        ("Job ID", esc(job.job_id)),
        ("Started", esc(job.started_at)),
        ("Finished", esc(job.finished_at)),
        ("Duration", esc(duration((end - start).total_seconds()))),
        ("Machine", esc(job.machine)),
    ]
    if job.dataset:
        facts.append(("Data", esc(job.dataset)))
    if job.misuan_version:
        facts.append(("misuan version", esc(job.misuan_version)))
    facts_html = '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    role_words = {"label_party": "label party: holds the default labels and the decryption key",
                  "feature_party": "feature party: contributes features only"}
    party_rows = [
        [
            parties.badge(p.name),
            esc(p.organisation or "–"),
            esc(role_words[p.role]),
            thousands(p.rows),
            thousands(p.columns),
            esc(byte_size(p.bytes_sent)),
            esc(byte_size(p.bytes_received)),
            esc(p.machine or "same as above"),
        ]
        for p in job.parties
    ]
    html = facts_html + "<h3>Parties</h3>" + html_table(
        ["Party", "Organisation", "Role", "Rows", "Feature columns", "Sent", "Received", "Machine"],
        party_rows,
        numeric=(3, 4, 5, 6),
    )
    if job.steps:
        total = sum(s.seconds for s in job.steps) or 1.0
        step_rows = [
            [
                esc(s.name),
                esc(s.kind),
                esc(s.status),
                esc(duration(s.seconds)),
                f'<span class="meter"><span style="width:{100 * s.seconds / total:.1f}%"></span></span>',
            ]
            for s in job.steps
        ]
        html += "<h3>Steps</h3>" + html_table(["Step", "Kind", "Status", "Time", "Share of job time"], step_rows, numeric=(3,))
    return section("job", "1. Job summary", html)


def _psi_section(summary: Summary, parties: Parties) -> str:
    psi = summary.psi
    n = psi.intersection_size
    rows = [
        [parties.badge(name), thousands(count), thousands(n), esc(percent(n / count) if count else "–"), thousands(count - n)]
        for name, count in psi.rows.items()
    ]
    if psi.mode == "both":
        mode = "Both parties learned which customers are shared (each needs them to train on the same rows)."
    elif psi.mode == "size":
        mode = "Neither party learned which customers are shared; both learned only how many there are."
    else:
        mode = f"Only {esc(psi.mode)} learned which customers are shared; the other party learned only the count."
    details = f"<p><strong>Who learned what:</strong> {mode}</p>"
    if psi.normalization:
        details += f"<p><strong>ID normalisation before matching:</strong> {esc(psi.normalization)}</p>"
    if psi.seconds is not None:
        details += f"<p><strong>Time:</strong> {esc(duration(psi.seconds))}</p>"
    html = html_table(
        ["Party", "Customers put in", "Shared", "Share of its customers", "Not shared (stay private)"],
        rows,
        numeric=(1, 2, 3, 4),
    ) + details + explain(
        "The model can only learn from customers both institutions know. This is how many they share; the "
        "rest of each customer list never left its owner.",
        "Private set intersection compares blinded IDs (hashed and raised to each side's secret key), so "
        "neither side can read the other's customers outside the intersection. The ledger below records "
        "exactly what each side received.",
    )
    return section("psi", "2. Shared customers (private set intersection)", html)


def _monotonic(f: FeatureIv) -> bool:
    if f.monotonic is not None:
        return f.monotonic
    w = np.array([b.woe for b in f.bins if not b.contains_missing])
    d = np.diff(w)
    return bool(np.all(d >= 0) or np.all(d <= 0))


def _iv_section(summary: Summary, parties: Parties) -> str:
    feats = sorted(summary.iv, key=lambda f: -f.iv)
    strength_class = {"not predictive": "s0", "weak": "s1", "medium": "s2", "strong": "s3"}
    rows = []
    for i, f in enumerate(feats, 1):
        label = iv_strength(f.iv)
        rows.append(
            [
                str(i),
                f'<span class="feat">{esc(f.feature)}</span>',
                parties.badge(f.party),
                f"{f.iv:.4f}",
                f'<span class="pill {strength_class.get(label, "s4")}">{esc(label)}</span>',
                f"{f.ks:.3f}" if f.ks is not None else "–",
                str(len(f.bins)) + (f'<br><small>{esc(f.method)}</small>' if f.method else ""),
                svg.woe_sparkbars([b.woe for b in f.bins], [b.label for b in f.bins]),
                "yes" if _monotonic(f) else '<span class="warn-text">no</span>',
            ]
        )
    table = html_table(
        ["#", "Feature", "Party", "IV", "Strength", "KS", "Bins", "WOE by bin", "Monotonic"],
        rows,
        css="iv",
        numeric=(0, 3, 5, 6),
    )
    by_party = Counter(f.party for f in feats if f.iv >= 0.1)
    strong_note = ", ".join(f"{esc(p)}: {c}" for p, c in by_party.items()) or "none"
    html = (
        table
        + f'<p class="note">Bars: WOE of each bin in bin order, <span style="color:{svg.WOE_POSITIVE}">above '
        f'the line WOE &gt; 0</span>, <span style="color:{svg.WOE_NEGATIVE}">below it WOE &lt; 0</span>. '
        f"{esc(summary.woe_definition)}. IV = Σ (share of goods − share of bads) × WOE. "
        "Strength by the customary thresholds: below 0.02 not predictive, 0.02–0.1 weak, 0.1–0.3 medium, "
        "0.3–0.5 strong, above 0.5 suspiciously strong (check for leakage of the outcome). "
        f"Features of medium strength or more, per party: {strong_note}.</p>"
        + explain(
            "Information value ranks how well each feature, on its own, separates customers who defaulted "
            "from those who did not. The partner's rows here are its candidate contribution; the bars show "
            "how risk changes from bin to bin (hover a bar for the bin).",
            "For the partner's features the bank learned per-bin totals of defaulters and customers "
            "(aggregates over many customers), not any customer's value; the partner received the labels "
            "only encrypted under the bank's key. Everything else either side learned is in the ledger.",
        )
    )
    return section("iv", "3. Feature strength (WOE / IV)", html)


def _importance_section(summary: Summary, parties: Parties) -> str:
    fis = sorted(summary.feature_importance, key=lambda f: -f.gain)
    if not fis:
        return section("importance", "7. Feature importance", "<p>No feature importance was reported.</p>")
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
            esc(percent(sum(f.gain for f in fis if f.party == p.name) / total_gain)),
            thousands(sum(f.splits for f in fis if f.party == p.name)),
            thousands(sum(1 for f in fis if f.party == p.name)),
        ]
        for p in summary.job.parties
    ]
    legend = " ".join(parties.badge(p.name) for p in summary.job.parties)
    more = f" (top {len(shown)} of {len(fis)})" if len(fis) > len(shown) else ""
    html = (
        f"<p>Bars coloured by the party holding the feature: {legend}{esc(more)}</p>"
        f"<figure>{chart}</figure>"
        + html_table(["Party", "Total gain", "Share of gain", "Splits", "Features used"], per_party, numeric=(1, 2, 3, 4))
        + explain(
            "Gain is how much the model's fit improved from splits on a feature; the share per party shows "
            "how much of the joint model rests on each institution's data.",
            "Gains are computed by the bank from per-bin sums the partner returned masked (one-time pads "
            "from oblivious transfer, or homomorphic encryption for very large data): the partner never saw "
            "a gradient, and the bank sees sums over bins, not customers. A split on a partner "
            "feature is known to the bank as (feature, bin number): the threshold value stays with the "
            "partner. Which customers went left at such a split, and the other training disclosures, are "
            "in the ledger.",
        )
    )
    return section("importance", "7. Feature importance", html)


def _params_section(summary: Summary) -> str:
    rows = [[f"<code>{esc(k)}</code>", esc("–" if v is None else v)] for k, v in summary.secureboost.items()]
    return section("params", "9. SecureBoost parameters", html_table(["Parameter", "Value"], rows, css="params"))


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
    parties = Parties(summary)
    results = model_results(summary)
    by_key = {r.key: r for r in results}
    when = generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    job = summary.job
    names = " and ".join(
        f"{esc(p.organisation or p.name)} ({esc(p.role.replace('_', ' '))})" for p in job.parties
    )
    nav = "".join(
        f'<a href="#{a}">{esc(t)}</a>'
        for a, t in (
            ("job", "Job"), ("psi", "Shared customers"), ("iv", "WOE / IV"), ("models", "Models"),
            ("curves", "ROC / KS"), ("scores", "Scores"), ("importance", "Importance"),
            ("ledger", "Ledger"), ("params", "Parameters"),
            *((("lending", "Lending"),) if summary.lending else ()),
            *((("scorecard", "Scorecard"),) if summary.scorecard else ()),
        )
    )
    body = "".join(
        [
            f"<header><h1>{esc(job.title)}</h1>"
            f'<p class="sub">Job <code>{esc(job.job_id)}</code> · {names} · finished {esc(job.finished_at)}</p></header>',
            f"<nav>{nav}</nav>",
            _key_figures(summary, by_key),
            _job_section(summary, parties),
            _psi_section(summary, parties),
            _iv_section(summary, parties),
            models_section(summary, results),
            curves_section(summary, results, by_key["joint"]),
            score_section(summary),
            _importance_section(summary, parties),
            ledger_section(summary, parties),
            _params_section(summary),
            lending_section(summary),
            scorecard_section(summary),
            f"<footer>Generated by misuan {esc(misuan.__version__)} on {esc(when)}. This page is self-contained: "
            "it loads nothing from the network.</footer>",
        ]
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{esc(job.title)} · {esc(job.job_id)}</title><style>{CSS}{LENDING_CSS if summary.lending else ''}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def write_html(html: str, path: str | Path) -> Path:
    """Write ``html`` to ``path`` atomically (temporary file in the same directory, fsync, rename)."""
    target = Path(path)
    write_atomic(target, html)
    return target
