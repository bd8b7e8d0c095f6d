"""The server side of misuan's gRPC transport: one :class:`PartyServer` per party, jobs registered on it.

It answers the four calls of ``misuan.transport.v1.Transport`` (see :mod:`misuan.net.grpc_framing`):

- ``Ping(Hello)``: connection check at start; also proves the peer runs this job and accepts us.
- ``Deliver(frame)``: one message that fits in one frame (the common small case; one unary RPC).
- ``DeliverStream(frames)``: a larger message as a client stream of frames; the declared size is
  checked against the job's limit and one ``bytearray`` is filled as frames come.
- ``Watch(Hello)``: held open until the job closes here; its end tells the peer promptly that this
  party has closed (OK, the "bye") or died (the call fails with the connection).

Authentication: clients must present a certificate (``require_client_auth``) that chains to a CA
this server knows: its own ``tls.ca`` and the anchors of every job registered on it (the TLS layer's
roots change as jobs come and go: ``grpc.dynamic_ssl_server_credentials``). The sender's identity is
taken from that certificate (CN, see :func:`misuan.crypto.certs.party_from_certificate`); a job
registered with trust anchors then accepts the sender only when its chain ends at **that party's
own** anchors, is not revoked and matches its pins (:func:`misuan.crypto.trust.verify_party_chain`),
so one party's CA cannot vouch for another party. A sender whose messages claim another party's
name is refused (``PERMISSION_DENIED``).

A job this node holds back until its operator approves it answers a peer's ``Ping`` with
``FAILED_PRECONDITION`` and "awaiting approval" (the peer keeps waiting and says why); a job the
operator refused answers ``ABORTED`` with the reason. A message for a job this server does not run and one from a
sender that is not a party of the job are answered alike (``NOT_FOUND``, the same text), so a
certificate of the CA does not tell its holder which job ids are running.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from typing import Any, NoReturn

import grpc

from misuan.crypto.certs import TlsFiles, check_tls_files, party_from_certificate
from misuan.crypto.trust import TrustAnchors, verify_party_chain
from misuan.errors import AuthenticationError, ConfigError, MalformedMessageError, UnexpectedMessageError
from misuan.net import wire
from misuan.net.channel import Mailbox
from misuan.net.grpc_framing import MAX_FRAME_BYTES, SERVICE, FrameHeader, parse_first_frame, parse_hello

__all__ = ["AWAITING_APPROVAL", "REFUSED_BY_OPERATOR", "PartyServer"]

AWAITING_APPROVAL = "awaiting approval"  # in a Ping's refusal: the peer's operator has not approved the job yet
REFUSED_BY_OPERATOR = "refused by its operator"
_VERIFIED_TTL_S = 60.0  # how long one verified chain is trusted without verifying it again

log = logging.getLogger("misuan.net.grpc")

_SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
    ("grpc.max_send_message_length", 1 << 16),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # (the C macro is ..._MIN_RECV_PING_INTERVAL_..., the string is this): accept our clients' keepalive
    # pings every 20 s; gRPC's default of 5 min would count strikes and end idle jobs with GOAWAY
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    # without this a second server could bind the same port and silently share its traffic
    ("grpc.so_reuseport", 0),
]


@dataclasses.dataclass
class _Job:
    job_id: str
    parties: tuple[str, ...]
    mailbox: Mailbox
    max_message_bytes: int
    closed: threading.Event = dataclasses.field(default_factory=threading.Event)
    greeted: set[str] = dataclasses.field(default_factory=set)  # peers whose Ping reached us
    greeting: threading.Condition = dataclasses.field(default_factory=threading.Condition)
    anchors: Mapping[str, TrustAnchors] | None = None  # per party; None: the TLS layer's CA check only
    held: str | None = None  # not running: AWAITING_APPROVAL or the operator's refusal


class PartyServer:
    """One party's gRPC server: receives messages for the jobs registered on it.

    ``listen`` is ``host:port`` (port 0 picks a free port; read :attr:`port` after). A node keeps
    one server and registers each job's channel on it; :func:`open_grpc_channel` starts a private
    one when none is given.
    """

    def __init__(
        self, party: str, tls: TlsFiles, listen: str = "127.0.0.1:0", max_workers: int = 32, extra_roots: bytes = b""
    ) -> None:
        mat = check_tls_files(tls, party)
        self.party = party
        self.tls = tls
        self.rejected = 0  # messages refused as malformed, unauthorised or for unknown jobs
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Ping": grpc.unary_unary_rpc_method_handler(self._ping),
                "Status": grpc.unary_unary_rpc_method_handler(self._status),
                "Watch": grpc.unary_unary_rpc_method_handler(self._watch),
                "Deliver": grpc.unary_unary_rpc_method_handler(self._deliver),
                "DeliverStream": grpc.stream_unary_rpc_method_handler(self._deliver_stream),
            },
        )
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"misuan-{party}"),
            handlers=[handler],
            options=_SERVER_OPTIONS,
        )
        self._identity = [(mat.key, mat.cert)]
        # its own CA and the CAs of the peers its node knows ([peer.NAME]): their nodes can reach this
        # one before a job is registered here (they then hear "no such job" and retry, not a TLS failure)
        self._base_roots = mat.ca if mat.ca.endswith(b"\n") else mat.ca + b"\n"
        self._base_roots += extra_roots
        self._roots_served: bytes | None = None
        self._verified: dict[tuple[bytes, tuple[str, ...], tuple[str, ...]], float] = {}
        creds = grpc.dynamic_ssl_server_credentials(
            self._tls_config(), self._fetch_tls_config, require_client_authentication=True
        )
        try:
            self.port = self._server.add_secure_port(listen, creds)
        except RuntimeError as exc:
            raise ConfigError(f"{party} cannot listen on {listen}: {exc} (is the port in use?)") from exc
        if self.port == 0:
            raise ConfigError(f"{party} cannot listen on {listen}: the address is in use or invalid")
        host = listen.rsplit(":", 1)[0]
        self.address = f"{host}:{self.port}"
        self._server.start()

    # --- TLS roots: this node's CA and every registered job's anchors ---------------------------
    def _roots(self) -> bytes:
        with self._lock:
            extra = [a.pem for job in self._jobs.values() for a in (job.anchors or {}).values()]
        seen: list[bytes] = []
        for pem in [self._base_roots, *extra]:
            if pem not in seen:
                seen.append(pem)
        return b"".join(p if p.endswith(b"\n") else p + b"\n" for p in seen)

    def _tls_config(self) -> Any:
        self._roots_served = self._roots()
        return grpc.ssl_server_certificate_configuration(self._identity, root_certificates=self._roots_served)

    def _fetch_tls_config(self) -> Any:
        # called by gRPC before each new handshake: a new config only when the roots changed
        return self._tls_config() if self._roots() != self._roots_served else None

    # --- jobs ----------------------------------------------------------------------------------
    def register(
        self, job_id: str, parties: Sequence[str], mailbox: Mailbox | None, max_message_bytes: int,
        anchors: Mapping[str, TrustAnchors] | None = None, held: str | None = None,
    ) -> None:
        """Run ``job_id`` here (``held`` None), or tell its peers why it does not run yet (``held``)."""
        with self._lock:
            old = self._jobs.get(job_id)
            if old is not None and old.held is None:
                raise ConfigError(f"job {job_id!r} is already running on {self.party}'s server")
            self._jobs[job_id] = _Job(job_id, tuple(parties), mailbox if mailbox is not None else Mailbox(), max_message_bytes, anchors=anchors, held=held)

    def wait_for_greetings(self, job_id: str, peers: Sequence[str], deadline: float) -> list[str]:
        """Wait until each of ``peers`` has pinged this server for ``job_id``; return those that did not."""
        with self._lock:
            job = self._jobs[job_id]
        with job.greeting:
            job.greeting.wait_for(lambda: job.greeted >= set(peers), timeout=max(0.0, deadline - time.monotonic()))
            return [p for p in peers if p not in job.greeted]

    def unregister(self, job_id: str) -> None:
        """Forget ``job_id``: its watchers hear the bye, later messages for it are refused."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is not None:
            job.closed.set()

    def stop(self, grace_s: float = 1.0) -> None:
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job.closed.set()
        self._server.stop(grace_s).wait()

    # --- handlers --------------------------------------------------------------------------------
    def _refuse(self, context: grpc.ServicerContext, code: grpc.StatusCode, why: str, expected: bool = False) -> NoReturn:
        if expected:  # a peer that starts before us pings until we run the job: normal, not an attack
            log.debug("%s: %s from %s", self.party, why, context.peer())
        else:
            with self._lock:
                self.rejected += 1
            log.warning("%s refused a message from %s: %s", self.party, context.peer(), why)
        context.abort(code, why)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    def _identify(
        self, context: grpc.ServicerContext, job_id: str, claimed: str, starting: bool = False
    ) -> tuple[_Job, str]:
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            self._refuse(context, grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        try:
            sender = party_from_certificate(bytes(pems[0]))
        except AuthenticationError as exc:
            self._refuse(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if claimed != sender:
            self._refuse(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"the certificate is for {sender!r} but the message claims to come from {claimed!r}",
            )
        with self._lock:
            job = self._jobs.get(job_id)
        # A job this server does not run and a job the sender is no party of get the same answer:
        # otherwise any holder of a certificate of the CA could probe which job ids are running here.
        # (A party that starts before us pings until we run the job: that is normal, not an attack.)
        if job is None or sender not in job.parties or sender == self.party:
            self._refuse(
                context, grpc.StatusCode.NOT_FOUND, f"{self.party} runs no job {job_id!r} with {sender!r}",
                expected=starting and job is None,
            )
        if job.anchors is not None:
            self._check_chain(context, job.anchors[sender])
        return job, sender

    def _authorize(
        self, context: grpc.ServicerContext, job_id: str, claimed: str, starting: bool = False
    ) -> tuple[_Job, str]:
        """:meth:`_identify`, and refuse while the job is held here (awaiting approval, refused)."""
        job, sender = self._identify(context, job_id, claimed, starting)
        if job.held is not None:
            code = grpc.StatusCode.FAILED_PRECONDITION if job.held == AWAITING_APPROVAL else grpc.StatusCode.ABORTED
            self._refuse(context, code, f"{self.party}: job {job_id!r} is {job.held}", expected=True)
        return job, sender

    def _check_chain(self, context: grpc.ServicerContext, anchors: TrustAnchors) -> None:
        ctx = context.auth_context()
        # the leaf first, then whatever else of the verified chain gRPC reports (its order is not the leaf's)
        leaf = b"".join(bytes(c) for c in ctx.get("x509_pem_cert") or [])
        rest = b"".join(bytes(c) for c in ctx.get("x509_pem_cert_chain") or [])
        chain = leaf + rest.replace(leaf.strip(), b"")
        # keyed by the anchors' value (CAs, pins, deny list), never by object identity
        key = (chain, tuple(anchors.fingerprints), tuple(sorted(anchors.revoked)))
        now = time.monotonic()
        if self._verified.get(key, -1.0) > now:
            return
        try:
            verify_party_chain(chain, anchors)
        except AuthenticationError as exc:
            # the details (local file names, anchor subjects) go to this node's log, not to the peer
            log.warning("%s refused a certificate for %s: %s", self.party, anchors.party, exc)
            self._refuse(
                context, grpc.StatusCode.PERMISSION_DENIED,
                f"{self.party} does not accept this certificate for {anchors.party!r} (see {self.party}'s log)",
            )
        if len(self._verified) > 1024:
            self._verified.clear()
        self._verified[key] = now + _VERIFIED_TTL_S

    def _status(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """What a party of the job may know of it here, without greeting: running, held (and why), or not here."""
        try:
            hello = parse_hello(request)
        except MalformedMessageError as exc:
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        job, _ = self._identify(context, hello.job_id, hello.sender, starting=True)
        return b"running" if job.held is None else f"held:{job.held}".encode()

    def _ping(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            hello = parse_hello(request)
        except MalformedMessageError as exc:
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        job, sender = self._authorize(context, hello.job_id, hello.sender, starting=True)
        with job.greeting:
            job.greeted.add(sender)
            job.greeting.notify_all()
        return b""

    def _watch(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            hello = parse_hello(request)
        except MalformedMessageError as exc:
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        job, _ = self._authorize(context, hello.job_id, hello.sender)
        # hold the call until the job closes here (the bye) or the watcher goes away
        while not job.closed.wait(timeout=1.0):
            if not context.is_active():
                break
        return b"bye"

    def _start_message(self, context: grpc.ServicerContext, frame: bytes) -> tuple[_Job, str, FrameHeader, memoryview]:
        try:
            header, rest = parse_first_frame(frame)
        except MalformedMessageError as exc:
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, f"malformed message dropped: {exc}")
        job, sender = self._authorize(context, header.job_id, header.sender)
        if header.size > job.max_message_bytes:
            self._refuse(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"a message of {header.size} bytes exceeds this node's limit of {job.max_message_bytes} bytes",
            )
        if rest.nbytes > header.size:
            self._refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed message dropped: {rest.nbytes} payload bytes in the first frame, {header.size} declared",
            )
        self._check_declared_type(context, header, rest)
        return job, sender, header, rest

    def _check_declared_type(self, context: grpc.ServicerContext, header: FrameHeader, prefix: memoryview) -> None:
        """Refuse, from the first frame, a message whose type is unknown or smaller than its declared size.

        The payload's first bytes name its type; its size bound (:func:`wire.max_bytes`) is known
        before the rest of the stream is buffered (a 32 MiB "hello" is refused after its first frame).
        """
        try:
            name = wire.message_name(prefix)
        except MalformedMessageError as exc:
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, f"malformed message dropped: {exc}")
        if name is None:
            return
        if name not in wire.registered_messages():
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, f"malformed message dropped: unknown type {name!r}")
        bound = wire.max_bytes(name)
        if bound is not None and header.size > bound:
            self._refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed message dropped: a {name} of {header.size} bytes; that type is at most {bound} bytes",
            )

    def _put(self, context: grpc.ServicerContext, job: _Job, sender: str, header: FrameHeader, buf: bytearray) -> None:
        try:
            job.mailbox.put(sender, header.step, header.seq, buf)
        except UnexpectedMessageError as exc:
            self._refuse(context, grpc.StatusCode.ALREADY_EXISTS, str(exc))

    def _deliver(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        job, sender, header, rest = self._start_message(context, request)
        if rest.nbytes != header.size:
            self._refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed message dropped: {rest.nbytes} payload bytes, {header.size} declared",
            )
        self._put(context, job, sender, header, bytearray(rest))
        return b""

    def _deliver_stream(self, request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        first = next(request_iterator, None)
        if first is None:
            self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed message dropped: empty stream")
        job, sender, header, rest = self._start_message(context, first)
        # one buffer, grown as frames arrive rather than allocated at the declared size: memory
        # follows the bytes actually received (a peer cannot make us commit 8 GiB by claiming it),
        # and large buffers grow by mremap, without copying
        buf = bytearray(rest)
        for frame in request_iterator:
            if len(buf) + len(frame) > header.size:
                self._refuse(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"malformed message dropped: more than the {header.size} bytes declared",
                )
            buf += frame
        pos = len(buf)
        if pos != header.size:
            self._refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed message dropped: the stream ended after {pos} of {header.size} bytes",
            )
        self._put(context, job, sender, header, buf)
        return b""
