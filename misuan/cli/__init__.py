"""The ``misuan`` command line (stdlib argparse); certificates and the node's commands live in
:mod:`misuan.cli.certs_commands` and :mod:`misuan.cli.node_commands`, the auditor's package in
:mod:`misuan.cli.audit_commands`.

Every failure prints one line ``misuan: error: <message>`` and a hint, and exits with the stable
code of its error class (``misuan.errors.EXIT_CODES``; ``misuan help-exit-codes`` lists them).
``--debug`` prints the traceback as well. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

from misuan import __version__
from misuan.cli import audit_commands, certs_commands, node_commands, serve_commands
from misuan.errors import EXIT_CODES, ConfigError, MisuanError, NetworkError
from misuan.lending import commands as lending_commands

__all__ = ["main"]

DEFAULT_WORKDIR = "misuan-work"


# --- commands ------------------------------------------------------------------------------------
def cmd_version(args: argparse.Namespace) -> int:
    import grpc
    import numpy
    import pandas

    from misuan.crypto import x25519_multibuffer

    print(f"misuan {__version__} (python {sys.version.split()[0]}, grpcio {grpc.__version__}, "
          f"numpy {numpy.__version__}, pandas {pandas.__version__})")
    fast = x25519_multibuffer.load() is not None
    why = "" if fast else f" ({x25519_multibuffer.unavailable_reason()})"
    print(f"PSI X25519: {'Intel crypto_mb, 8 lanes' if fast else 'OpenSSL'}{why}")
    return 0


def cmd_exit_codes(args: argparse.Namespace) -> int:
    for code, text in sorted(EXIT_CODES.items()):
        print(f"{code:>4}  {text}")
    return 0


def _parse_addresses(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, addr = item.partition("=")
        if not sep or not name or not addr:
            raise ConfigError(f"--address: write NAME=HOST:PORT, not {item!r}")
        out[name] = addr
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from misuan.node.runner import run_party
    from misuan.node.spec import load_node_config, load_spec
    from misuan.node.transport import grpc_opener, resolve_tls, resolve_trust

    spec = load_spec(args.spec)
    node = load_node_config(args.config) if args.config else None
    party = args.party or (node.party if node else None)
    if party is None:
        raise ConfigError("say which party you are: --as PARTY (or --config node.toml naming it)")
    if node is not None and node.party != party:
        raise ConfigError(f"--as {party} contradicts the node config {node.path}, which is party {node.party!r}")
    if node is not None:
        from misuan.crypto.pool import use_compute

        use_compute(node.compute)  # this party's worker pools: here, or on its own Ray cluster
    spec.party(party)
    party_dir = node.data_dir if node else Path(args.workdir) / party
    tls = resolve_tls(spec, party, node, Path(args.tls_dir) if args.tls_dir else None)
    listen = args.listen or (node.listen if node else None)
    # running it here is this operator's consent; the peers' nodes may still ask theirs (we wait and say so)
    opener = grpc_opener(
        spec, party, tls, addresses=_parse_addresses(args.address), listen=listen,
        anchors=resolve_trust(spec, party, tls, node), on_wait=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    outcome = run_party(spec, party, party_dir=party_dir, open_channel=opener, resume=args.resume)
    if args.json:
        print(json.dumps({"job_id": outcome.job_id, "party": party, "outputs": outcome.outputs}, indent=2))
    else:
        print(f"job {outcome.job_id} completed for {party}: {len(outcome.ran)} step(s) run, "
              f"{len(outcome.skipped)} kept; results in {outcome.job_dir}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """All parties as separate OS processes on loopback, real gRPC + mTLS, throw-away certificates."""
    from misuan.node.local import PartyExitError, ProcessOptions, run_job_local
    from misuan.node.runner import check_runnable, job_dir
    from misuan.node.spec import load_spec

    spec = load_spec(args.spec)
    if args.in_process:
        return _simulate_in_process(args)
    workdir = Path(args.workdir)
    for p in spec.party_names:
        check_runnable(spec, p)
        if not args.resume and any((job_dir(workdir / p, spec.job_id) / "steps").glob("*.json")):
            raise ConfigError(
                f"job {spec.job_id!r} already has results in {job_dir(workdir / p, spec.job_id)}; "
                "pass --resume to continue it, or remove that directory to start again"
            )
    outcomes = run_job_local(
        spec, workdir=workdir, transport="processes", resume=args.resume,
        processes=ProcessOptions(Path(args.spec), debug=args.debug), raise_errors=False,
    )
    failed = {p: o.error.exit_code for p, o in outcomes.items() if isinstance(o.error, PartyExitError)}
    if failed:
        # a peer's network error is usually a consequence: report the cause's code
        causes = [c for c in failed.values() if c != NetworkError.exit_code] or list(failed.values())
        print(f"misuan: error: job {spec.job_id} failed: exit codes {failed} (see the messages above)", file=sys.stderr)
        return causes[0]
    print(f"job {spec.job_id} completed for {', '.join(spec.party_names)} in separate processes; "
          f"results in {workdir}/<party>/jobs/{spec.job_id}/")
    return 0


def _simulate_in_process(args: argparse.Namespace) -> int:
    from misuan.api import simulate
    from misuan.node.runner import stderr_progress

    res = simulate(args.spec, workdir=Path(args.workdir), resume=args.resume, progress=stderr_progress)
    print(f"job {res.job_id} completed for {', '.join(res.parties)} in one process; results in {res.workdir}")
    return 0


def _ledger_path(args: argparse.Namespace) -> Path:
    from misuan.node.spec import load_node_config

    if args.ledger:
        path = Path(args.ledger)
    elif args.config:
        path = load_node_config(args.config).ledger_path
    elif args.party:
        path = Path(args.workdir) / args.party / "ledger.sqlite"
    else:
        raise ConfigError("say which ledger: --ledger PATH, --config node.toml, or --as PARTY [--workdir DIR]")
    if not path.is_file():
        raise ConfigError(f"no ledger at {path}")
    return path


def _ledger_verify(led: Any, args: argparse.Namespace) -> None:
    from misuan.audit.peer_anchors import check_peer_anchors, load_export, parse_expected_head

    length, head = parse_expected_head(args.expected_head) if args.expected_head else (None, None)
    n = led.verify(expected_head=head, expected_length=length)
    print(f"ledger {led.path}: {n} row(s), hash chain intact, head {n}:{led.head()}")
    if args.peer_anchors:
        report = check_peer_anchors(led, load_export(Path(args.peer_anchors)), args.signer)
        print(f"consistent with the {report.checked} anchor(s) {report.peer} holds of it "
              f"(newest: row {report.newest.length}, job {report.newest.job_id!r}, {report.newest.key_kind})")


def cmd_ledger(args: argparse.Namespace) -> int:
    from misuan.audit.ledger import Ledger
    from misuan.errors import LedgerTamperedError

    with Ledger(_ledger_path(args)) as led:
        if args.ledger_cmd == "verify":
            _ledger_verify(led, args)
        elif args.ledger_cmd == "export":
            out = led.export_json(args.out, job_id=args.job)
            print(f"exported to {out}")
        else:
            try:  # shown even when tampered (an auditor wants to see it), but the exit code says so
                led.verify()
                tampered = None
            except LedgerTamperedError as exc:
                tampered = exc
                print(f"misuan: warning: this ledger fails verification: {exc}", file=sys.stderr)
            entries = led.entries(args.job)
            if args.json:
                print(json.dumps([e.as_dict() for e in entries], indent=2, ensure_ascii=False))
            else:
                for e in entries:
                    shape = "x".join(str(s) for s in e.shape) or "scalar"
                    print(f"#{e.seq:<5} {e.recorded_at[:19]}  {e.job_id}/{e.step}: {e.discloser} -> {e.recipient}: "
                          f"{e.what} [{shape}, {e.form}]" + (f" {json.dumps(e.detail)}" if e.detail else ""))
                if not entries:
                    print("(no entries)")
            if tampered is not None:
                raise tampered
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from misuan.node.steps import STEPS
    from misuan.node.steps.reference import params_reference

    if args.kind is not None and args.kind not in STEPS:
        raise ConfigError(f"no step kind {args.kind!r}; the step kinds are {sorted(STEPS)}")
    kinds = [STEPS[args.kind]] if args.kind is not None else list(STEPS.values())
    print(params_reference(kinds, markdown=args.markdown, header=args.kind is None), end="")
    return 0


def cmd_lending_copy(args: argparse.Namespace) -> int:
    from misuan.lending.copy_check import VIOLATIONS_EXIT_CODE, CopyCheckParams, check_copy, failing
    from misuan.lending.copy_report import CopyResult, load_terms, read_copy, render_json, render_text
    from misuan.lending.copy_rules import load_copy_rules

    rules = load_copy_rules(args.rules)
    terms = load_terms(args.terms) if args.terms else None
    params = CopyCheckParams(ignore=args.ignore)
    results = []
    for path in args.files:
        text = read_copy(path)
        results.append(CopyResult(path, text, tuple(check_copy(text, terms, args.language, params=params, rules=rules))))
    out = render_json(results, rules.path, args.fail_on) if args.format == "json" else render_text(results, args.fail_on)
    print(out)
    return VIOLATIONS_EXIT_CODE if any(failing(r.findings, args.fail_on) for r in results) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.horizontal:
        from misuan import demo_horizontal

        return demo_horizontal.run(args.workdir, trees=args.trees or 10, depth=args.depth, seed=args.seed)
    from misuan import demo

    code = demo.run(args.workdir, trees=args.trees or 20, depth=args.depth, seed=args.seed, key_bits=args.key_bits)
    if code or not args.serve:
        return code
    from misuan import demo_serve

    return demo_serve.serve_demo(args.workdir, http_port=args.port, model=args.serve_model)


# --- parser --------------------------------------------------------------------------------------
# what ``parser.add_subparsers()`` returns; each group of commands is added by one function below
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="misuan",
        description="misuan (密算): joint credit-risk modelling without sharing rows. "
        "Each institution runs a node; nodes talk gRPC + mutual TLS; every disclosure goes to a hash-chained ledger.",
        epilog="Each error prints one line and a hint and exits with a stable code: "
        "`misuan exit-codes` lists them. `misuan COMMAND --help` describes a command.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_info_commands(sub)
    certs_commands.add_commands(sub)
    node_commands.add_commands(sub)
    _add_job_commands(sub)
    _add_ledger_commands(sub)
    audit_commands.add_commands(sub)
    serve_commands.add_commands(sub)
    _add_demo_command(sub)
    _add_lending_commands(sub)
    return parser


def _add_info_commands(sub: Subparsers) -> None:
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)
    p = sub.add_parser("exit-codes", help="list the exit codes and what they mean")
    p.set_defaults(func=cmd_exit_codes)
    p = sub.add_parser("params", help="list the step kinds and their parameters (type, default, range, meaning)")
    p.add_argument("kind", nargs="?", help="only this step kind, e.g. woe")
    p.add_argument("--markdown", action="store_true", help="print Markdown, as in docs/params.md")
    p.set_defaults(func=cmd_params)


def _add_job_commands(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="run a job as one party, in this process (gRPC + mTLS to the peers)")
    p.add_argument("spec", help="job spec (TOML)")
    p.add_argument("--as", dest="party", help="this party's name in the spec")
    p.add_argument("--config", help="node.toml: identity, TLS files, listen address and data_dir")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help="results go to WORKDIR/<party>/ (without --config)")
    p.add_argument("--resume", action="store_true", help="skip the steps every party completed before")
    p.add_argument("--tls-dir", help="directory from `misuan certs init` (ca.pem, <party>.pem, <party>.key)")
    p.add_argument("--address", action="append", default=[], metavar="NAME=HOST:PORT",
                   help="override a party's address from the spec (repeatable)")
    p.add_argument("--listen", metavar="HOST:PORT", help="where this party's server binds (default: its address)")
    p.add_argument("--json", action="store_true", help="print the step outputs as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("simulate", help="run every party of a spec on this machine, each in its own process")
    p.add_argument("spec", help="job spec (TOML); every party's dataset must be here")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help="results go to WORKDIR/<party>/")
    p.add_argument("--resume", action="store_true", help="skip the steps every party completed before")
    p.add_argument("--in-process", action="store_true", help="threads and in-memory channels instead of processes")
    p.set_defaults(func=cmd_simulate)


def _add_ledger_commands(sub: Subparsers) -> None:
    ledger = sub.add_parser("ledger", help="read, verify or export a disclosure ledger")
    lsub = ledger.add_subparsers(dest="ledger_cmd", metavar="SUBCOMMAND", required=True)
    for name, text in (
        ("show", "list what this party disclosed and learned"),
        ("verify", "check the hash chain (and against a kept head or a peer's anchors); exit 8 naming what was tampered with"),
        ("export", "write the ledger as JSON (verified first)"),
    ):
        p = lsub.add_parser(name, help=text)
        p.add_argument("--ledger", help="path of ledger.sqlite")
        p.add_argument("--config", help="node.toml: use <data_dir>/ledger.sqlite")
        p.add_argument("--as", dest="party", help="with --workdir: use WORKDIR/<party>/ledger.sqlite")
        p.add_argument("--workdir", default=DEFAULT_WORKDIR)
        if name != "verify":
            p.add_argument("--job", help="only this job's rows")
        if name == "show":
            p.add_argument("--json", action="store_true", help="print rows as JSON")
        if name == "export":
            p.add_argument("--out", required=True, help="JSON file to write")
        if name == "verify":
            p.add_argument("--expected-head", help="HASH or LENGTH:HASH kept elsewhere (as verify prints it): "
                           "catches truncation and a rewritten tail")
            p.add_argument("--peer-anchors", metavar="FILE",
                           help="a peer's `misuan ledger export`: check this ledger against the anchors it holds")
            p.add_argument("--signer", help="this ledger's party, if the ledger does not name it")
        p.set_defaults(func=cmd_ledger)


def _add_demo_command(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="the end-to-end demo: PSI, WOE/IV, SecureBoost and a report on bundled real data",
        description="Runs a bank and a partner as separate processes (gRPC + mutual TLS on loopback) through "
        "PSI -> WOE/IV -> SecureBoost -> evaluation on the bundled UCI credit data, writes an HTML report "
        "and prints a summary.",
    )
    p.add_argument("--workdir", default="misuan-demo", help="where data, certificates, results and the report go (default %(default)s)")
    p.add_argument("--serve", action="store_true",
                   help="then serve the joint model online: both nodes, the decision API and the credit officer's page")
    p.add_argument("--port", type=int, default=8080, help="with --serve: the page's port on 127.0.0.1 (default 8080)")
    p.add_argument("--serve-model", choices=("secureboost", "scorecard"), default="secureboost",
                   help="with --serve: which joint model to serve, SecureBoost's trees or the federated scorecard "
                   "(default %(default)s)")
    p.add_argument("--horizontal", action="store_true",
                   help="the horizontal demo instead: five lenders with the same features on different customers, "
                   "an aggregator, secure aggregation; pooled WOE/IV, a federated scorecard and boosted trees")
    p.add_argument("--trees", type=int, default=None, help="boosted trees (default 20; 10 with --horizontal)")
    p.add_argument("--depth", type=int, default=4, help="tree depth (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split (default %(default)s)")
    p.add_argument("--key-bits", type=int, default=2048, choices=[2048, 3072], help="HE key size (default %(default)s)")
    p.set_defaults(func=cmd_demo)


def _add_lending_commands(sub: Subparsers) -> None:
    """The ``misuan lending`` group: one subparser group, each lending command adds itself to it."""
    lending = sub.add_parser("lending", help="lending compliance: annualised rates, schedules, caps, marketing-copy checks")
    lsub = lending.add_subparsers(dest="lending_cmd", metavar="SUBCOMMAND", required=True)
    lending_commands.add_commands(lsub)  # rate, schedule, caps
    _add_lending_copy_command(lsub)


def _add_lending_copy_command(lsub: Subparsers) -> None:
    p = lsub.add_parser(
        "copy",
        help="check marketing copy for annualised-rate, zero-interest, approval, student and over-borrowing problems",
        description="Checks Chinese and English promotions and product pages against the rules in "
        "misuan/lending/rules/copy_rules.toml (PBoC [2021] No. 3, CBIRC risk alerts, Reg Z 12 CFR 1026.24, ...) "
        "and prints each finding with its rule, the exact text, why and the source.",
        epilog="Exit status: 0 when no finding at or above --fail-on; 10 when there is one (a violation); "
        "2 for bad arguments, terms or rule files; 3 for a file that is not UTF-8 text.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="text file(s) of copy; - reads stdin")
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format (default %(default)s)")
    p.add_argument("--terms", metavar="TERMS.toml", help="the product's terms: interest_rate, fees = { name = amount }")
    p.add_argument("--language", choices=["auto", "zh", "en"], default="auto", help="phrases of which language (default %(default)s)")
    p.add_argument("--rules", metavar="RULES.toml", help="a rule file in place of the packaged copy_rules.toml")
    p.add_argument("--ignore", action="append", default=[], metavar="RULE", help="leave out this rule id (repeatable)")
    p.add_argument("--fail-on", choices=["warning", "error"], default="warning",
                   help="lowest severity that fails the check (default %(default)s: any finding)")
    p.set_defaults(func=cmd_lending_copy)


def _error(message: str, hint: str) -> None:
    print(f"misuan: error: {message}\n  hint: {hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args: Any = parser.parse_args(argv)  # usage errors exit 2, like ConfigError
    if not args.debug:
        # gRPC's C core logs TLS handshake failures to stderr before misuan can say what they mean;
        # its env setting is read when grpc is first imported, which happens only inside commands
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        return int(args.func(args))
    except MisuanError as exc:
        if args.debug:
            traceback.print_exc()
        _error(str(exc), exc.help)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        _error("interrupted", "finished steps are kept; rerun with --resume to continue")
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: say so, in one line unless --debug
        if args.debug:
            traceback.print_exc()
        _error(f"internal error: {type(exc).__name__}: {exc}", EXIT_CODES[1])
        return 1
