"""A serving node's ``serve.toml`` for the tests: loopback ports, the test PKI under ``certs/``."""

from __future__ import annotations

from pathlib import Path

from misuan.serving.config import serve_config_text


def write_serve_config(root: Path, party: str, peer: str, ports: dict[str, int], sha_peer: str, http: int | None, *,
                       model: str, model_id: str, deadline_ms: int, cover: tuple[int, str] | None = None) -> Path:
    """``root/<party>.toml`` for ``party`` serving ``root/model`` against ``peer``; the bank's HTTP API
    when ``http`` is a port (its cover queries too, when given)."""
    path = root / f"{party}.toml"
    path.write_text(serve_config_text(
        party=party, model=model, model_id=model_id, peer_model_sha256=sha_peer,
        listen=f"127.0.0.1:{ports[party]}", peer=peer, peer_address=f"127.0.0.1:{ports[peer]}",
        tls=("certs/ca.pem", f"certs/{party}.pem", f"certs/{party}.key"), data_dir=f"{party}-serve",
        features_csv=f"{party}.csv", id_column="customer_id", deadline_ms=deadline_ms,
        http=f"127.0.0.1:{http}" if http else None, cover=cover if http else None,
    ))
    return path
