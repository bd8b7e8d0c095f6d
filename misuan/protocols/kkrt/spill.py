"""KKRT-PSI over IDs that need not fit in memory: buckets spilled to disk, run one by one, resumable per bucket.

:func:`kkrt_psi` holds every ID's digest (and, briefly, its 48-byte encoding) in memory.
:func:`kkrt_psi_spilled` instead takes the IDs as an iterable of chunks (already normalised, as
bytes), and:

1. **Resume**: each party sends a :class:`Resume` message, the token of the run it kept in its work
   directory (SHA-256 of both hellos' nonces; empty on a first run) and the buckets that run
   finished. Equal, non-empty tokens on both sides: both reuse their nonces, so their digests and
   buckets are the ones on disk, and the input is not read again. Anything else: a fresh run (the
   work directory is emptied first).
2. **Hello** as :func:`kkrt_psi` (set sizes, nonces, fixed parameters).
3. **Spill** (fresh runs): each chunk is encoded, digested (CBC-MAC under the key from both nonces,
   the digests of :func:`kkrt_psi`) and appended to one file per bucket (16-byte digest, then the
   row number), the bucket chosen by AES under another key from the nonces, as :func:`kkrt_psi`
   chooses it. The bucket files are renamed into place only once the last chunk is in.
4. **Buckets**: every bucket that either side has not finished, in order, as in :func:`kkrt_psi`:
   padded with dummies to the public cap, one KKRT run each; each bucket's shared rows (and their
   digests, which fix the final order) are written atomically and the bucket is marked done.
5. The shared rows, bucket after bucket, each bucket's by digest: the same rows as :func:`kkrt_psi`,
   and again the same customers in the same order on both sides (the order differs from
   :func:`kkrt_psi`'s, which sorts all shared digests at once: that would hold them all in memory).

Memory: one chunk of IDs (with its encodings and digests), then one bucket (about
``BUCKET_ITEMS`` digests and the OPRF's state): not the set. Disk: 24 bytes an ID.

Leakage: that of :func:`kkrt_psi` (set sizes, the cuckoo table's size and keys, the intersection to
the learning side), plus, on a resumed run, how many buckets the peer had finished (the token is a
hash of the two nonces both sides already sent). A bucket's sizes stay hidden: every bucket is
padded to the public cap. A killed run leaves its work directory: the digests there are keyed by
nonces that are stored beside them, so the directory is as sensitive as the IDs it was made from;
it is removed when the run completes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from misuan.atomic_files import write_atomic
from misuan.crypto.rows import take_rows
from misuan.errors import ConfigError, DataError, DuplicateIdError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols import kkrt
from misuan.protocols.kkrt.digests import DIGEST_BYTES, digest_order, digests_of, encode_ids
from misuan.protocols.kkrt.disclosures import RESUMED, SET_SIZE
from misuan.protocols.kkrt.messages import PROTOCOL, Hello, Resume
from misuan.protocols.kkrt.params import CODE_BITS, HASHES, MAX_ROWS, STAT_BITS, output_bytes

__all__ = ["kkrt_psi_spilled"]

_STATE = "state.json"
_SUBDIR = "kkrt-spill"
_RECORD = np.dtype([("digest", np.uint8, (DIGEST_BYTES,)), ("row", "<i8")])


@dataclasses.dataclass
class _State:
    token: str  # hex SHA-256 of the nonces (receiver's first): names the run
    nonce: str  # this party's hello nonce, hex
    peer_nonce: str
    n_rows: int
    peer_rows: int
    n_buckets: int
    spilled: bool = False
    done: list[int] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, workdir: Path) -> _State | None:
        try:
            return cls(**json.loads((workdir / _STATE).read_text()))
        except (OSError, ValueError, TypeError):
            return None  # none, or unreadable: a fresh run

    def save(self, workdir: Path) -> None:
        write_atomic(workdir / _STATE, json.dumps(dataclasses.asdict(self)).encode())


def _token(receiver_nonce: bytes, sender_nonce: bytes) -> str:
    return hashlib.sha256(b"misuan-kkrt-resume" + receiver_nonce + sender_nonce).hexdigest()


def kkrt_psi_spilled(
    chan: Channel, chunks: Callable[[], Iterable[Sequence[bytes]]], n_rows: int, peer: str, workdir: Path, *,
    reveal: str, normalization: str, step: str = "psi", on_bucket: Callable[[int], None] | None = None,
) -> kkrt.KkrtResult:
    """Run KKRT-PSI with ``peer`` on ``n_rows`` normalised IDs that ``chunks()`` yields in order (a
    callable, not called when a resumed run has them on disk already); see the module docstring.

    ``workdir/kkrt-spill`` holds this party's spill and progress (kept after a failure for a resume,
    removed after success; nothing else in ``workdir`` is touched). ``on_bucket(b)`` is called after bucket ``b`` is saved (progress; tests use it to
    stop a run part-way). Rows in the result number the IDs in the order ``chunks()`` gave them."""
    if reveal not in ("both", chan.party, peer):
        raise ConfigError(f"KKRT-PSI reveals to 'both', {chan.party!r} or {peer!r}, not {reveal!r}")
    if not 0 <= n_rows <= MAX_ROWS:
        raise ConfigError(f"KKRT-PSI takes at most {MAX_ROWS} IDs, not {n_rows}")
    t0 = time.perf_counter()
    workdir = workdir / _SUBDIR  # only this subdirectory is ever emptied or removed, whatever workdir is
    kept, theirs = _agree_resume(chan, peer, workdir, n_rows, step)
    resume = kept is not None
    if kept is not None:
        state = kept
    nonce = bytes.fromhex(state.nonce) if resume else os.urandom(16)
    hello = Hello(PROTOCOL.version, normalization, reveal, n_rows, CODE_BITS, HASHES, STAT_BITS,
                  np.frombuffer(nonce, dtype=np.uint8))
    chan.send(peer, f"{step}/hello", hello)
    chan.disclose(step, SET_SIZE, chan.party, peer, (), n=n_rows)
    their_hello = chan.recv(peer, f"{step}/hello", expect=Hello)
    kkrt.check_hello(hello, their_hello, peer)
    chan.disclose(step, SET_SIZE, peer, chan.party, (), n=their_hello.n_rows)
    receiver = kkrt.receiver_of(reveal, (chan.party, peer))
    peer_nonce = bytes(their_hello.nonce)
    pair = (nonce, peer_nonce) if receiver == chan.party else (peer_nonce, nonce)
    if resume and (peer_nonce.hex() != state.peer_nonce or their_hello.n_rows != state.peer_rows):
        raise MalformedMessageError(f"{peer} resumed a run with another nonce or set size than the one kept here")
    n_buckets = kkrt.buckets_for(max(n_rows, int(their_hello.n_rows)))
    if not resume:
        state = _State(_token(*pair), nonce.hex(), peer_nonce.hex(), n_rows, int(their_hello.n_rows), n_buckets)
        state.save(workdir)
    both = b"".join(pair)
    if not state.spilled:
        _spill(chunks(), n_rows, workdir, both, n_buckets)
        state.spilled = True
        state.save(workdir)
    timings: dict[str, float] = {"digests_and_hello": time.perf_counter() - t0}
    cap_me, cap_peer = kkrt.bucket_cap(n_rows, n_buckets), kkrt.bucket_cap(int(their_hello.n_rows), n_buckets)
    cap_r, cap_s = (cap_me, cap_peer) if receiver == chan.party else (cap_peer, cap_me)
    out_bytes = output_bytes(n_buckets * cap_r, n_buckets * cap_s)
    role = kkrt.bucket_as_receiver if receiver == chan.party else kkrt.bucket_as_sender
    skip = set(state.done) & set(theirs.done.tolist()) if resume else set()
    learns = reveal in ("both", chan.party)
    for b in range(n_buckets):
        if b in skip:
            continue
        records = np.fromfile(workdir / f"bucket-{b}.bin", dtype=_RECORD)
        _check_unique_digests(records["digest"])
        res = role(chan, peer, kkrt.padded(records["digest"], cap_me, n_buckets), cap_peer, reveal, step, timings, out_bytes)
        hit = records[res.local_rows[res.local_rows < len(records)]] if res.local_rows is not None else records[:0]
        hit = hit[digest_order(np.ascontiguousarray(hit["digest"]))]  # both sides: the bucket's shared IDs by digest
        write_atomic(workdir / f"shared-{b}.bin", hit["row"].astype("<i8").tobytes())
        state.done = sorted(set(state.done) | {b})
        state.save(workdir)
        if on_bucket is not None:
            on_bucket(b)
    if not learns:
        shutil.rmtree(workdir, ignore_errors=True)
        return kkrt.KkrtResult(None, None, int(their_hello.n_rows), timings)
    rows = np.concatenate([np.fromfile(workdir / f"shared-{b}.bin", dtype="<i8") for b in range(n_buckets)]).astype(np.int64)
    shutil.rmtree(workdir, ignore_errors=True)
    return kkrt.KkrtResult(rows, int(rows.size), int(their_hello.n_rows), timings)


def _agree_resume(chan: Channel, peer: str, workdir: Path, n_rows: int, step: str) -> tuple[_State | None, Resume]:
    """Exchange what each side kept; the kept state if both kept the same run, else None (and an
    emptied work directory). Also the peer's message (its finished buckets)."""
    workdir.mkdir(parents=True, exist_ok=True)
    kept = _State.load(workdir)
    if kept is not None and kept.n_rows != n_rows:
        kept = None  # another input: nothing to resume (and the peer hears no token)
    mine = Resume(np.frombuffer(bytes.fromhex(kept.token), np.uint8) if kept else np.zeros(0, np.uint8),
                  np.array(kept.done if kept else [], dtype=np.int32))
    chan.send(peer, f"{step}/resume", mine)
    theirs = _checked_resume(chan.recv(peer, f"{step}/resume", expect=Resume), peer)
    if kept is not None and bytes(theirs.token).hex() == kept.token:
        chan.disclose(step, RESUMED, chan.party, peer, (len(mine.done),))
        chan.disclose(step, RESUMED, peer, chan.party, (len(theirs.done),))
        return kept, theirs
    shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    return None, theirs


