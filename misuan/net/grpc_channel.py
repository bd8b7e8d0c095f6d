"""The network transport: gRPC over mutual TLS, one server per party, no generated code.

This module is the client side (:class:`GrpcChannel`, :func:`open_grpc_channel`); the server is
:mod:`misuan.net.grpc_server`, the frame layout :mod:`misuan.net.grpc_framing`.

Service ``misuan.transport.v1.Transport`` (bytes in, bytes out; registered with
``grpc.method_handlers_generic_handler``):

- ``Ping(Hello)``: connection check at start; also proves the peer runs this job and accepts us.
- ``Deliver(frame)``: one message that fits in one frame (the common small case; one unary RPC).
- ``DeliverStream(frames)``: a larger message as a client stream of frames of ``frame_bytes``
  (1 MiB); the sender slices the buffers of :func:`wire.encode_parts` and never joins them, the
  receiver checks the declared size against its limit and fills one ``bytearray`` as frames come.
- ``Watch(Hello)``: held open by the server until the job closes there; its end tells the peer
  promptly that this party has closed (OK, the "bye") or died (the call fails with the connection).

The first frame of a message is ``b"MSN1" | u32 header length | FrameHeader | payload prefix``.

Authentication: both sides present certificates (``require_client_auth``). Given per-party trust
anchors (:class:`misuan.crypto.trust.TrustAnchors`), the link to peer ``P`` trusts only P's own
anchors as roots, so a certificate from another institution's CA cannot pass for ``P``; the server
side checks the same for the sender (:mod:`misuan.net.grpc_server`). Without anchors both use this
node's ``tls.ca``. The client checks that the server's certificate names the party it meant to reach
(``ssl_target_name_override`` = peer name, verified against the certificate's DNS names); where P's
anchors carry pins or this node revokes certificates, a stdlib TLS probe reads P's certificate
before the first message and checks it against them.

A peer whose operator has not approved the job yet answers "awaiting approval": the connect loop
keeps waiting (up to ``approval_timeout_s``) and says so through ``on_wait``; a refused job ends with
:class:`JobRefusedError` carrying the operator's reason.
"""

from __future__ import annotations

import dataclasses
import functools
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import grpc

from misuan.crypto.certs import TlsFiles, TlsMaterial, check_tls_files
from misuan.crypto.trust import TrustAnchors, check_leaf_policy
from misuan.errors import (
    AuthenticationError,
    ConfigError,
    JobRefusedError,
    MalformedMessageError,
    MisuanError,
    NetworkError,
    PeerAwaitingApprovalError,
    PeerDisconnectedError,
    PeerTimeoutError,
    PeerUnreachableError,
    UnexpectedMessageError,
)
from misuan.net import wire
from misuan.net.channel import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TIMEOUT_S, Channel, Mailbox
from misuan.net.disclosure import DisclosureRecorder
from misuan.net.grpc_framing import (
    FRAME_BYTES,
    MAX_FRAME_BYTES,
    MAX_HEADER_BYTES,
    SERVICE,
    FrameHeader,
    Hello,
    cut_into_frames,
    encode_first_frame_head,
)
from misuan.net.grpc_server import AWAITING_APPROVAL, PartyServer

__all__ = ["FRAME_BYTES", "GrpcChannel", "open_grpc_channel", "peer_job_states"]

DEFAULT_CONNECT_TIMEOUT_S = 30.0

_CLIENT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_FRAME_BYTES),
    ("grpc.max_receive_message_length", 1 << 16),  # replies are tiny
    # detect a dead peer on an idle connection within ~30 s even without traffic
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # reconnect quickly while a peer is starting
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
    # one connection per channel object: jobs in one process never share (or close) each other's
    ("grpc.use_local_subchannel_pool", 1),
]


@dataclasses.dataclass
class _PeerLink:
    name: str
    address: str
    channel: grpc.Channel
    ping: grpc.UnaryUnaryMultiCallable
    watch: grpc.UnaryUnaryMultiCallable
    deliver: grpc.UnaryUnaryMultiCallable
    deliver_stream: grpc.StreamUnaryMultiCallable
    watch_call: grpc.Future | None = None
    gone: str | None = None  # why the peer is no longer reachable, once it is not


