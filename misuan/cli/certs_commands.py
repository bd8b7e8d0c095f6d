"""``misuan certs``: an institution's CA and node certificate, a CSR for a corporate CA, fingerprints,
expiry checks and revocation (see ``docs/deployment.md``).

Two ways to get a node certificate:

- its own small PKI: ``misuan certs ca --dir bank-ca --name "Bank CA"`` then ``misuan certs issue
  bank --ca-dir bank-ca --out bank-node``;
- the institution's corporate CA: ``misuan certs request bank --out bank-node`` writes a key and a
  CSR; the CA signs it; ``misuan certs import bank --cert signed.pem --key bank-node/bank.key --ca
  corp-chain.pem --out bank-node`` checks and installs it.

``misuan certs init`` keeps making one CA for every party: for a demo or tests on one machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from misuan.errors import ConfigError

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

__all__ = ["add_commands"]


def _hosts(text: str) -> list[str]:
    return [h.strip() for h in text.split(",") if h.strip()]


def cmd_init(args: argparse.Namespace) -> int:
    from misuan.crypto.certs import CA_CERT, create_ca, issue_party_cert

    parties = [p.strip() for p in args.parties.split(",") if p.strip()]
    if len(parties) < 2 or len(set(parties)) != len(parties):
        raise ConfigError(f"--parties: give at least two distinct party names, comma-separated (got {args.parties!r})")
    d = Path(args.dir)
    if not (d / CA_CERT).exists() or args.force:
        create_ca(d, overwrite=args.force)
        print(f"created CA {d / CA_CERT}")
    for p in parties:
        files = issue_party_cert(d, p, hosts=_hosts(args.hosts))
        print(f"issued {p}: cert {files.cert}, key {files.key}")
    print("one CA for every party: for a demo or tests; institutions make their own (`misuan certs ca`)")
    return 0


def cmd_ca(args: argparse.Namespace) -> int:
    from misuan.crypto.certs import create_ca

    path = create_ca(args.dir, name=args.name, days=args.days, overwrite=args.force)
    print(f"created CA {path} ({args.name}); keep {Path(args.dir) / 'ca.key'} offline")
    print(f"its fingerprint, for the peers' trust: {_fingerprints(path)[0]}")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    from misuan.crypto.certs import issue_party_cert

    files = issue_party_cert(args.ca_dir, args.party, out_dir=args.out, hosts=_hosts(args.hosts), days=args.days)
    print(f"issued {args.party}: cert {files.cert}, key {files.key}, CA {files.ca}")
    return 0


def cmd_request(args: argparse.Namespace) -> int:
    from misuan.crypto.certs import create_csr

    csr = create_csr(args.party, args.out, hosts=_hosts(args.hosts), organization=args.organization)
    print(f"wrote {csr} and its key {Path(args.out) / (args.party + '.key')}; have the CSR signed by your CA "
          f"(server and client authentication), then `misuan certs import {args.party} --cert SIGNED.pem ...`")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from misuan.crypto.certs import sign_csr

    path = sign_csr(args.ca_dir, args.csr, args.out, days=args.days)
    print(f"signed {args.csr} with {Path(args.ca_dir) / 'ca.pem'}: {path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from misuan.crypto.certs import import_signed_cert

    files = import_signed_cert(args.party, args.cert, args.key, args.ca, args.out)
    print(f"installed {files.cert} (checked: names {args.party!r}, matches {files.key}, chains to {files.ca})")
    return 0


def _fingerprints(path: Path) -> list[str]:
    from misuan.crypto.certs import load_pem_bundle
    from misuan.crypto.trust import fingerprint

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    return [fingerprint(c) for c in load_pem_bundle(data, path)]


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from misuan.crypto.trust import describe_certificates

    for f in args.files:
        for line in describe_certificates(Path(f)):
            print(line)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from misuan.crypto.certs import check_tls_files
    from misuan.crypto.trust import file_expiry_warnings, load_anchors, read_deny_list
    from misuan.node.spec import load_node_config

    node = load_node_config(args.config)
    check_tls_files(node.tls, node.party)
    for name, trust in node.peers.items():  # each file readable and holding CA certificates only
        load_anchors(name, trust.ca, trust.pins, trust.where)
    revoked = read_deny_list(node.revoked) if node.revoked and node.revoked.is_file() else frozenset()
    print(f"{node.party}: certificate {node.tls.cert} names {node.party!r}, chains to {node.tls.ca}, matches its key")
    print(f"peers with their own anchors: {sorted(node.peers) or 'none'}; revoked fingerprints: {len(revoked)}")
    warnings = file_expiry_warnings(node.certificate_files(), days=args.days)
    for w in warnings:
        print(f"warning: {w}")
    return 2 if warnings and args.strict else 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from misuan.atomic_files import write_atomic
    from misuan.crypto.trust import parse_fingerprint, read_deny_list
    from misuan.node.spec import load_node_config

    node = load_node_config(args.config)
    if node.revoked is None:
        raise ConfigError(f"{node.path} names no deny list: add revoked = \"revoked.txt\" to it")
    if Path(args.what).is_file():  # a certificate file may carry its issuers after it: revoke the first unless --all
        fps = _fingerprints(Path(args.what))
        fps = fps if args.all else fps[:1]
    else:
        fps = [parse_fingerprint(args.what, "FINGERPRINT")]
    have = read_deny_list(node.revoked) if node.revoked.is_file() else frozenset()
    text = node.revoked.read_text(encoding="utf-8") if node.revoked.is_file() else "# revoked certificates, one fingerprint a line\n"
    new = [f for f in fps if f not in have]
    note = f"  # {args.reason}" if args.reason else ""
    write_atomic(node.revoked, (text + "".join(f"{f}{note}\n" for f in new)).encode("utf-8"))
    print(f"{len(new)} fingerprint(s) added to {node.revoked}; the node refuses them from its next connection")
    return 0


def add_commands(sub: Subparsers) -> None:
    certs = sub.add_parser("certs", help="TLS certificates: an institution's CA, node certificates, CSRs, checks")
    csub = certs.add_subparsers(dest="certs_cmd", metavar="SUBCOMMAND", required=True)
    p = csub.add_parser("init", help="one CA and a certificate per party (a demo or tests on one machine)")
    p.add_argument("--dir", required=True, help="directory for ca.pem, ca.key, <party>.pem, <party>.key")
    p.add_argument("--parties", required=True, help="comma-separated party names, e.g. bank,partner")
    p.add_argument("--hosts", default="", help="extra DNS names/IPs in every certificate (none by default: peers connect by party name)")
    p.add_argument("--force", action="store_true", help="replace an existing CA in --dir")
    p.set_defaults(func=cmd_init)
    p = csub.add_parser("ca", help="create this institution's own CA")
    p.add_argument("--dir", required=True, help="directory for ca.pem and ca.key")
    p.add_argument("--name", required=True, help='the CA\'s name, e.g. "Bank CA"')
    p.add_argument("--days", type=int, default=3650, help="validity in days (default %(default)s)")
    p.add_argument("--force", action="store_true", help="replace an existing CA in --dir")
    p.set_defaults(func=cmd_ca)
    p = csub.add_parser("issue", help="issue this institution's node certificate from its own CA")
    p.add_argument("party", help="the node's party name")
    p.add_argument("--ca-dir", required=True, help="directory of the CA (ca.pem, ca.key)")
    p.add_argument("--out", help="where <party>.pem, <party>.key and ca.pem go (default: --ca-dir)")
    p.add_argument("--hosts", default="", help="extra DNS names/IPs, comma-separated (e.g. the node's host name)")
    p.add_argument("--days", type=int, default=825, help="validity in days (default %(default)s)")
    p.set_defaults(func=cmd_issue)
    p = csub.add_parser("request", help="a key and a certificate signing request for a corporate CA")
    p.add_argument("party", help="the node's party name")
    p.add_argument("--out", required=True, help="where <party>.key and <party>.csr go")
    p.add_argument("--hosts", default="", help="extra DNS names/IPs, comma-separated")
    p.add_argument("--organization", default="", help="the institution's name for the subject (O=)")
    p.set_defaults(func=cmd_request)
    p = csub.add_parser("sign", help="sign a node's CSR with a CA made by `misuan certs ca` (the CA operator's side)")
    p.add_argument("csr", help="the request (<party>.csr)")
    p.add_argument("--ca-dir", required=True, help="directory of the CA (ca.pem, ca.key)")
    p.add_argument("--out", required=True, help="where the signed certificate goes")
    p.add_argument("--days", type=int, default=825, help="validity in days (default %(default)s)")
    p.set_defaults(func=cmd_sign)
    p = csub.add_parser("import", help="check and install the certificate the corporate CA signed")
    p.add_argument("party", help="the node's party name")
    p.add_argument("--cert", required=True, help="the signed certificate (optionally followed by its intermediates)")
    p.add_argument("--key", required=True, help="the key made with the CSR")
    p.add_argument("--ca", required=True, help="the corporate CA bundle it must chain to")
    p.add_argument("--out", required=True, help="where <party>.pem, <party>.key and ca.pem go")
    p.set_defaults(func=cmd_import)
    p = csub.add_parser("fingerprint", help="print the SHA-256 fingerprints of certificates (to pin, revoke or compare)")
    p.add_argument("files", nargs="+", help="PEM files")
    p.set_defaults(func=cmd_fingerprint)
    p = csub.add_parser("check", help="check a node's certificate, key and anchors; warn of expiry")
    p.add_argument("--config", required=True, help="the node's node.toml")
    p.add_argument("--days", type=int, default=30, help="warn of certificates expiring within this many days")
    p.add_argument("--strict", action="store_true", help="exit 2 when there is a warning")
    p.set_defaults(func=cmd_check)
    p = csub.add_parser("revoke", help="add a certificate (file or fingerprint) to the node's deny list")
    p.add_argument("what", help="a certificate file or a fingerprint sha256:...")
    p.add_argument("--config", required=True, help="the node's node.toml (its revoked = ... file)")
    p.add_argument("--reason", default="", help="kept as a comment in the deny list")
    p.add_argument("--all", action="store_true", help="revoke every certificate of the file (its issuing CAs too)")
    p.set_defaults(func=cmd_revoke)
