"""The machine a benchmark ran on, as every bench prints it: CPU model, cores, the flags that matter, load."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_line", "load_line"]


def cpu_line() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [f for f in ("aes", "avx2", "avx512f", "avx512ifma", "vaes", "pclmulqdq") if f in flags]
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(shown) or 'unknown'}"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
