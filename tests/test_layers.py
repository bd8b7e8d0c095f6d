"""The layer order of docs/architecture.md, enforced: a module imports only its own layer or lower."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "misuan"

# rank of each top-level part of the package; a module may import ranks <= its own
RANKS = {
    "errors": 0,
    "atomic_files": 0,
    "toml_files": 0,
    "params": 0,
    "crypto": 1,
    "net": 2,
    "protocols": 3,
    "ml": 4,
    "audit": 4,
    "datasets": 4,
    "lending": 4,
    "api": 5,
    "cli": 6,
    "node": 5,
    "report": 5,
    "demo": 5,
    "demo_validation": 5,
    "serving": 5,
    "demo_serve": 5,
    "demo_horizontal": 5,
    "__init__": 0,
}
# parts of equal rank that must still not import each other
# node and report: the steps write, and the report reads, the step-output schema of ml/outputs.py, so
# neither needs the other (the report must not sit below the node)
SIBLINGS_APART = {frozenset({"ml", "audit"}), frozenset({"node", "report"})}


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


# third-party packages each part may import (the standard library is always allowed): keeps the
# heavy and the network libraries where they belong, e.g. crypto never imports pandas or grpc
THIRD_PARTY = {
    "errors": set(),
    "atomic_files": set(),
    "toml_files": {"tomli"},
    "params": set(),
    "__init__": set(),
    "crypto": {"numpy", "gmpy2", "cryptography", "nacl", "ray"},
    "net": {"numpy", "grpc"},
    "protocols": {"numpy", "pandas", "gmpy2", "tqdm"},
    "ml": {"numpy", "pandas"},
    "audit": {"numpy"},
    "datasets": {"numpy", "pandas"},
    "lending": {"numpy", "tomli"},
    "api": {"numpy", "pandas"},
    "node": {"numpy", "pandas", "tomli", "pyarrow", "psycopg"},
    "report": {"numpy"},
    "demo": {"numpy", "pandas", "xgboost"},
    "demo_validation": set(),
    "serving": {"numpy", "pandas", "starlette", "uvicorn"},
    "demo_serve": set(),
    "demo_horizontal": {"numpy", "pandas", "xgboost"},
    "cli": {"numpy", "pandas", "grpc", "tomli"},
}


def _all_imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every import of the file (also inside functions): (module, names imported from it)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names]))
    return out


def test_third_party_imports_per_part() -> None:
    import sys

    # tomllib is standard from 3.11; on 3.10 the code imports tomli in its place, under a version check
    std = set(sys.stdlib_module_names) | {"tomllib"}
    bad = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        me = _part(".".join(rel.parts))
        for module, _ in _all_imports(path):
            top = module.split(".")[0]
            if top not in std and top != "misuan" and top not in THIRD_PARTY[me]:
                bad.append(f"{rel} imports {module} ({me} may import {sorted(THIRD_PARTY[me]) or 'no third-party package'})")
    assert not bad, "third-party imports outside their layers:\n" + "\n".join(bad)


def _module_graph() -> dict[str, set[str]]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for module, names in _all_imports(path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in mods] or ([module] if module in mods else [])
            graph[m].update(t for t in targets if t != m)
    return graph


def test_no_import_cycles() -> None:
    """No module imports itself back through others, not even from inside a function."""
    graph = _module_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
