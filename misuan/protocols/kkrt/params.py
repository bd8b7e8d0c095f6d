"""KKRT-PSI's fixed parameters and the argument for each (they are not job parameters: both sides
must use exactly these, and the hello checks that they do).

- ``CODE_BITS = 512``: width of the pseudorandom code ``C(x)`` and the number of base OTs. KKRT16
  (Kolesnikov, Kumaresan, Rosulek, Trieu, CCS 2016, Table 2) needs 424-448 bits for 128-bit
  computational security with up to 2^24-2^32 items; 512 keeps a margin and whole AES blocks.
- ``HASHES = 3`` cuckoo hash functions, no stash, ``n_bins = e * n`` with
  ``e = (STAT_BITS + log2 n + 256) / 240``: the fit of the stash-less failure probability
  ``2^-(240 e - log2 n - 256)`` (Pinkas, Schneider, Weinert, Wieder, Eurocrypt 2018; the formula
  cryptoTools and SecretFlow use), so building the table fails with probability below 2^-40. A
  failure is noticed by the receiver alone and retried with new hash keys (``CUCKOO_TRIES``), so it
  never gives a wrong result and the sender never learns of it.
- ``STAT_BITS = 40``: the sender's OPRF outputs are truncated to ``ceil((40 + log2(3 n m)) / 8)``
  bytes (at least 8), so a false match among all ``3 n m`` comparisons has probability below 2^-40.
- ``BUCKET_ITEMS``: sets larger than this are split into ``ceil(max(n, m) / BUCKET_ITEMS)`` buckets
  by AES keyed with both parties' hello nonces, and the protocol runs bucket after bucket. Every
  bucket is padded with random dummy digests to a public size (``kkrt.bucket_cap``: a Chernoff
  bound, exceeded with probability below 2^-40), so bucket sizes reveal nothing beyond the set size;
  the output length and the false-match bound cover all buckets together.
- ``CHUNK_BINS``: the columns of the OT extension travel in chunks of this many bins (2 MiB each)
  and are consumed as they arrive. Part of the wire protocol: the sender refuses chunks that do not
  end on a multiple of it (or at the table's end), so changing it needs a new ``PROTOCOL`` version.
"""

from __future__ import annotations

import math

__all__ = ["CHUNK_BINS", "CODE_BITS", "CUCKOO_TRIES", "HASHES", "OUTPUT_CHUNK", "STAT_BITS", "n_bins_for", "output_bytes"]

CODE_BITS = 512
CODE_BYTES = CODE_BITS // 8
HASHES = 3
STAT_BITS = 40
CUCKOO_TRIES = 8
CHUNK_BINS = 1 << 15  # a multiple of 128, so a chunk's column bytes start on an AES block; 2 MiB of columns
OUTPUT_CHUNK = 1 << 17  # sender items per message of OPRF outputs
MAX_ROWS = 1 << 30
BUCKET_ITEMS = 1 << 20  # IDs per bucket (about): a party's memory follows the bucket, not the whole set


def n_bins_for(n: int) -> int:
    """Cuckoo table size for ``n`` receiver items: the stash-less bound, rounded up to 128 bins."""
    e = (STAT_BITS + math.log2(max(n, 2)) + 256) / 240
    bins = max(math.ceil(e * n), 128)
    return -(-bins // 128) * 128


def output_bytes(n_receiver: int, n_sender: int) -> int:
    """Bytes of each OPRF output the sender sends (false-match probability below 2^-STAT_BITS)."""
    comparisons = max(HASHES * max(n_receiver, 1) * max(n_sender, 1), 2)
    return max(8, math.ceil((STAT_BITS + math.log2(comparisons)) / 8))