def _identity(b: bytes) -> bytes:
    return b


def _open_link(name: str, address: str, creds: grpc.ChannelCredentials) -> _PeerLink:
    options = [*_CLIENT_OPTIONS, ("grpc.ssl_target_name_override", name), ("grpc.default_authority", name)]
    ch = grpc.secure_channel(address, creds, options=options)

    def method(kind: Callable[..., Any], m: str) -> Any:
        return kind(f"/{SERVICE}/{m}", request_serializer=_identity, response_deserializer=_identity)

    return _PeerLink(
        name=name,
        address=address,
        channel=ch,
        ping=method(ch.unary_unary, "Ping"),
        watch=method(ch.unary_unary, "Watch"),
        deliver=method(ch.unary_unary, "Deliver"),
        deliver_stream=method(ch.stream_unary, "DeliverStream"),
    )


class GrpcChannel(Channel):
    """One party's end of a job over gRPC with mutual TLS. Build it with :func:`open_grpc_channel`."""

    def __init__(
        self,
        party: str,
        parties: Mapping[str, str],
        job_id: str,
        tls: TlsFiles,
        *,
        recorder: DisclosureRecorder | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        server: PartyServer | None = None,
        listen: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        frame_bytes: int = FRAME_BYTES,
        anchors: Mapping[str, TrustAnchors] | None = None,
    ) -> None:
        super().__init__(party, list(parties), job_id, recorder, timeout_s)
        self.anchors = dict(anchors) if anchors is not None else None
        # what the job hello compares with every peer: the anchors the job spec names (each party's copy
        # must name the same); a node's own [peer.NAME] anchors are its local policy (e.g. a CA rollover)
        self.trust_view = {p: a.fingerprints for p, a in sorted((self.anchors or {}).items()) if a.from_spec}
        self.approval_timeout_s = 86400.0
        self.wait_for_approval = True  # False: a peer awaiting its operator's approval ends connect() at once
        self.on_wait: Callable[[str], None] = lambda msg: None
        if not 1024 <= frame_bytes <= MAX_FRAME_BYTES - MAX_HEADER_BYTES - 8:
            raise ConfigError(f"frame_bytes must be between 1 KiB and {MAX_FRAME_BYTES - MAX_HEADER_BYTES - 8}")
        self.tls: TlsMaterial = check_tls_files(tls, party)
        self.addresses = dict(parties)
        self.frame_bytes = frame_bytes
        self._box = Mailbox()
        self._closed = False
        self._own_server = server is None
        if server is None:
            server = PartyServer(party, tls, listen or parties[party])
        elif server.party != party:
            raise ConfigError(f"the server given belongs to {server.party!r}, not {party!r}")
        self.server = server
        try:
            self.server.register(job_id, self.parties, self._box, max_message_bytes, anchors=self.anchors)
        except BaseException:
            if self._own_server:
                server.stop(0)
            raise
        self._links = {p: _open_link(p, parties[p], self._credentials(p)) for p in self.peers}
        self._hello = wire.encode(Hello(job_id=job_id, sender=party))

    def _credentials(self, peer: str) -> grpc.ChannelCredentials:
        roots = self.anchors[peer].pem if self.anchors is not None else self.tls.ca
        return grpc.ssl_channel_credentials(roots, self.tls.key, self.tls.cert)

    # --- connection --------------------------------------------------------------------------------
    def connect(self, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
        """Two-way handshake with every peer (retrying with backoff), then watch each.

        Returns once this party has reached every peer *and* every peer has reached this party, so
        no party can send, finish and close before a slower peer has even connected to it.
        """
        deadline = time.monotonic() + connect_timeout_s
        for link in self._links.values():
            self._connect_peer(link, deadline, connect_timeout_s)
        missing = self.server.wait_for_greetings(self.job_id, self.peers, deadline)
        if missing:
            raise PeerUnreachableError(
                f"{', '.join(missing)} did not connect back to {self.party} at {self.server.address} within "
                f"{connect_timeout_s:.1f} s although {self.party} reached them: check that they can reach "
                "this node's address (firewall, advertised host:port)"
            )
        for link in self._links.values():
            link.watch_call = link.watch.future(self._hello)
            link.watch_call.add_done_callback(functools.partial(self._on_watch_done, link))

    def _connect_peer(self, link: _PeerLink, deadline: float, connect_timeout_s: float) -> None:
        delay = 0.05
        probed = False
        refusal: AuthenticationError | None = None
        waiting_since: float | None = None
        while True:
            left = deadline - time.monotonic()
            try:
                link.ping(self._hello, timeout=max(0.2, min(left, 5.0)))
                self._check_peer_certificate(link)
                return
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details() or ""
            if code == grpc.StatusCode.ABORTED:
                raise JobRefusedError(f"{link.name} did not run job {self.job_id!r}: {details}")
            if code == grpc.StatusCode.FAILED_PRECONDITION and AWAITING_APPROVAL in details:
                if not self.wait_for_approval:
                    raise PeerAwaitingApprovalError(f"{link.name} has not approved job {self.job_id!r} yet")
                # a person decides: wait for as long as the approval may take, not the connect timeout
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    self.on_wait(f"waiting for {link.name}'s approval of job {self.job_id!r} ({details})")
                    deadline = waiting_since + self.approval_timeout_s
                if time.monotonic() > deadline:
                    raise PeerTimeoutError(
                        f"{link.name} has not approved job {self.job_id!r} within {self.approval_timeout_s:.0f} s"
                    )
                time.sleep(min(delay, 1.0))
                delay = min(delay * 2, 1.0)
                continue
            if waiting_since is not None:  # approved: the peer is now starting the job
                waiting_since = None
                deadline = time.monotonic() + connect_timeout_s
            tls_error = self._tls_error(link, details)
            if tls_error is not None:
                raise tls_error
            if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                raise AuthenticationError(f"{link.name} at {link.address} refused this node: {details}")
            if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise self._rpc_error(link, "connecting", code, details)
            if "Socket closed" in details and not probed:
                # TLS 1.3: a server that rejects our certificate just closes the connection
                probed = True
                roots = self.anchors[link.name].pem if self.anchors is not None else self.tls.ca
                refusal = _probe_client_cert(link, self.tls, roots)
                if refusal is not None and self.anchors is None:
                    raise refusal
                # with per-party anchors the peer's node trusts our CA only once it holds the job
                # (its TLS roots follow its jobs): keep trying, and report the refusal at the deadline
            if time.monotonic() + delay > deadline:
                if refusal is not None:
                    raise refusal
                if code == grpc.StatusCode.NOT_FOUND:
                    raise PeerUnreachableError(
                        f"{link.name} at {link.address} is up but not running job {self.job_id!r} after "
                        f"{connect_timeout_s:.1f} s: start the job there with the same job id"
                    )
                raise PeerUnreachableError(
                    f"cannot reach {link.name} at {link.address} within {connect_timeout_s:.1f} s ({details}): "
                    "check the address and that its node is running"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _check_peer_certificate(self, link: _PeerLink) -> None:
        """Pins and the deny list: gRPC's client does not show the server's certificate, so read it here."""
        anchors = self.anchors[link.name] if self.anchors is not None else None
        if anchors is None or not (anchors.pins or anchors.revoked):
            return
        leaf = _server_certificate(link, self.tls, anchors)
        check_leaf_policy(leaf, anchors)  # the TLS handshake validated its path to these anchors already

    def _tls_error(self, link: _PeerLink, details: str) -> AuthenticationError | None:
        where = f"{link.name} at {link.address}"
        if "Hostname Verification" in details or "Peer name" in details or "server name" in details:
            return AuthenticationError(
                f"{where} presented a certificate that does not name {link.name!r}: the address points at "
                "another node, or its certificate was issued for another party"
            )
        if "CERTIFICATE_VERIFY_FAILED" in details or "certificate verify failed" in details:
            reason = details.split("CERTIFICATE_VERIFY_FAILED")[-1].strip(": ").removesuffix(": OK")
            trusted = (
                f"{link.name}'s trust anchors ({self.anchors[link.name].source or 'the spec'})"
                if self.anchors is not None else f"the CA in {self.tls.files.ca}"
            )
            return AuthenticationError(
                f"the certificate of {where} does not chain to {trusted} ({reason}): check which CA issued "
                f"{link.name}'s certificate and name that CA as {link.name}'s anchor"
            )
        if "andshake failed" in details:
            return AuthenticationError(f"TLS handshake with {where} failed: {details}")
        return None

    def _on_watch_done(self, link: _PeerLink, call: grpc.Future) -> None:
        if self._closed or call.cancelled():
            return
        exc = call.exception()
        if exc is None or (isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.NOT_FOUND):
            reason = "it closed its channel (its side of the job ended or failed)"
        else:
            code = exc.code().name if isinstance(exc, grpc.Call) else type(exc).__name__
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            reason = f"the connection to {link.address} was lost ({code}: {details})"
        link.gone = reason
        self._box.close_sender(link.name, reason)

    def identity(self) -> TlsMaterial:
        return self.tls

    # --- transport hooks -----------------------------------------------------------------------------
    def peer_anchors(self, peer: str) -> TrustAnchors | None:
        return self.anchors[peer] if self.anchors is not None else None

    def _mailbox(self) -> Mailbox:
        return self._box

    def _transmit(self, to: str, step: str, seq: int, parts: list[bytes | memoryview], size: int) -> None:
        head = encode_first_frame_head(FrameHeader(self.job_id, self.party, step, seq, size))
        single = len(head) + size <= self.frame_bytes
        frames: Iterable[bytes] = [b"".join([head, *parts])] if single else cut_into_frames(head, parts, self.frame_bytes)
        self._send_frames(to, step, frames, single)

    def _send_frames(self, to: str, step: str, frames: Iterable[bytes], single: bool) -> None:
        link = self._links[to]
        if self._closed:
            raise PeerDisconnectedError(f"this channel is closed; cannot send step {step!r} to {to}")
        if link.gone is not None:
            raise PeerDisconnectedError(f"{to} has disconnected ({link.gone}); cannot send step {step!r}")
        try:
            if single:
                (frame,) = frames
                link.deliver(frame, timeout=self.timeout_s)
            else:
                link.deliver_stream(iter(frames), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
            raise self._rpc_error(link, f"sending step {step!r}", code, details) from None

    def _rpc_error(self, link: _PeerLink, doing: str, code: grpc.StatusCode, details: str) -> MisuanError:
        where = f"{link.name} at {link.address}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return MalformedMessageError(f"{where} refused a message while {doing}: {details}")
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return MalformedMessageError(f"{where} refused a message while {doing}: {details}")
        if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            return AuthenticationError(f"{where} refused this node while {doing}: {details}")
        if code == grpc.StatusCode.ALREADY_EXISTS:
            return UnexpectedMessageError(f"{where} while {doing}: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return PeerTimeoutError(f"{where} did not take the message within {self.timeout_s:.0f} s while {doing}")
        if code == grpc.StatusCode.NOT_FOUND:
            return PeerDisconnectedError(f"{where} no longer runs job {self.job_id!r} ({doing}): {details}")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            tls_error = self._tls_error(link, details)
            if tls_error is not None:
                return tls_error
            return PeerDisconnectedError(f"lost the connection to {where} while {doing}: {details}")
        return NetworkError(f"{where} failed while {doing}: {code.name}: {details}")

    def close(self) -> None:
        """Say bye to every peer (their ``recv`` from us raises PeerDisconnectedError), free the connections."""
        if self._closed:
            return
        self._closed = True
        self.server.unregister(self.job_id)
        for link in self._links.values():
            if link.watch_call is not None:
                link.watch_call.cancel()
        for link in self._links.values():
            link.channel.close()
            self._box.close_sender(link.name, "this party's own channel was closed")
        self._box.close_receiver()
        if self._own_server:
            self.server.stop(grace_s=1.0)


def _probe_client_cert(link: _PeerLink, tls: TlsMaterial, roots: bytes) -> AuthenticationError | None:
    """Tell "the peer rejects our certificate" from "the peer is not up", with the stdlib TLS client.

    Under TLS 1.3 a server that refuses the client certificate closes the connection after the
    handshake, which gRPC reports only as "Socket closed".
    """
    host, _, port = link.address.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=roots.decode("ascii", "replace"))
    ctx.load_cert_chain(str(tls.files.cert), str(tls.files.key))
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0) as raw:
            with ctx.wrap_socket(raw, server_hostname=link.name) as conn:
                conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                if conn.recv(9):
                    return None  # the server answered: it accepts us
    except (OSError, ValueError):
        return None  # not a certificate problem we can see; the caller keeps retrying
    return AuthenticationError(
        f"{link.name} at {link.address} closed the connection after the TLS handshake: it does not accept "
        f"this node's certificate {tls.files.cert} (is it signed by the CA {link.name} trusts?)"
    )


def _server_certificate(link: _PeerLink, tls: TlsMaterial, anchors: TrustAnchors) -> bytes:
    """The PEM certificate ``link``'s server presents, read over a stdlib TLS connection checked against ``anchors``."""
    host, _, port = link.address.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=anchors.pem.decode("ascii"))
    ctx.load_cert_chain(str(tls.files.cert), str(tls.files.key))
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5.0) as raw:
            with ctx.wrap_socket(raw, server_hostname=link.name) as conn:
                der = conn.getpeercert(binary_form=True)
    except (OSError, ValueError) as exc:
        raise AuthenticationError(f"cannot read the certificate of {link.name} at {link.address}: {exc}") from exc
    if not der:
        raise AuthenticationError(f"{link.name} at {link.address} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der).encode("ascii")


def peer_job_states(
    party: str, parties: Mapping[str, str], job_id: str, tls: TlsFiles, anchors: Mapping[str, TrustAnchors] | None,
    timeout_s: float = 3.0,
) -> dict[str, str]:
    """Each peer's state of ``job_id`` without joining it: "running", "held:<why>" (awaiting approval,
    refused), "not running", or "unreachable: <why>". Authentication as for a channel."""
    mat = check_tls_files(tls, party)
    hello = wire.encode(Hello(job_id=job_id, sender=party))
    out = {}
    for peer, address in parties.items():
        if peer == party:
            continue
        roots = anchors[peer].pem if anchors is not None else mat.ca
        ch = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots, mat.key, mat.cert), options=[
            *_CLIENT_OPTIONS, ("grpc.ssl_target_name_override", peer), ("grpc.default_authority", peer)])
        status = ch.unary_unary(f"/{SERVICE}/Status", request_serializer=_identity, response_deserializer=_identity)
        try:
            out[peer] = bytes(status(hello, timeout=timeout_s)).decode("utf-8", "replace")
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if code == grpc.StatusCode.NOT_FOUND:
                out[peer] = "not running"
            elif code == grpc.StatusCode.PERMISSION_DENIED:
                raise AuthenticationError(f"{peer} at {address} refused this node: {details}") from None
            else:
                out[peer] = f"unreachable: {details or code.name}"
        finally:
            ch.close()
    return out


