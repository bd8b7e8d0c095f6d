"""The layer order of docs/architecture.md, enforced: a module imports only its own layer or lower."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "misuan"

# rank of each top-level part of the package; a module may import ranks <= its own
RANKS = {
    "errors": 0,
    "atomic_files": 0,
    "params": 0,
    "crypto": 1,
    "net": 2,
    "protocols": 3,
    "ml": 4,
    "audit": 4,
    "datasets": 4,
    "api": 5,
    "cli": 6,
    "node": 5,
    "report": 5,
    "demo": 5,
    "__init__": 0,
}
# parts of equal rank that must still not import each other
SIBLINGS_APART = {frozenset({"ml", "audit"})}


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return [m for m in out if m == "misuan" or m.startswith("misuan.")]


def test_every_part_has_a_rank() -> None:
    parts = {p.stem if p.is_file() else p.name for p in ROOT.iterdir() if not p.name.startswith((".", "_")) or p.name == "__init__.py"}
    parts = {p for p in parts if p not in {"py", "py.typed"} and (ROOT / p).is_dir() or (ROOT / f"{p}.py").exists()}
    assert parts <= set(RANKS), f"give these a rank in tests/test_layers.py and docs/architecture.md: {parts - set(RANKS)}"


def test_imports_only_go_downward() -> None:
    bad = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        me = _part(".".join(rel.parts))
        for imp in _imports(path):
            if imp == "misuan":
                continue
            other = _part(imp)
            if RANKS[other] > RANKS[me] or (other != me and frozenset({me, other}) in SIBLINGS_APART):
                bad.append(f"{rel} imports {imp}")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)
