"""Inputs and outputs of ``misuan lending copy``: reading copy and product terms, text and JSON reports.

The command checks each file (or stdin) with :func:`misuan.lending.copy_check.check_copy`, prints
the findings as text (``FILE:LINE:COL: severity rule-id: title``, then the offending text, why, and
the sources) or as one JSON document, and exits with
:data:`~misuan.lending.copy_check.VIOLATIONS_EXIT_CODE` (10) when a finding at or above ``--fail-on``
remains, so it can gate marketing content in CI.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from misuan.errors import ConfigError, DataError
from misuan.lending.copy_check import Finding, ProductTerms, detect_language, failing
from misuan.params import parse_params
from misuan.toml_files import read_toml

__all__ = ["CopyResult", "load_terms", "read_copy", "render_json", "render_text"]

STDIN = "-"


@dataclasses.dataclass(frozen=True)
class CopyResult:
    """The findings for one checked text (``path`` is ``-`` for stdin)."""

    path: str
    text: str
    findings: tuple[Finding, ...]

    @property
    def language(self) -> str:
        return detect_language(self.text)


def read_copy(path: str, stdin: BinaryIO | None = None) -> str:
    """The text of ``path`` (UTF-8, a byte-order mark dropped), or of ``stdin`` for ``-``."""
    try:
        if path == STDIN:
            data = (stdin if stdin is not None else sys.stdin.buffer).read()
        else:
            data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: give a text file of marketing copy, or - for stdin") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory: give the text files themselves") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = "stdin" if path == STDIN else path
        raise DataError(f"{where} is not UTF-8 text (byte {exc.start}): convert it to UTF-8") from None


def load_terms(path: str | Path) -> ProductTerms:
    """A product's terms from TOML: ``name``, ``interest_rate`` (fraction), ``fees = { name = amount }``."""
    p = Path(path)
    doc = read_toml(p, "terms file")
    terms: ProductTerms = parse_params(ProductTerms, doc, f"terms file {p}")
    return terms


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _finding_dict(result: CopyResult, f: Finding) -> dict[str, Any]:
    line, col = _line_col(result.text, f.start)
    return {"rule": f.rule_id, **{k: v for k, v in f.as_dict().items() if k != "rule_id"}, "line": line, "column": col}


def render_json(results: Sequence[CopyResult], rules: str, fail_on: str) -> str:
    """One JSON document: the rule file, the threshold, the number of failing findings, and per file
    its detected language and findings (with 1-based line and column of each start)."""
    doc = {
        "rules": rules,
        "fail_on": fail_on,
        "violations": sum(len(failing(r.findings, fail_on)) for r in results),
        "files": [
            {"path": r.path, "language": r.language, "findings": [_finding_dict(r, f) for f in r.findings]}
            for r in results
        ],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)


def render_text(results: Sequence[CopyResult], fail_on: str) -> str:
    """Findings one block each, ``FILE:LINE:COL: severity rule-id: title``, and a summary line per file."""
    lines = []
    for r in results:
        for f in r.findings:
            line, col = _line_col(r.text, f.start)
            excerpt = f.text if len(f.text) <= 80 else f.text[:77] + "..."
            lines.append(f"{r.path}:{line}:{col}: {f.severity} {f.rule_id}: {f.title}")
            lines.append(f"    text: {excerpt!r} (characters {f.start}-{f.end})")
            if f.detail:
                lines.append(f"    found: {f.detail}")
            lines.append(f"    why: {f.explanation}")
            lines.append(f"    source: {'; '.join(f.sources)}")
        n_fail = len(failing(r.findings, fail_on))
        errors = sum(f.severity == "error" for f in r.findings)
        lines.append(
            f"{r.path}: {len(r.findings)} finding(s) ({errors} error(s), {len(r.findings) - errors} warning(s)); "
            + ("passes" if n_fail == 0 else f"fails (--fail-on {fail_on})")
        )
    return "\n".join(lines)