def open_grpc_channel(
    party: str,
    parties: Mapping[str, str],
    job_id: str,
    tls: TlsFiles,
    *,
    recorder: DisclosureRecorder | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    server: PartyServer | None = None,
    listen: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    anchors: Mapping[str, TrustAnchors] | None = None,
    on_wait: Callable[[str], None] | None = None,
    wait_for_approval: bool = True,
) -> GrpcChannel:
    """Open ``party``'s channel for ``job_id`` and wait until every peer is connected.

    ``parties`` maps every party of the job (this one included) to the ``host:port`` its server is
    reached at. This party's server listens on ``listen`` (default: its own entry) unless an
    already running ``server`` is given. ``tls`` is this party's CA, certificate and key. Peers
    that are not up yet are retried with backoff for ``connect_timeout_s``; then
    :class:`PeerUnreachableError`. ``timeout_s`` bounds each ``recv`` and each send.
    """
    chan = GrpcChannel(
        party, parties, job_id, tls, recorder=recorder, timeout_s=timeout_s, server=server, listen=listen,
        max_message_bytes=max_message_bytes, anchors=anchors,
    )
    if on_wait is not None:
        chan.on_wait = on_wait
    chan.wait_for_approval = wait_for_approval
    try:
        chan.connect(connect_timeout_s)
    except BaseException:
        chan.close()
        raise
    return chan
