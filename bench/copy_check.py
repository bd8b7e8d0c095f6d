"""Benchmark: the marketing-copy checker's precision and recall per rule, and its speed.

Precision and recall are counted per document: a rule "fires" on an example when it gives at least
one finding there, and is "expected" when the example's label lists it. Two labelled sets:
``tests/lending/copy_corpus.toml`` (the development corpus the tests require to be exact, so its
figures are 1.0 by construction) and ``tests/lending/copy_heldout.toml`` (written after the rules,
an estimate on unseen copy). Speed: ``check_copy`` over the corpus examples cycled to ``--docs``
documents (short promotions, about 40 characters each), and over long product pages made by joining
50 examples (about 2,000 characters each), after one warm-up call (the rule file is read and
compiled once per process: measured separately).

    python bench/copy_check.py [--docs 20000] [--pages 200] [--corpus PATH ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from misuan.lending.copy_check import ProductTerms, check_copy
from misuan.lending.copy_rules import load_copy_rules

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
RULE_FILE = ROOT / "misuan/lending/rules/copy_rules.toml"
CORPORA = [ROOT / f"tests/lending/{name}.toml" for name in ("copy_corpus", "copy_heldout", "copy_heldout2")]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        examples: list[dict[str, Any]] = tomllib.load(f)["example"]
    return examples


def _run(example: dict[str, Any]) -> set[str]:
    terms = ProductTerms(**example["terms"]) if "terms" in example else None
    return {f.rule_id for f in check_copy(example["text"], terms, example.get("language", "auto"))}


def scores(examples: Sequence[dict[str, Any]], rule_ids: Sequence[str]) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    """Per rule (true positives, false positives, false negatives); and the ids of the examples missed."""
    counts = {r: [0, 0, 0] for r in rule_ids}
    wrong = []
    for ex in examples:
        got, want = _run(ex), set(ex["expect"])
        if got != want:
            wrong.append(f"{ex['id']} (extra {sorted(got - want)}, missed {sorted(want - got)})")
        for r in rule_ids:
            counts[r][0] += r in got and r in want
            counts[r][1] += r in got and r not in want
            counts[r][2] += r in want and r not in got
    return {r: (c[0], c[1], c[2]) for r, c in counts.items()}, wrong


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "  n/a"


def print_scores(path: Path, rule_ids: Sequence[str]) -> None:
    examples = load(path)
    counts, wrong = scores(examples, rule_ids)
    name = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    print(f"\n== {name}: {len(examples)} examples, {len(examples) - len(wrong)} exactly right ==")
    print(f"  {'rule':26s} {'precision':>9s} {'recall':>7s}   tp  fp  fn")
    for r, (tp, fp, fn) in counts.items():
        print(f"  {r:26s} {_ratio(tp, tp + fp):>9s} {_ratio(tp, tp + fn):>7s}  {tp:3d} {fp:3d} {fn:3d}")
    tp, fp, fn = (sum(c[i] for c in counts.values()) for i in range(3))
    print(f"  {'all rules (micro)':26s} {_ratio(tp, tp + fp):>9s} {_ratio(tp, tp + fn):>7s}  {tp:3d} {fp:3d} {fn:3d}")
    for w in wrong:
        print(f"  wrong: {w}")


def time_docs(texts: Sequence[str], repeat: int = 3) -> tuple[float, float]:
    """Best of ``repeat`` runs: (wall seconds, CPU seconds of this process) to check all of ``texts``."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        for text in texts:
            check_copy(text)
        best = min(best, (time.perf_counter() - t, time.process_time() - c))
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20_000, help="short documents to time (default %(default)s)")
    ap.add_argument("--pages", type=int, default=200, help="long product pages to time (default %(default)s)")
    ap.add_argument("--corpus", type=Path, action="append", help="labelled TOML corpus (default: both of tests/lending)")
    args = ap.parse_args(argv)

    print("Marketing-copy checker (misuan/lending/copy_check.py)")
    print(f"  CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores; Python {platform.python_version()}")
    print(f"  load average {os.getloadavg()[0]:.2f} at the start (other work on the machine)")
    t = time.perf_counter()
    rules = load_copy_rules(RULE_FILE)
    print(f"  reading and compiling the rule file: {(time.perf_counter() - t) * 1e3:.1f} ms (once per process)")
    for path in args.corpus or CORPORA:
        print_scores(path, rules.ids)

    examples = [e for path in CORPORA for e in load(path)]
    texts = [examples[i % len(examples)]["text"] for i in range(args.docs)]
    check_copy(texts[0])
    seconds, cpu = time_docs(texts)
    chars = statistics.mean(len(t) for t in texts)
    print(f"\n== speed (one core) ==\n  {args.docs:,} short documents (mean {chars:.0f} characters): "
          f"{seconds / args.docs * 1e6:.0f} us each; per 1,000 documents {seconds / args.docs * 1e6:.1f} ms wall, "
          f"{cpu / args.docs * 1e6:.1f} ms CPU")
    pages = ["\n".join(examples[(i * 7 + j) % len(examples)]["text"] for j in range(50)) for i in range(args.pages)]
    seconds, cpu = time_docs(pages)
    chars = statistics.mean(len(p) for p in pages)
    print(f"  {args.pages:,} product pages (mean {chars:,.0f} characters): {seconds / args.pages * 1e3:.2f} ms each; "
          f"per 1,000 pages {seconds / args.pages * 1e3:.2f} s wall, {cpu / args.pages * 1e3:.2f} s CPU")
    print(f"  load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
