"""Size limits that keep the code readable: no module over 600 lines, no function over 80 (tests excluded).

A newcomer should be able to read a module in one sitting and a function on one screen; when one
grows past the limit, split it by what its parts do rather than raising the limit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("misuan", "bench")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(p for part in CHECKED for p in (ROOT / part).rglob("*.py"))


def _function_lengths(tree: ast.Module) -> list[tuple[str, int, int]]:
    """(qualified name, first line, lines) of every function and method, nested ones included."""
    out: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert child.end_lineno is not None
                out.append((prefix + child.name, child.lineno, child.end_lineno - child.lineno + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def test_the_checked_folders_hold_modules() -> None:
    assert len(_modules()) > 50  # guards against a moved root making the tests below vacuous


def test_no_module_is_too_long() -> None:
    limit, offenders = MAX_MODULE_LINES, list[str]()
    for path in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            offenders.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not offenders, f"modules over {limit} lines (split them by responsibility):\n" + "\n".join(offenders)


def test_no_function_is_too_long() -> None:
    limit, offenders = MAX_FUNCTION_LINES, list[str]()
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, line, length in _function_lengths(tree):
            if length > limit:
                offenders.append(f"{path.relative_to(ROOT)}:{line} {name}: {length} lines")
    assert not offenders, f"functions over {limit} lines (split them into named steps):\n" + "\n".join(offenders)
