"""The consent page: what a pending job will disclose, for the data owner's operator to approve or refuse.

It takes the preview as the node wrote it (``pending/<job_id>.json``, a plain document, so the
report need not import the node) and shows, per step, what this party sends and learns, to and
from whom, in which form and when; and which certificates it accepts for each party. Every text
from the preview is escaped (job, party and step names come from the spec).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from misuan.report.markup import esc, html_table, section
from misuan.report.render import CSS

__all__ = ["render_consent_page"]

_FORMS = {
    "plaintext": "readable by the recipient",
    "aggregate": "an aggregate over several rows, readable",
    "ciphertext": "encrypted under a key the recipient lacks",
    "blinded": "blinded: unreadable without the sender's secret",
}


def _rows(disclosures: list[Mapping[str, Any]], me: str, sends: bool) -> list[list[str]]:
    rows = []
    for d in disclosures:
        if sends != (d["discloser"] == me) or (not sends and d["recipient"] != me):
            continue
        when = "" if d["when"] == "always" else esc(d["when"])
        if d["data_dependent"]:
            when = (when + "; " if when else "") + "if the data lead there"
        rows.append([
            f"<code>{esc(d['step'])}</code>", esc(d["what"]),
            f'{esc(d["form"])} <span class=muted>({esc(_FORMS.get(d["form"], ""))})</span>',
            esc(d["recipient"] if sends else ("all parties (a joint result)" if d["discloser"] == "all" else d["discloser"])),
            when or "always",
        ])
    return rows


def render_consent_page(preview: Mapping[str, Any], submitted_at: str = "") -> str:
    """A self-contained HTML page of one job's preview (``JobPreview.as_dict()``)."""
    me = preview["party"]
    parties = html_table(
        ["party", "role", "address", "accepted certificates: CA (fingerprint)", "pinned"],
        [[esc(p["name"]) + (" (this node)" if p["name"] == me else ""), esc(p["role"]), f"<code>{esc(p['address'])}</code>",
          "<br>".join(f"{esc(a['subject'])} <code>{esc(a['fingerprint'])}</code>" for a in p["trust"]) or "—",
          "<br>".join(f"<code>{esc(x)}</code>" for x in p["pins"]) or "—"] for p in preview["parties"]],
    )
    steps = html_table(["step", "kind", "parties"], [[f"<code>{esc(s['name'])}</code>", esc(s["kind"]), esc(", ".join(s["parties"]))] for s in preview["steps"]])
    sends = html_table(["step", "what", "form", "to", "when"], _rows(preview["disclosures"], me, True))
    learns = html_table(["step", "what", "form", "from", "when"], _rows(preview["disclosures"], me, False))
    decide = (
        f"<p>Approve: <code>misuan node approve {esc(preview['job_id'])} --config node.toml</code> "
        f"(add <code>--standing</code> to approve every re-run of this template). Refuse: <code>misuan node refuse "
        f"{esc(preview['job_id'])} --config node.toml --reason \"...\"</code>. Either decision is signed with this "
        "node's key and written to its ledger; the peers see it.</p>"
    )
    body = (
        section("parties", "Parties and the certificates this node accepts for them", parties)
        + section("steps", "Steps", steps)
        + section("sends", f"What {me} sends", sends)
        + section("learns", f"What {me} learns", learns)
        + section("decide", "Decision", decide)
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>misuan: consent to job {esc(preview['job_id'])}</title><style>{CSS}.muted{{color:var(--muted)}}</style></head>"
        f"<body><main><header><h1>Job {esc(preview['job_id'])} awaits {esc(me)}'s approval</h1>"
        f"<p class=sub>submitted {esc(submitted_at)} · spec hash <code>{esc(preview['spec_hash'])}</code> · "
        f"template <code>{esc(preview['template_hash'])}</code></p></header>{body}</main></body></html>"
    )
