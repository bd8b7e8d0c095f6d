"""``misuan serve --config serve.toml``: a node's online scoring service (:mod:`misuan.serving`)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def cmd_serve(args: argparse.Namespace) -> int:
    from misuan.serving.config import load_serve_config

    cfg = load_serve_config(Path(args.config))
    role = cfg.model_doc().get("role")
    if role == "feature_party":
        from misuan.serving.node import start_partner

        node = start_partner(cfg)
        print(f"{cfg.party}: serving model {cfg.model_id} to {cfg.peer} on {cfg.listen} (Ctrl-C stops)", flush=True)
        try:
            threading.Event().wait() if node.thread.is_alive() else None
        except KeyboardInterrupt:
            pass
        finally:
            node.close()
        return 0
    from misuan.serving.app import serve_forever
    from misuan.serving.node import start_bank

    bank = start_bank(cfg)
    print(f"{cfg.party}: decision API and the credit officer's page on http://{cfg.http}/ (Ctrl-C stops)", flush=True)
    try:
        serve_forever(bank)
    finally:
        bank.close()
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve a joint model online: the partner's part, or the bank's decision API and page")
    p.add_argument("--config", required=True, help="serve.toml (see misuan.serving.config)")
    p.set_defaults(func=cmd_serve)
