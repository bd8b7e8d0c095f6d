"""``misuan node``: start a node, submit jobs to it, and decide on the jobs that await this party's consent.

    misuan node start --config node.toml
    misuan submit job.toml --config node.toml
    misuan node pending --config node.toml
    misuan node show JOB --config node.toml [--html preview.html]
    misuan node approve JOB --config node.toml [--standing] [--operator NAME]
    misuan node refuse JOB --config node.toml --reason "..."
    misuan node status --config node.toml
    misuan node health --config node.toml      # exit 0 when the node is up and its heartbeat is fresh
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, TypeAlias

from misuan.errors import ConfigError, NetworkError

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

__all__ = ["add_commands"]

_HEALTHY_HEARTBEAT_S = 30.0


def cmd_start(args: argparse.Namespace) -> int:
    from misuan.node.server import start

    return start(args.config, poll_s=args.poll)


def cmd_submit(args: argparse.Namespace) -> int:
    from misuan.node.server import submit
    from misuan.node.spec import load_node_config

    node = load_node_config(args.config)
    entry = submit(args.spec, node, resume=args.resume)
    print(f"submitted to {node.party}'s node: {entry}")
    if node.approval == "required":
        print("it runs once this node's operator approves it: misuan node pending / show / approve")
    return 0


def _pending(config: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((config.data_dir / "pending").glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"pending job file {path} is unreadable: {exc}") from exc
        out[path.stem] = doc
    return out


def _one(config: Any, job_id: str) -> dict[str, Any]:
    pending = _pending(config)
    if job_id not in pending:
        known = ", ".join(pending) or "none"
        raise ConfigError(
            f"no job {job_id!r} awaits {config.party}'s decision (awaiting: {known}): the node writes a job's preview "
            "at its next poll after the submission (is it running?); a job already decided is in inbox/done or "
            "inbox/failed, and a refused job is asked about again when it is submitted again"
        )
    return pending[job_id]


def cmd_pending(args: argparse.Namespace) -> int:
    from misuan.node.spec import load_node_config

    node = load_node_config(args.config)
    pending = _pending(node)
    if not pending:
        print(f"no job awaits {node.party}'s decision")
    for job_id, doc in pending.items():
        p = doc["preview"]
        peers = [x["name"] for x in p["parties"] if x["name"] != node.party]
        print(f"{job_id}  submitted {doc['submitted_at']}  with {', '.join(peers)}  steps: "
              f"{', '.join(s['name'] for s in p['steps'])}  ({len(p['disclosures'])} disclosures)")
    return 0


def _print_preview(p: dict[str, Any]) -> None:
    me = p["party"]
    print(f"job {p['job_id']} as {me}: spec hash {p['spec_hash'][:16]}..., template {p['template_hash'][:16]}...")
    for party in p["parties"]:
        anchors = "; ".join(f"{a['subject']} {a['fingerprint'][:23]}..." for a in party["trust"]) or "(no anchors)"
        print(f"  party {party['name']} ({party['role']}) at {party['address']}: trusted via {anchors}")
    for title, rows in (("sends", [d for d in p["disclosures"] if d["discloser"] == me]),
                        ("learns", [d for d in p["disclosures"] if d["recipient"] == me and d["discloser"] != me])):
        print(f"  {me} {title}:")
        for d in rows:
            other = d["recipient"] if title == "sends" else d["discloser"]
            cond = "" if d["when"] == "always" else f"  [when {d['when']}]"
            data = "  [if the data lead there]" if d["data_dependent"] else ""
            print(f"    {d['step']:<14} {d['what']} ({d['form']}) {'to' if title == 'sends' else 'from'} {other}{cond}{data}")


def cmd_show(args: argparse.Namespace) -> int:
    from misuan.atomic_files import write_atomic
    from misuan.node.spec import load_node_config
    from misuan.report.consent_page import render_consent_page

    node = load_node_config(args.config)
    doc = _one(node, args.job)
    _print_preview(doc["preview"])
    if args.html:
        write_atomic(Path(args.html), render_consent_page(doc["preview"], submitted_at=doc["submitted_at"]).encode("utf-8"))
        print(f"wrote {args.html}")
    return 0


def _decide(args: argparse.Namespace, decision: str) -> int:
    from misuan.node.consent import decide, preview_job
    from misuan.node.server import read_submission
    from misuan.node.spec import load_node_config
    from misuan.node.transport import resolve_trust

    node = load_node_config(args.config)
    doc = _one(node, args.job)
    spec = read_submission(node.inbox / doc["entry"]).spec()
    preview = preview_job(spec, node.party, resolve_trust(spec, node.party, node.tls, node))
    if preview.consent_hash != doc["preview"].get("consent_hash"):
        raise ConfigError(
            f"job {args.job} changed since its preview was made (its spec, the trust anchors or what it discloses): "
            f"look again with `misuan node show {args.job}` after the node's next poll"
        )
    d = decide(node, spec, preview, decision, reason=getattr(args, "reason", ""), operator=args.operator,  # type: ignore[arg-type]
               standing=getattr(args, "standing", False))
    scope = "every job of this template" if d.standing else f"job {d.job_id}"
    print(f"{decision} {scope} as {d.operator}; signed with {node.tls.key}; the node acts on it at its next poll")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "approved")


def cmd_refuse(args: argparse.Namespace) -> int:
    return _decide(args, "refused")


def _status(config: Any) -> dict[str, Any]:
    from misuan.node.server import STATUS_FILE

    path = config.data_dir / STATUS_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise NetworkError(f"{config.party}'s node has written no status in {path}: is it running? ({exc})") from exc


def _age_s(stamp: str) -> float:
    return (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(stamp)).total_seconds()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmd_status(args: argparse.Namespace) -> int:
    from misuan.node.spec import load_node_config

    node = load_node_config(args.config)
    st = _status(node)
    alive = _alive(int(st["pid"])) and st["state"] != "stopped"
    print(f"{node.party}: {st['state'] if alive else 'not running'} (pid {st['pid']}, listening on {st['listen']}, "
          f"up since {st['started_at']}, heartbeat {_age_s(st['heartbeat_at']):.0f} s ago, misuan {st['misuan_version']})")
    if st.get("running_job"):
        print(f"  running: {st['running_job']}")
    print(f"  awaiting approval: {', '.join(st.get('awaiting_approval') or []) or 'none'}")
    done = len(list((node.inbox / "done").glob("*.job.json")))
    failed = sorted((node.inbox / "failed").glob("*.error.txt"))
    print(f"  jobs done: {done}, failed: {len(failed)}")
    for f in failed[-3:]:
        print(f"    {f.name.removesuffix('.error.txt')}: {f.read_text(encoding='utf-8').strip()}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from misuan.node.spec import load_node_config

    node = load_node_config(args.config)
    st = _status(node)
    age = _age_s(st["heartbeat_at"])
    if st["state"] == "stopped" or not _alive(int(st["pid"])):
        raise NetworkError(f"{node.party}'s node is not running (last state {st['state']}, pid {st['pid']})")
    if st["state"] != "running" and age > args.max_age:
        raise NetworkError(f"{node.party}'s node has not polled for {age:.0f} s (more than {args.max_age:.0f} s)")
    print(f"ok: {node.party} {st['state']}, heartbeat {age:.0f} s ago")
    return 0


def add_commands(sub: Subparsers) -> None:
    node = sub.add_parser("node", help="run this institution's node; decide on the jobs that await its consent")
    nsub = node.add_subparsers(dest="node_cmd", metavar="SUBCOMMAND", required=True)
    p = nsub.add_parser("start", help="serve gRPC and run the approved jobs of <data_dir>/inbox (Ctrl-C stops)")
    p.add_argument("--config", required=True, help="node.toml (party, listen, data_dir, tls)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between inbox checks")
    p.set_defaults(func=cmd_start)
    p = nsub.add_parser("pending", help="list the jobs that await this node's decision")
    p.add_argument("--config", required=True, help="the node's node.toml")
    p.set_defaults(func=cmd_pending)
    p = nsub.add_parser("show", help="what a pending job will disclose: per step, what this party sends and learns")
    p.add_argument("job", help="the job id")
    p.add_argument("--config", required=True, help="the node's node.toml")
    p.add_argument("--html", metavar="FILE", help="also write the preview as an HTML page")
    p.set_defaults(func=cmd_show)
    p = nsub.add_parser("approve", help="approve a pending job (signed, recorded in the ledger)")
    p.add_argument("job", help="the job id")
    p.add_argument("--config", required=True, help="the node's node.toml")
    p.add_argument("--operator", help="who approves (default: the login name)")
    p.add_argument("--standing", action="store_true", help="approve the spec template: later jobs with the same parties, steps and parameters run without asking")
    p.set_defaults(func=cmd_approve)
    p = nsub.add_parser("refuse", help="refuse a pending job; its peers are told the reason")
    p.add_argument("job", help="the job id")
    p.add_argument("--config", required=True, help="the node's node.toml")
    p.add_argument("--reason", required=True, help="why (the peers' operators read it)")
    p.add_argument("--operator", help="who refuses (default: the login name)")
    p.set_defaults(func=cmd_refuse)
    p = nsub.add_parser("status", help="what the node is doing: running job, pending approvals, recent failures")
    p.add_argument("--config", required=True, help="the node's node.toml")
    p.set_defaults(func=cmd_status)
    p = nsub.add_parser("health", help="exit 0 when the node runs and has polled recently (for a health check)")
    p.add_argument("--config", required=True, help="the node's node.toml")
    p.add_argument("--max-age", type=float, default=_HEALTHY_HEARTBEAT_S, help="seconds since the last poll that still count as healthy")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("submit", help="hand a job spec to a running node")
    p.add_argument("spec", help="job spec (TOML)")
    p.add_argument("--config", required=True, help="the node's node.toml")
    p.add_argument("--resume", action="store_true", help="continue the job after its completed steps")
    p.set_defaults(func=cmd_submit)
