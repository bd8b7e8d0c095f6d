"""``misuan audit export`` and ``misuan audit verify``: a job's auditor package (:mod:`misuan.node.audit_bundle`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from misuan.errors import ConfigError

__all__ = ["add_commands"]


def cmd_export(args: argparse.Namespace) -> int:
    from misuan.node.audit_bundle import export_bundle, read_party_signer
    from misuan.node.spec import load_node_config, load_spec

    spec = load_spec(args.spec) if args.spec else None
    if args.config:
        node = load_node_config(args.config)
        party, dirs = node.party, {node.party: node.data_dir}
        signer = read_party_signer(party, node.data_dir, node.tls.cert, node.tls.key)
    else:
        if not args.party:
            raise ConfigError("name the exporting party: --as PARTY with --workdir, or --config node.toml")
        workdir = Path(args.workdir)
        names = args.parties.split(",") if args.parties else (spec.party_names if spec else [args.party])
        dirs = {p: workdir / p for p in names}
        party = args.party
        if party not in dirs:
            raise ConfigError(f"--as {party}: the exporting party must be one of the parties exported {sorted(dirs)}")
        signer = read_party_signer(party, dirs[party], _path(args.tls_cert), _path(args.tls_key))
    out = export_bundle(Path(args.out), job_id=args.job, party_dirs=dirs, signer=signer, spec=spec,
                        spec_file=Path(args.spec) if args.spec else None, reports=[Path(r) for r in args.report])
    print(f"audit bundle of job {args.job} ({', '.join(sorted(dirs))}) signed by {party}: {out}")
    return 0


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def cmd_verify(args: argparse.Namespace) -> int:
    from misuan.node.audit_bundle import verify_bundle
    from misuan.node.spec import load_spec

    ca = Path(args.ca).read_bytes() if args.ca else None
    report = verify_bundle(Path(args.bundle), ca_pem=ca, spec=load_spec(args.spec) if args.spec else None)
    print(f"audit bundle {args.bundle}: verified")
    for line in report.proved:
        print(f"  proved: {line}")
    for line in report.not_proved:
        print(f"  not proved: {line}")
    return 0


def add_commands(sub: Any) -> None:
    audit = sub.add_parser("audit", help="an auditor's package of a job: export it, verify it offline")
    asub = audit.add_subparsers(dest="audit_cmd", metavar="SUBCOMMAND", required=True)
    p = asub.add_parser("export", help="write a job's bundle: ledgers, states, outputs, model parts, reports; signed")
    p.add_argument("--job", required=True, help="the job id")
    p.add_argument("--out", required=True, help="directory to create for the bundle")
    p.add_argument("--config", help="node.toml: export this node's part, signed with its TLS key")
    p.add_argument("--workdir", default="misuan-work", help="with --as: party directories WORKDIR/<party> (a simulation)")
    p.add_argument("--as", dest="party", help="the exporting party, which signs the bundle")
    p.add_argument("--parties", help="comma-separated parties to include (default: the spec's, else --as alone)")
    p.add_argument("--spec", help="the job spec (TOML): bundled, and its datasets fingerprinted where readable")
    p.add_argument("--report", action="append", default=[], help="a report file to include (repeatable)")
    p.add_argument("--tls-cert", help="with --as: sign with this certificate's key (default: the party's node key)")
    p.add_argument("--tls-key", help="the key of --tls-cert")
    p.set_defaults(func=cmd_export)
    p = asub.add_parser("verify", help="check every hash, chain and signature of a bundle, offline; exit 8 naming what was changed")
    p.add_argument("bundle", help="the bundle's directory")
    p.add_argument("--ca", help="PEM file of the CA certificate(s) that issued the parties' certificates")
    p.add_argument("--spec", help="a copy of the job spec, to compare with the bundle's")
    p.set_defaults(func=cmd_verify)
