"""The parameter reference of the step kinds, generated from their declarations.

``misuan params`` prints it and ``docs/params.md`` holds its Markdown form, so the documentation of
a step's parameters is the :func:`misuan.params.param` declarations of its ``params`` classes and
nothing else: change a declaration, regenerate, and the docs follow.
"""

from __future__ import annotations

from collections.abc import Iterable

from misuan.node.steps.context import StepKind
from misuan.params import ParamDoc, markdown_table, param_docs

__all__ = ["MARKDOWN_HEADER", "params_reference"]

MARKDOWN_HEADER = """\
# Step parameters

Generated from the parameter declarations of the step kinds (`misuan.node.steps.STEPS`); do not edit
by hand. Regenerate with `misuan params --markdown > docs/params.md` (`tests/test_cli.py` checks that
this file matches). A step's `params` table in a job spec is flat: `params = { n_bins = 10, scheme = "ou" }`.
"""

_COLUMNS = ("param", "type", "default", "range", "meaning")


def params_reference(kinds: Iterable[StepKind], *, markdown: bool = False, header: bool = True) -> str:
    """Each kind's summary, protocols and table of parameters; as Markdown (with ``header``) or plain text.

    Kinds come in name order, so the reference does not depend on the order they were registered in.
    """
    kinds = sorted(kinds, key=lambda k: k.kind)
    if markdown:
        sections = [_kind_markdown(k) for k in kinds]
        return "\n".join([MARKDOWN_HEADER, *sections] if header else sections)
    return "\n".join(_kind_text(k) for k in kinds)


def _protocols(kind: StepKind) -> str:
    return ", ".join(f"{p.name} v{p.version}" for p in kind.protocols)


def _kind_markdown(kind: StepKind) -> str:
    lines = [f"## `{kind.kind}`", ""]
    if kind.summary:
        lines.append(kind.summary[:1].upper() + kind.summary[1:] + ".")
    if kind.protocols:
        lines.append(f"Protocols: {_protocols(kind)}.")
    lines.append("")
    rows = param_docs(kind.params)
    lines.append(markdown_table(kind.params) if rows else "No parameters.\n")
    return "\n".join(lines)


def _kind_text(kind: StepKind) -> str:
    lines = [f"{kind.kind}: {kind.summary}" if kind.summary else kind.kind]
    if kind.protocols:
        lines.append(f"  protocols: {_protocols(kind)}")
    rows = param_docs(kind.params)
    lines += [f"  {line}" for line in _plain_table(rows)] if rows else ["  no parameters"]
    return "\n".join(lines) + "\n"


def _plain_table(rows: list[ParamDoc]) -> list[str]:
    """Aligned columns; the last (meaning) runs on unwrapped."""
    cells = [list(_COLUMNS)] + [[r.name, r.type, r.default_text, r.range or "-", r.doc] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip() for row in cells]
