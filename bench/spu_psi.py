"""SecretFlow's PSI engine (pip ``spu``) on the same ID sets as ``bench/psi.py``: RR22 or KKRT, two processes.

``spu`` installs on Python 3.10-3.11 only, so it may live in another environment than misuan:
``MISUAN_SPU_PYTHON`` names that interpreter (default: this one). Each party is a process running
``spu.psi.psi_execute`` over its brpc link on loopback, reading a CSV of IDs and writing the
intersection; the wall time counts from starting both processes to both results, as misuan's does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_CHILD = r"""
import json, resource, sys
import spu.libspu.link as link
import spu.psi as psi
rank, protocol, ports, inp, out = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4], sys.argv[5]
desc = link.Desc()
for i, port in enumerate(ports):
    desc.add_party(f"party{i}", f"127.0.0.1:{port}")
lctx = link.create_brpc(desc, rank)
conf = psi.PsiExecuteConfig(
    protocol_conf=psi.PsiProtocolConfig(
        protocol=getattr(psi.PsiProtocol, "PROTOCOL_" + protocol), receiver_rank=0, broadcast_result=True),
    input_params=psi.InputParams(type=psi.SourceType.SOURCE_TYPE_FILE_CSV, path=inp, selected_keys=["id"], keys_unique=True),
    output_params=psi.OutputParams(type=psi.SourceType.SOURCE_TYPE_FILE_CSV, path=out, disable_alignment=True),
)
report = psi.psi_execute(conf, lctx)
print("MISUAN-SPU " + json.dumps({"size": report.intersection_count, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_spu(n: int, overlap: float, protocol: str) -> dict[str, Any]:
    """``protocol``: "RR22" or "KKRT". Returns seconds, size and the larger party's peak memory."""
    from bench.psi import PARTIES, make_ids

    python = os.environ.get("MISUAN_SPU_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for party in PARTIES:
            path = Path(tmp) / f"{party}.csv"
            path.write_text("id\n" + "\n".join(make_ids(party, n, overlap)) + "\n")
            files.append(path)
        ports = ",".join(str(p) for p in _free_ports(2))
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen([python, "-c", _CHILD, str(rank), protocol, ports, str(f), str(Path(tmp) / f"out{rank}.csv")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for rank, f in enumerate(files)
        ]
        outs = [p.communicate(timeout=3600) for p in procs]
        seconds = time.perf_counter() - t0
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"spu {protocol} failed: {err.strip()[-500:]}")
    reports = [json.loads(next(x for x in o.splitlines() if x.startswith("MISUAN-SPU "))[11:]) for o, _ in outs]
    return {"seconds": seconds, "size": int(reports[0]["size"]), "peak_bytes": max(r["maxrss"] for r in reports)}
