#!/usr/bin/env python3
"""Render the sample report (synthetic data) and photograph it with headless Chromium.

    python scripts/screenshot_report.py [--out DIR] [--seed N] [--height PX]

Writes DIR/sample_report.html and DIR/sample_report.png and prints their paths (default DIR:
./runs/report-screenshots, which git ignores). Needs a Chromium or Chrome binary (Debian:
``apt-get install chromium``); nothing is fetched from the network: the page is self-contained and
Chromium's background services are off.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from misuan.report import render_report  # noqa: E402
from misuan.report.sample import sample_summary  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 4000, timeout_s: float = 120) -> Path:
    """Photograph ``html`` into ``png`` with headless Chromium; raise if the browser fails or writes nothing."""
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError(f"no Chromium found (looked for {', '.join(BROWSERS)}): apt-get install chromium")
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="misuan-chromium-") as profile:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png.resolve()}",
            f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"{browser} wrote no screenshot (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/report-screenshots"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--height", type=int, default=9000, help="window height in pixels (the whole page is ~8,700)")
    args = ap.parse_args(argv)
    html = render_report(sample_summary(args.seed), args.out / "sample_report.html", generated_at="(sample)")
    png = screenshot(html, args.out / "sample_report.png", height=args.height)
    print(html)
    print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
