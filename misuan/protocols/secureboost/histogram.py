"""Encrypted per-bin histograms: the feature party's kernel (in worker processes) and the label party's reading.

A worker holds, for one training job, the feature party's binned features (uint8, ``n x F``) and,
for the current tree, the label party's ciphertexts of its *shard* of the tree's rows (each worker
a contiguous share, so the ciphertexts are held once across the workers, not once per worker). A
task is (rows of one node, a group of features); a worker returns, for each feature of the group,
the per-bin ciphertext sums over the node's rows in its shard, packed several bins per ciphertext
and re-randomised, as fixed-width bytes. :func:`node_histograms` runs a level's tasks on every
worker, multiplies the workers' packed ciphertexts (packing is linear: the product packs the
sums over all rows) and lays the reply out in (node, feature) order; the label party's
:class:`HistogramDecoder` decrypts and unpacks it into per-bin gradient and hessian sums.

Cost. Summing ``m`` row ciphertexts into the bins of one feature costs ``m`` modular
multiplications, so ``F`` features cost ``m * F``. For a *group* of ``k`` features we first sum the
rows into the cells of their joint histogram (``m`` multiplications) and then marginalise each
feature from the ``u <= min(m, B^k)`` non-empty cells (``k * u``): ``(m + k u) / k`` per feature,
about half of ``m`` at the root with ``k = 2`` and 33 bins. :func:`plan_groups` picks ``k`` per node
from the expected number of non-empty cells. The result is the same sums, added in another order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from gmpy2 import mpz

from misuan.crypto.encoding import FixedPointCodec
from misuan.crypto.he import PublicKey, public_key_from_wire
from misuan.crypto.pool import WorkerPool, decrypt_batch
from misuan.errors import MalformedMessageError
from misuan.protocols.secureboost.binning import PartyBins
from misuan.protocols.secureboost.messages import HistogramReply, check_array

__all__ = ["HistogramDecoder", "HistogramWorker", "load_shards", "node_histograms", "packed_count", "plan_groups"]


def packed_count(n_bins: int, per_ct: int) -> int:
    """Ciphertexts carrying one feature's ``n_bins`` bin sums, ``per_ct`` per ciphertext."""
    return -(-n_bins // per_ct)


def _group_cost(m: int, bins: list[int]) -> float:
    cells = math.prod(bins)
    u = cells * (1.0 - math.exp(-m / cells)) if cells < 1e12 else float(m)
    return (m + len(bins) * min(u, m)) if len(bins) > 1 else float(m)


def plan_groups(m: int, features: list[int], n_bins: list[int], max_k: int = 4) -> list[list[int]]:
    """Split ``features`` into groups of the size ``k`` that minimises the expected cost per feature."""
    if not features:
        return []
    typical = [n_bins[f] for f in features]
    avg = float(np.exp(np.mean(np.log(typical))))
    best_k, best = 1, float(m)
    for k in range(2, min(max_k, len(features)) + 1):
        per_feature = _group_cost(m, [int(round(avg))] * k) / k
        if per_feature < best * 0.95:  # only group when it clearly pays
            best_k, best = k, per_feature
    return [features[i : i + best_k] for i in range(0, len(features), best_k)]


class HistogramWorker:
    """Handler for :class:`misuan.crypto.pool.WorkerPool` (one per feature-party process)."""

    def __init__(self, key_wire: dict[str, Any], bins: bytes, shape: tuple[int, int], n_bins: list[int]) -> None:
        self.public: PublicKey = public_key_from_wire(key_wire)
        self.public.warm_up()
        self.bins = np.frombuffer(bins, dtype=np.uint8).reshape(int(shape[0]), int(shape[1]))
        self.n_bins = list(n_bins)
        self.cts: list[mpz] = []
        self.index = np.full(self.bins.shape[0], -1, dtype=np.int64)
        self.slot_bits = 0
        self.per_ct = 1

    def load(self, rows: np.ndarray, raw: bytes, slot_bits: int, per_ct: int) -> int:
        """Take this worker's shard of one tree's ciphertexts (row ``rows[i]`` has ciphertext ``i``);
        checks their range."""
        nb = self.public.ciphertext_bytes
        if len(raw) != nb * len(rows):
            raise MalformedMessageError(f"{len(raw)} bytes of ciphertexts for {len(rows)} rows")
        m = self.public.modulus
        cts = [mpz.from_bytes(raw[i : i + nb], "big") for i in range(0, len(raw), nb)]
        for j, c in enumerate(cts):
            if not 0 < c < m:
                raise MalformedMessageError(f"gradient ciphertext #{j} is outside (0, modulus)")
        self.cts = cts
        self.index = np.full(self.bins.shape[0], -1, dtype=np.int64)
        self.index[rows] = np.arange(len(rows))
        self.slot_bits, self.per_ct = slot_bits, per_ct
        return len(cts)

    def histograms(self, tasks: list[tuple[np.ndarray, list[int]]]) -> list[bytes]:
        """:meth:`histogram` of every task (node rows, features), over this worker's shard."""
        return [self.histogram(rows, features) for rows, features in tasks]

    def histogram(self, rows: np.ndarray, features: list[int]) -> bytes:
        """Packed, re-randomised bin sums of ``features`` over those of ``rows`` in this worker's shard
        (features in order); the caller checked that every row has a ciphertext in some shard."""
        pos = self.index[rows]
        mine = pos >= 0
        rows, pos = rows[mine], pos[mine]
        cts = self.cts
        node_cts = [cts[i] for i in pos.tolist()]
        sums_per_feature = self._bin_sums(node_cts, rows, features)
        pub = self.public
        nb = pub.ciphertext_bytes
        width = 2 * self.slot_bits  # one (gradient, hessian) pair per bin
        out: list[bytes] = []
        for sums in sums_per_feature:
            for i in range(0, len(sums), self.per_ct):
                chunk = sums[i : i + self.per_ct]
                packed = pub.pack(chunk, width) if len(chunk) > 1 else chunk[0]
                out.append(pub.rerandomize(packed).to_bytes(nb, "big"))
        return b"".join(out)

    def _bin_sums(self, node_cts: list[mpz], rows: np.ndarray, features: list[int]) -> list[list[mpz]]:
        pub = self.public
        if len(features) == 1:
            f = features[0]
            return [pub.bin_sums(node_cts, self.bins[rows, f], self.n_bins[f])]
        # joint cells of the group, then one marginal per feature
        cell = np.zeros(len(rows), dtype=np.int64)
        for f in features:
            cell = cell * self.n_bins[f] + self.bins[rows, f]
        uniq, inverse = np.unique(cell, return_inverse=True)
        cell_sums = pub.bin_sums(node_cts, inverse.reshape(-1), len(uniq))
        out: list[list[mpz]] = []
        stride = 1
        strides = []
        for f in reversed(features):
            strides.append(stride)
            stride *= self.n_bins[f]
        strides.reverse()
        for f, s in zip(features, strides, strict=True):
            fbins = (uniq // s) % self.n_bins[f]
            out.append(pub.bin_sums(cell_sums, fbins, self.n_bins[f]))
        return out


def load_shards(pool: WorkerPool, rows: np.ndarray, raw: bytes, ciphertext_bytes: int, slot_bits: int, per_ct: int) -> None:
    """Give each worker a contiguous shard of the tree's rows and their ciphertexts."""
    shards = np.array_split(np.arange(len(rows)), pool.workers)
    pool.scatter("load", [
        (rows[s], raw[int(s[0]) * ciphertext_bytes : (int(s[-1]) + 1) * ciphertext_bytes] if len(s) else b"", slot_bits,
         per_ct)
        for s in shards
    ])


def node_histograms(
    pool: WorkerPool, level_rows: list[np.ndarray], compute: list[int], features: list[int], n_bins: list[int],
    per_ct: int, public: PublicKey,
) -> np.ndarray:
    """The feature party's reply to a level: packed bin sums of ``features`` for each node in ``compute``.

    Every worker runs the level's tasks on its shard of the rows; the workers' packed ciphertexts
    are multiplied (the sums over all rows, packed the same way). The reply is laid out in (node,
    feature) order, whatever the grouping.
    """
    tasks = []
    for ci in compute:
        r = level_rows[ci]
        for grp in plan_groups(len(r), features, n_bins):
            tasks.append((r, grp))
    per_worker = pool.broadcast("histograms", tasks)
    nb, m = public.ciphertext_bytes, public.modulus
    by_task: dict[int, bytes] = {}
    for i in range(len(tasks)):
        blobs = [w[i] for w in per_worker]
        if len(blobs) == 1:
            by_task[i] = blobs[0]
            continue
        acc = [mpz.from_bytes(blobs[0][o : o + nb], "big") for o in range(0, len(blobs[0]), nb)]
        for blob in blobs[1:]:
            acc = [a * mpz.from_bytes(blob[o : o + nb], "big") % m for a, o in zip(acc, range(0, len(blob), nb), strict=True)]
        by_task[i] = b"".join(a.to_bytes(nb, "big") for a in acc)
    parts: dict[tuple[int, int], bytes] = {}
    ti = 0
    for ci in compute:
        for grp in plan_groups(len(level_rows[ci]), features, n_bins):
            blob, off = by_task[ti], 0
            for f in grp:
                size = packed_count(n_bins[f], per_ct) * nb
                parts[(ci, f)] = blob[off : off + size]
                off += size
            ti += 1
    body = b"".join(parts[(ci, f)] for ci in compute for f in features)
    return np.frombuffer(body, dtype=f"S{nb}")


@dataclasses.dataclass(frozen=True)
class HistogramDecoder:
    """The label party's reading of one tree's histogram replies: its key's workers and the tree's packing."""

    public: PublicKey
    pool: WorkerPool  # holds the private key
    codec: FixedPointCodec
    per_ct: int  # (gradient, hessian) pairs per ciphertext

    def prepare(self, peer: str, node_rows: list[np.ndarray]) -> None:
        """Nothing to do before the replies arrive (the OT decoder sums its pads here)."""

    def decode(self, reply: HistogramReply, fb: PartyBins, n_nodes: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per node: the flat per-bin gradient and hessian sums of ``fb``'s sampled features (zeros elsewhere)."""
        pub, per_ct = self.public, self.per_ct
        feats = [f for f in range(len(fb.n_bins)) if fb.mask[f]]
        per_node = sum(packed_count(fb.n_bins[f], per_ct) for f in feats)
        arr = check_array(reply.ciphertexts, "histogram ciphertexts", "S", (per_node * n_nodes,))
        if arr.dtype.itemsize != pub.ciphertext_bytes:
            raise MalformedMessageError(f"histogram ciphertexts must be S{pub.ciphertext_bytes}, got {arr.dtype}")
        pub.from_array(arr)  # range checks
        plain = decrypt_batch(self.pool, pub, np.ascontiguousarray(arr).view(np.uint8).tobytes())
        out = []
        pos = 0
        for _ in range(n_nodes):
            G = np.zeros(fb.width)
            H = np.zeros(fb.width)
            for f in feats:
                nb = fb.n_bins[f]
                graw, hraw = self._unpack(plain[pos : pos + packed_count(nb, per_ct)], nb)
                pos += packed_count(nb, per_ct)
                o = int(fb.offsets[f])
                G[o : o + nb] = self.codec.decode_sum(graw)
                H[o : o + nb] = self.codec.decode_sum(hraw)
            out.append((G, H))
        return out

    def _unpack(self, plain: list[int], n_bins: int) -> tuple[list[int], list[int]]:
        """The raw gradient and hessian slot sums of one feature's bins, from its packed plaintexts."""
        w, per_ct = self.codec.slot_bits, self.per_ct
        pair_mask, slot_mask = (1 << (2 * w)) - 1, (1 << w) - 1
        graw: list[int] = []
        hraw: list[int] = []
        for c, v in enumerate(plain):
            k = min(per_ct, n_bins - c * per_ct)
            if v.bit_length() > 2 * w * k:
                raise MalformedMessageError("a decrypted histogram ciphertext overflows its packing")
            pairs = []
            for _ in range(k):
                pairs.append(v & pair_mask)
                v >>= 2 * w
            for pr in reversed(pairs):
                graw.append(pr >> w)
                hraw.append(pr & slot_mask)
        return graw, hraw
