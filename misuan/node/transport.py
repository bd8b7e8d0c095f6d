"""Opening a party's real channel for a job: gRPC with mutual TLS (:mod:`misuan.net.grpc_channel`).

Which TLS files a party uses, first found wins: an explicit ``--tls-dir`` (``ca.pem``,
``<party>.pem``, ``<party>.key`` as ``misuan certs init`` writes them), the node config's ``tls``,
the spec's ``[[party]] tls``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from misuan.crypto.certs import TlsFiles, load_pem_bundle, party_tls_files
from misuan.crypto.trust import TrustAnchors, load_anchors, read_deny_list
from misuan.errors import ConfigError
from misuan.net.channel import Channel
from misuan.net.disclosure import DisclosureRecorder
from misuan.net.grpc_channel import open_grpc_channel
from misuan.net.grpc_server import PartyServer
from misuan.node.runner import ChannelOpener
from misuan.node.spec import JobSpec, NodeConfig, check_tls_exist, parse_address

__all__ = ["grpc_opener", "resolve_tls", "resolve_trust"]


def resolve_tls(spec: JobSpec, party: str, node: NodeConfig | None = None, tls_dir: Path | None = None) -> TlsFiles:
    if tls_dir is not None:
        tls = party_tls_files(tls_dir, party)
        check_tls_exist(tls, f"--tls-dir {tls_dir}")
        return tls
    if node is not None:
        check_tls_exist(node.tls, f"{node.path}: tls")
        return node.tls
    own = spec.party(party).tls
    if own is None:
        raise ConfigError(
            f"no TLS files for {party}: add tls = {{ ca, cert, key }} to its [[party]] in the spec, "
            "or pass --config node.toml or --tls-dir DIR (made by `misuan certs init`)"
        )
    return own


def resolve_trust(spec: JobSpec, party: str, tls: TlsFiles, node: NodeConfig | None = None) -> dict[str, TrustAnchors]:
    """Every party's trust anchors as ``party`` sees them (itself included: the hello compares them).

    First found wins: the party's ``trust`` in the spec, the node's ``[peer.NAME]``, the own
    ``tls.ca``. The last is refused when that file holds CAs of more than one name: it would let
    any of them vouch for any party. The node's deny list applies to every party.
    """
    # a deny list the config names but nobody has written yet revokes nothing
    revoked = read_deny_list(node.revoked) if node is not None and node.revoked is not None and node.revoked.is_file() else frozenset()
    out: dict[str, TrustAnchors] = {}
    for p in spec.parties:
        named = p.trust or (node.peers.get(p.name) if node is not None else None)
        if named is not None:
            anchors = load_anchors(p.name, named.ca, named.pins, named.where, from_spec=p.trust is not None)
        else:
            anchors = _default_anchors(p.name, tls)
        out[p.name] = anchors.with_revoked(revoked)
    return out


def _default_anchors(party: str, tls: TlsFiles) -> TrustAnchors:
    try:
        cas = load_pem_bundle(tls.ca.read_bytes(), tls.ca)
    except OSError as exc:
        raise ConfigError(f"cannot read the CA file {tls.ca}: {exc.strerror}") from exc
    # one institution's PKI: one root (or the same root twice in a rollover) and intermediates under it
    subjects = {c.subject for c in cas}
    roots = sorted({c.subject.rfc4514_string() for c in cas if c.issuer == c.subject or c.issuer not in subjects})
    if len(roots) > 1:
        raise ConfigError(
            f"{tls.ca} holds {len(roots)} CAs ({'; '.join(roots)}) and the spec names no trust anchor for "
            f"{party!r}: name each party's own CA with trust = {{ ca = ... }} in its [[party]] (or [peer.{party}] "
            "in node.toml), so one institution's CA cannot vouch for another's party"
        )
    return load_anchors(party, [tls.ca], source=f"{tls.ca} (this node's tls.ca)")


def grpc_opener(
    spec: JobSpec,
    party: str,
    tls: TlsFiles,
    *,
    addresses: Mapping[str, str] | None = None,
    listen: str | None = None,
    server: PartyServer | None = None,
    connect_timeout_s: float = 60.0,
    anchors: Mapping[str, TrustAnchors] | None = None,
    on_wait: Callable[[str], None] | None = None,
    wait_for_approval: bool = True,
) -> ChannelOpener:
    """A :data:`ChannelOpener` for ``party`` over gRPC+mTLS.

    ``addresses`` overrides the spec's ``host:port`` of some parties (e.g. ``--address`` on the
    command line); ``listen`` is where this party's server binds (default: its own address).
    """
    book = {p.name: p.address for p in spec.parties}
    for name, addr in (addresses or {}).items():
        spec.party(name)
        parse_address(addr, f"--address {name}", ConfigError)
        book[name] = addr

    def open_channel(recorder: DisclosureRecorder) -> Channel:
        return open_grpc_channel(
            party,
            book,
            spec.job_id,
            tls,
            recorder=recorder,
            timeout_s=spec.timeout_s,
            connect_timeout_s=connect_timeout_s,
            server=server,
            listen=listen,
            anchors=anchors,
            on_wait=on_wait,
            wait_for_approval=wait_for_approval,
        )

    return open_channel
