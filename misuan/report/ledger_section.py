"""The disclosure-ledger section of the report: what each party learned and revealed, and whether ledgers agree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from misuan.report.markup import Parties, esc, explain, html_table, section, shape_text, thousands
from misuan.report.schema import Ledger, LedgerEntry, Summary

__all__ = ["ledger_section"]

FORM_WORDS = {
    "plaintext": "readable value",
    "ciphertext": "encrypted: the recipient cannot read it",
    "blinded": "blinded: unreadable without the sender's secret",
    "aggregate": "aggregate over many customers",
}


# detail keys that say *which* value was revealed (per-feature entries share one catalogue text):
# the report lists them on a grouped row, and two ledgers that name different ones disagree
SUBJECT_KEYS = ("feature", "column")


def _group_entries(entries: Sequence[LedgerEntry]) -> list[tuple[list[LedgerEntry], str]]:
    """Collapse repeated disclosures (one per tree node, or per feature) into one row; each row's
    members keep their detail, so the row can still name the features."""
    groups: dict[tuple[str, str, str, str, str], list[LedgerEntry]] = {}
    for e in entries:
        groups.setdefault((e.discloser, e.recipient, e.step, e.what, e.form), []).append(e)
    out = []
    for members in groups.values():
        shapes = {tuple(m.shape) for m in members}
        shape = shape_text(members[0].shape) if len(shapes) == 1 else f"{len(shapes)} different shapes"
        out.append((members, shape))
    return out


def _value_text(v: object) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:59] + "…"


def _detail(members: Sequence[LedgerEntry]) -> str:
    """The detail of a row: every subject (feature, column) in full, in the order recorded; other
    keys when all members agree on them (a lone entry shows all its detail)."""
    parts = []
    for key in dict.fromkeys(k for m in members for k in m.detail):
        values = [_value_text(m.detail[key]) for m in members if key in m.detail]
        distinct = list(dict.fromkeys(values))
        if key in SUBJECT_KEYS:
            parts.append(f"{key} = {', '.join(distinct)}")
        elif len(distinct) == 1 and len(values) == len(members):
            parts.append(f"{key} = {_short(distinct[0])}")
    return "; ".join(parts)


class _MirrorKey(NamedTuple):
    """What both parties' copies of one disclosure must agree on."""

    step: str
    discloser: str
    recipient: str
    what: str
    shape: tuple[int, ...]
    form: str
    subject: tuple[tuple[str, str], ...]  # (key, value) of the SUBJECT_KEYS in the detail

    @classmethod
    def of(cls, e: LedgerEntry) -> _MirrorKey:
        subject = tuple((k, str(e.detail[k])) for k in SUBJECT_KEYS if k in e.detail)
        return cls(e.step, e.discloser, e.recipient, e.what, tuple(e.shape), e.form, subject)

    def text(self, only_in: str) -> str:
        named = "".join(f", {k} {v}" for k, v in self.subject)
        return (
            f"{self.step}: {self.discloser} → {self.recipient}, {self.what} ({self.form}{named}) "
            f"only in {only_in}'s ledger"
        )


def _mirror_check(ledgers: Sequence[Ledger]) -> list[str]:
    """For each pair of ledgers, do both record the same disclosures between the two parties, of
    the same features and columns?"""
    notes = []
    for i, a in enumerate(ledgers):
        for b in ledgers[i + 1 :]:
            def between(g: Ledger, a: Ledger = a, b: Ledger = b) -> Counter[_MirrorKey]:
                pair = {a.party, b.party}
                return Counter(_MirrorKey.of(e) for e in g.entries if {e.discloser, e.recipient} == pair)

            ca, cb = between(a), between(b)
            if ca == cb:
                notes.append(
                    f"The ledgers of {esc(a.party)} and {esc(b.party)} agree: both record the same "
                    f"{sum(ca.values())} disclosures between them."
                )
            else:
                only = [(k, a.party) for k in ca - cb] + [(k, b.party) for k in cb - ca]
                diff = sum(((ca - cb) + (cb - ca)).values())
                examples = "; ".join(esc(k.text(party)) for k, party in only[:3])
                notes.append(
                    f'<span class="warn-text">The ledgers of {esc(a.party)} and {esc(b.party)} disagree on '
                    f"{diff} disclosures between them: investigate.</span> For example: {examples}."
                )
    return notes


def _row(members: Sequence[LedgerEntry], shape: str, owner: str, parties: Parties) -> list[str]:
    """One table row of a group of like disclosures in ``owner``'s ledger (cells are HTML)."""
    e = members[0]
    return [
        parties.badge(e.discloser) if e.recipient == owner else parties.badge(e.recipient),
        esc(e.step),
        esc(e.what),
        esc(shape),
        f'<span class="form {esc(e.form)}">{esc(e.form)}</span><br><small>{esc(FORM_WORDS.get(e.form, ""))}</small>',
        f"×{len(members)}" if len(members) > 1 else "1",
        esc(_detail(members)),
    ]


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
            rows = [_row(members, shape, g.party, parties) for members, shape in _group_entries(entries)]
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