def _checked_resume(msg: Resume, peer: str) -> Resume:
    token, done = np.asarray(msg.token), np.asarray(msg.done)
    if token.dtype != np.uint8 or token.shape not in ((0,), (32,)) or done.dtype.kind not in "iu" or done.ndim != 1:
        raise MalformedMessageError(f"{peer}'s resume message must carry a 32-byte token (or none) and bucket numbers")
    return Resume(token, done.astype(np.int64))


def _spill(chunks: Iterable[Sequence[bytes]], n_rows: int, workdir: Path, both: bytes, n_buckets: int) -> None:
    """Digest and bucket every ID, appending ``(digest, row)`` records to one file per bucket."""
    digest_key, bucket_key = kkrt.session_keys(both)  # the digests and buckets of kkrt_psi
    files = [open(workdir / f"bucket-{b}.part", "wb") for b in range(n_buckets)]  # noqa: SIM115 (closed below)
    seen = 0
    try:
        for chunk in chunks:
            encoded = encode_ids(list(chunk))
            digests = digests_of(encoded, digest_key)
            del encoded
            records = np.empty(digests.shape[0], dtype=_RECORD)
            records["digest"] = digests
            records["row"] = np.arange(seen, seen + digests.shape[0])
            seen += digests.shape[0]
            if seen > n_rows:
                raise DataError(f"the IDs run past the {n_rows} announced")
            for f, rows in zip(files, kkrt.bucket_rows(digests, bucket_key, n_buckets), strict=True):
                records[rows].tofile(f)
    finally:
        for f in files:
            f.close()
    if seen != n_rows:
        raise DataError(f"{seen} IDs read, {n_rows} announced")
    for b in range(n_buckets):
        os.replace(workdir / f"bucket-{b}.part", workdir / f"bucket-{b}.bin")


def _check_unique_digests(digests: np.ndarray) -> None:
    """Equal IDs have equal digests, and land in the same bucket: refuse a bucket with a repeat."""
    if digests.shape[0] < 2:
        return
    order = digest_order(np.ascontiguousarray(digests))
    d = take_rows(np.ascontiguousarray(digests), order)
    if np.any(np.all(d[1:] == d[:-1], axis=1)):
        raise DuplicateIdError("an ID repeats after normalisation: deduplicate the ID column before PSI")
