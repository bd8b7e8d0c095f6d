"""``misuan demo --serve``: the demo's joint model served online, after the demo ran.

Writes a ``serve.toml`` per institution next to the demo (``<workdir>/serve/``): each node's model
part from the demo job (SecureBoost's trees, or with ``--serve-model scorecard`` the federated
scorecard's parts), its feature store from its own table (IDs normalised as the job's PSI did),
the demo's certificates, and the peer part's SHA-256 as the pin; then starts the partner's serving
node and the bank's (gRPC + mutual TLS on loopback) and the bank's decision API and credit officer's
page, and prints the page's address. Ctrl-C stops both.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from misuan.errors import ConfigError
from misuan.net.local import free_port
from misuan.serving.app import HttpServer, create_app
from misuan.serving.config import load_serve_config, model_sha256, serve_config_text
from misuan.serving.node import BankService, PartnerNode, start_bank, start_partner

__all__ = ["MODELS", "DemoServing", "serve_demo", "start_demo_serving"]

BANK, PARTNER = "bank", "partner"
# the demo job's model parts that can be served: (step, artefact) under each node's job directory
MODELS = {"secureboost": ("secureboost", "model.json"), "scorecard": ("scorecard", "scorecard.json")}


def _latest_job(workdir: Path) -> str:
    jobs = sorted((workdir / "nodes" / BANK / "jobs").glob("demo-*"))
    if not jobs:
        raise ConfigError(f"no demo run in {workdir}: run `misuan demo --workdir {workdir}` first")
    return jobs[-1].name


DEADLINE_MS = 200  # the bank's longest wait for the partner's answer to one applicant


def write_serve_configs(workdir: Path, http_port: int, model: str = "secureboost",
                        deadline_ms: int = DEADLINE_MS) -> dict[str, Path]:
    job = _latest_job(workdir)
    if model not in MODELS:
        raise ConfigError(f"--serve-model must be one of {sorted(MODELS)}, not {model!r}")
    step, artefact = MODELS[model]
    part = {p: workdir / "nodes" / p / "jobs" / job / "artefacts" / step / artefact for p in (BANK, PARTNER)}
    for path in part.values():
        if not path.is_file():
            raise ConfigError(f"the demo run in {workdir} has no {model} model part ({path}): run the demo again")
    ports = {BANK: free_port(), PARTNER: free_port()}
    out = {}
    root = workdir / "serve"
    root.mkdir(parents=True, exist_ok=True)
    certs = workdir / "certs"
    for me, peer in ((BANK, PARTNER), (PARTNER, BANK)):
        text = serve_config_text(
            party=me, model=part[me].as_posix(), model_id=f"{job}-{model}", peer_model_sha256=model_sha256(part[peer]),
            listen=f"127.0.0.1:{ports[me]}", peer=peer, peer_address=f"127.0.0.1:{ports[peer]}",
            tls=((certs / "ca.pem").as_posix(), (certs / f"{me}.pem").as_posix(), (certs / f"{me}.key").as_posix()),
            data_dir=me, features_csv=(workdir / "data" / f"{me}.csv").as_posix(), id_column="customer_id",
            http=f"127.0.0.1:{http_port}" if me == BANK else None, deadline_ms=deadline_ms if me == BANK else None,
            header=f"written by `misuan demo --serve`: {me}'s serving node for the demo's joint {model} model ({job})",
        )
        out[me] = root / f"{me}.toml"
        out[me].write_text(text, encoding="utf-8")
    return out


class DemoServing:
    """Both serving nodes and the HTTP server of a demo run, in this process."""

    def __init__(self, partner: PartnerNode, bank: BankService, server: HttpServer) -> None:
        self.partner, self.bank, self.server = partner, bank, server

    def close(self) -> None:
        self.server.stop()
        self.bank.close()
        self.partner.close()


def start_demo_serving(workdir: Path, http_port: int | None = None, model: str = "secureboost",
                       deadline_ms: int = DEADLINE_MS) -> DemoServing:
    configs = write_serve_configs(Path(workdir), http_port or free_port(), model, deadline_ms)
    partner = start_partner(load_serve_config(configs[PARTNER]))
    bcfg = load_serve_config(configs[BANK])
    bank = start_bank(bcfg)
    assert bcfg.http is not None
    return DemoServing(partner, bank, HttpServer(create_app(bank), bcfg.http))


def serve_demo(workdir: str | Path, http_port: int = 8080, model: str = "secureboost", **_: Any) -> int:
    serving = start_demo_serving(Path(workdir).resolve(), http_port, model)
    print(f"serving the demo's joint {model} model: the credit officer's page on {serving.server.url}/ "
          f"(API: POST {serving.server.url}/v1/decisions); Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        serving.close()
    return 0
