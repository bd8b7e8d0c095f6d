"""The disclosure-ledger section of the report: what each party learned and revealed, and whether ledgers agree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from misuan.report.markup import Parties, esc, explain, html_table, section, shape_text, thousands
from misuan.report.schema import Ledger, LedgerEntry, Summary

__all__ = ["ledger_section"]

FORM_WORDS = {
    "plaintext": "readable value",
    "ciphertext": "encrypted: the recipient cannot read it",
    "blinded": "blinded: unreadable without the sender's secret",
    "aggregate": "aggregate over many customers",
}


def _group_entries(entries: Sequence[LedgerEntry]) -> list[tuple[LedgerEntry, int, str]]:
    """Collapse repeated disclosures (one per tree node, say) into one row with a count."""
    groups: dict[tuple[str, str, str, str, str], list[LedgerEntry]] = {}
    for e in entries:
        groups.setdefault((e.discloser, e.recipient, e.step, e.what, e.form), []).append(e)
    out = []
    for members in groups.values():
        shapes = {tuple(m.shape) for m in members}
        shape = shape_text(members[0].shape) if len(shapes) == 1 else f"{len(shapes)} different shapes"
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
                    f"The ledgers of {esc(a.party)} and {esc(b.party)} agree: both record the same "
                    f"{sum(ca.values())} disclosures between them."
                )
            else:
                diff = sum(((ca - cb) + (cb - ca)).values())
                notes.append(
                    f'<span class="warn-text">The ledgers of {esc(a.party)} and {esc(b.party)} disagree on '
                    f"{diff} disclosures between them: investigate.</span>"
                )
    return notes


def ledger_section(summary: Summary, parties: Parties) -> str:
    html = ""
    for g in summary.ledgers:
        status = (
            '<span class="ok">✔ hash chain verified</span>'
            if g.verified
            else '<span class="bad-text">✘ hash chain NOT verified</span>'
        )
        when = f" at {esc(g.verified_at)}" if g.verified_at else ""
        note = f" — {esc(g.note)}" if g.note else ""
        html += (
            f"<h3>Ledger of {parties.badge(g.party)}</h3>"
            f'<p class="chain">{status}{when}{note} · {thousands(len(g.entries))} entries · chain head '
            f'<code title="{esc(g.head)}">{esc(g.head)}</code></p>'
        )
        for direction, who, entries in (
            (f"What {esc(g.party)} learned", "From", [e for e in g.entries if e.recipient == g.party]),
            (f"What {esc(g.party)} revealed", "To", [e for e in g.entries if e.discloser == g.party]),
        ):
            rows = [
                [
                    parties.badge(e.discloser) if e.recipient == g.party else parties.badge(e.recipient),
                    esc(e.step),
                    esc(e.what),
                    esc(shape),
                    f'<span class="form {esc(e.form)}">{esc(e.form)}</span><br><small>{esc(FORM_WORDS.get(e.form, ""))}</small>',
                    f"×{count}" if count > 1 else "1",
                    esc(_detail(e, count)),
                ]
                for e, count, shape in _group_entries(entries)
            ]
            html += f"<h4>{direction}</h4>"
            html += (
                html_table([who, "Step", "What", "Shape", "Form", "Times", "Detail"], rows, css="ledger", numeric=(3, 5))
                if rows
                else "<p>Nothing.</p>"
            )
    mirror = _mirror_check(summary.ledgers)
    if mirror:
        html += "<p>" + "<br>".join(mirror) + "</p>"
    html += explain(
        "Every value one institution revealed to the other during this job is listed here, whether readable "
        "or not. Anything not listed was not revealed.",
        "Each party keeps its own append-only ledger; every entry includes the hash of the one before, so "
        "changing or deleting an entry breaks the chain. The head hash above fixes the whole history: "
        "compare it with the party's copy. 'Aggregate' values sum over many customers; 'ciphertext' values "
        "are encrypted under a key the recipient does not hold.",
    )
    return section("ledger", "8. Disclosure ledger", html)
