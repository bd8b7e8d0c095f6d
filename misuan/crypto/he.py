"""Additively homomorphic encryption: Okamoto-Uchiyama (default) and Paillier, over GMP (gmpy2).

Only the scheme logic lives here; every big-number operation is a gmpy2 call (``powmod``, ``*``,
``%``, ``invert``, ``is_prime``). Randomness comes from :mod:`secrets`.

Schemes
-------
**Okamoto-Uchiyama (OU)**, in the variant of HEU/SecretFlow ("Accelerating Okamoto-Uchiyama's
public-key cryptosystem", Coron-Naccache-Paillier 1999): ``n = p^2 q`` with ``p``, ``q`` primes of
``k = bits/3`` bits, ``p - 1 = t*u`` where ``t`` is a prime of 224 bits (160 bits for 1024-bit keys,
256 for 3072+). Public: ``n``, ``G = g^u mod n``, ``H = g'^(n u) mod n``.
Encryption ``c = G^m * H^r mod n``; decryption ``m = L(c^t mod p^2) * L(g^(p-1) mod p^2)^-1 mod p``
with ``L(x) = (x - 1) / p``, so decrypting costs one 224-bit exponentiation modulo ``p^2``.
The plaintext group is ``Z_p``; values below ``2**plaintext_bits`` (``k - 2`` bits, below ``p/2``)
decrypt exactly. Ciphertexts are ``ceil(bits(n)/8)`` bytes (2048-bit keys: 257 bytes).
Semantic security rests on the p-subgroup assumption (Okamoto-Uchiyama 1998).

**Paillier**, with ``g = n + 1`` and the Damgard-Jurik-Nielsen randomiser: public ``h_s = (-x^2)^n
mod n^2``; ``c = (1 + m n) * h_s^r mod n^2``; CRT decryption. Plaintexts below ``2**(bits(n) - 2)``.
Security: decisional composite residuosity (DCR).

Short randomness (an assumption, stated)
----------------------------------------
Both schemes draw the exponent ``r`` of the public randomiser ``H`` (``h_s``) from
``[0, 2**random_bits)`` instead of from the full group order, as HEU and DJN do. We use
``random_bits = 2*kappa`` with kappa the key's security level: **224 bits for 2048-bit OU keys**
(kappa = 112, NIST's level for 2048-bit factoring moduli), 160 for 1024-bit test keys, 256 for 3072+;
Paillier uses ``bits(n)/2`` (DJN's choice). Assumption: ``H^r`` with such a short ``r`` is
computationally indistinguishable from ``H^r`` with ``r`` uniform modulo the order of ``H`` (the
short-exponent discrete-log assumption, Koshiba-Kurosawa 2004); the best generic attack on a
``2*kappa``-bit exponent (Pollard lambda / baby-step giant-step) costs ``2**kappa``. HEU uses 110
bits for 2048-bit OU, i.e. about kappa; we keep twice that margin.

Every call to :meth:`PublicKey.encrypt_ints` draws a fresh ``r`` per value, and
:meth:`PublicKey.rerandomize` multiplies by a fresh ``H^r``: a party that sends ciphertexts derived
from others' ciphertexts (e.g. bin sums) re-randomises them first so the key holder cannot link them
to the randomness it used.

Speed: ``G^m`` and ``H^r`` use fixed-base window tables (:class:`FixedBaseTable`): one modular
multiplication per non-zero window of the exponent instead of a square-and-multiply ladder.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from typing import Any, Literal

import gmpy2
import numpy as np
from gmpy2 import mpz

from misuan.errors import CryptoError, MalformedMessageError

__all__ = [
    "MAX_BITS",
    "MIN_BITS",
    "FixedBaseTable",
    "OkamotoUchiyamaPrivateKey",
    "OkamotoUchiyamaPublicKey",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "PrivateKey",
    "PublicKey",
    "generate_keypair",
    "public_key_from_wire",
]

Scheme = Literal["ou", "paillier"]
MIN_BITS = 1024  # below this nothing is accepted, not even in tests
MAX_BITS = 16384  # above this nothing is accepted: no spec asks for it, no peer may send it
_PRIME_ROUNDS = 40  # Miller-Rabin rounds: error probability below 2**-80
_TABLE_WINDOW = 8  # bits per window of the fixed-base tables: 256 entries per window


def _random_bits_for(bits: int) -> int:
    """Length of the short randomiser exponent for OU keys of ``bits`` bits (2 * security level)."""
    if bits >= 3072:
        return 256
    if bits >= 2048:
        return 224
    return 160


def _t_bits_for(bits: int) -> int:
    """Size of the prime ``t | p - 1`` of OU keys (HEU/NIST: 160, 224, 256 bits)."""
    if bits >= 3072:
        return 256
    if bits >= 2048:
        return 224
    return 160


def _rand_below_bits(nbits: int) -> mpz:
    return mpz(secrets.randbits(nbits))


def _random_prime(nbits: int) -> mpz:
    """A random prime of exactly ``nbits`` bits."""
    while True:
        cand = mpz(secrets.randbits(nbits)) | (mpz(1) << (nbits - 1)) | 1
        if gmpy2.is_prime(cand, _PRIME_ROUNDS):
            return cand


class FixedBaseTable:
    """Precomputed powers ``base^(d * 2^(w*i)) mod modulus`` for fast ``base^e``.

    ``pow(e)`` for ``0 <= e < 2**exp_bits`` costs one modular multiplication per non-zero ``w``-bit
    digit of ``e``. Exponents longer than the table fall back to ``gmpy2.powmod``.
    """

    def __init__(self, base: mpz, modulus: mpz, exp_bits: int, window: int = _TABLE_WINDOW) -> None:
        self.modulus = modulus
        self.window = window
        self.exp_bits = exp_bits
        self.base = base
        self._mask = (1 << window) - 1
        rows: list[list[mpz]] = []
        b = base % modulus
        for _ in range(math.ceil(exp_bits / window)):
            row = [mpz(1), b]
            for _ in range(2, 1 << window):
                row.append(row[-1] * b % modulus)
            rows.append(row)
            b = row[-1] * b % modulus  # base^(2^(w*(i+1)))
        self.rows = rows

    def pow(self, e: int) -> mpz:
        e = int(e)
        if e < 0 or e.bit_length() > self.exp_bits:
            return gmpy2.powmod(self.base, e, self.modulus)
        acc: mpz | None = None
        w, mask, m = self.window, self._mask, self.modulus
        for row in self.rows:
            d = e & mask
            if d:
                acc = row[d] if acc is None else acc * row[d] % m
            e >>= w
            if not e:
                break
        return mpz(1) if acc is None else acc


class PublicKey:
    """Common interface of the schemes' public keys (see the module docstring)."""

    scheme: str
    bits: int  # bit length of n
    ciphertext_bytes: int
    plaintext_bits: int  # non-negative plaintexts < 2**plaintext_bits decrypt exactly
    random_bits: int
    modulus: mpz  # ciphertexts are integers in (0, modulus)

    # --- encryption ------------------------------------------------------------------------------
    def encrypt_ints(self, values: Sequence[int] | np.ndarray) -> list[mpz]:
        """Encrypt non-negative integers below ``2**plaintext_bits``, fresh randomness for each."""
        ints = _as_ints(values)
        for v in ints:
            if v < 0 or v.bit_length() > self.plaintext_bits:
                raise CryptoError(
                    f"plaintext {v} is outside [0, 2**{self.plaintext_bits}); encode it with FixedPointCodec first"
                )
        return [self._encrypt_one(v) for v in ints]

    def encrypt_signed_ints(self, values: Sequence[int] | np.ndarray) -> list[mpz]:
        """Encrypt integers with ``|v| < 2**(plaintext_bits - 1)`` (negatives wrap modulo the plaintext
        group); decrypt with :meth:`PrivateKey.decrypt_signed_ints`."""
        ints = _as_ints(values)
        for v in ints:
            if abs(v).bit_length() > self.plaintext_bits - 1:
                raise CryptoError(f"signed plaintext {v} has more than {self.plaintext_bits - 1} bits")
        return [self._encrypt_one(v) for v in ints]

    def encrypt_zero(self) -> mpz:
        return self.noise()

    def add(self, a: mpz, b: mpz) -> mpz:
        """Ciphertext of the sum of the two plaintexts."""
        return a * b % self.modulus

    def rerandomize(self, c: mpz) -> mpz:
        """Same plaintext, fresh randomness: multiply by a new encryption of zero."""
        return c * self.noise() % self.modulus

    def rerandomize_many(self, cts: Sequence[mpz]) -> list[mpz]:
        m = self.modulus
        return [c * self.noise() % m for c in cts]

    def mul_pow2(self, c: mpz, k: int) -> mpz:
        """Ciphertext of ``plaintext * 2**k`` (k squarings); used to pack several sums in one plaintext."""
        return gmpy2.powmod(c, mpz(1) << k, self.modulus)

    def pack(self, cts: Sequence[mpz], slot_bits: int) -> mpz:
        """One ciphertext of ``sum_j plain_j * 2**(slot_bits * (len-1-j))`` (Horner); the caller
        guarantees every plaintext is below ``2**slot_bits`` and the total fits ``plaintext_bits``."""
        if not cts:
            raise ValueError("nothing to pack")
        if slot_bits * len(cts) > self.plaintext_bits:
            raise CryptoError(f"{len(cts)} slots of {slot_bits} bits exceed {self.plaintext_bits} plaintext bits")
        acc = cts[0]
        e = mpz(1) << slot_bits
        m = self.modulus
        for c in cts[1:]:
            acc = gmpy2.powmod(acc, e, m) * c % m
        return acc

    def bin_sums(self, cts: Sequence[mpz], bins: np.ndarray, n_bins: int) -> list[mpz]:
        """Homomorphic sum of ``cts[i]`` into bin ``bins[i]``; an empty bin gives ``1``, the trivial
        encryption of 0 (re-randomise before sending it anywhere)."""
        b = np.asarray(bins)
        if b.shape != (len(cts),) or b.dtype.kind not in "iu":
            raise ValueError(f"bins must be an integer array of shape ({len(cts)},), got {b.shape} {b.dtype}")
        if len(b) and (int(b.min()) < 0 or int(b.max()) >= n_bins):
            raise ValueError(f"bin indices must lie in [0, {n_bins})")
        acc: list[mpz | None] = [None] * n_bins
        m = self.modulus
        for c, i in zip(cts, b.tolist(), strict=True):
            a = acc[i]
            acc[i] = c if a is None else a * c % m
        one = mpz(1)
        return [one if a is None else a for a in acc]

    # --- wire ------------------------------------------------------------------------------------
    def to_array(self, cts: Sequence[mpz]) -> np.ndarray:
        """Fixed-width big-endian bytes, dtype ``S{ciphertext_bytes}``, for the wire."""
        nb = self.ciphertext_bytes
        buf = b"".join(mpz(c).to_bytes(nb, "big") for c in cts)
        return np.frombuffer(buf, dtype=f"S{nb}").copy() if cts else np.zeros(0, dtype=f"S{nb}")

    def from_array(self, arr: np.ndarray) -> list[mpz]:
        """Parse ciphertexts from the wire; checks dtype, item size, and ``0 < c < modulus``."""
        nb = self.ciphertext_bytes
        if not isinstance(arr, np.ndarray) or arr.dtype.kind != "S" or arr.dtype.itemsize != nb or arr.ndim != 1:
            got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise MalformedMessageError(f"ciphertext array must be 1-d S{nb}, got {got}")
        # read the raw buffer: numpy strips trailing NUL bytes from S items, which would corrupt values
        raw = np.ascontiguousarray(arr).view(np.uint8).tobytes()
        out = [mpz.from_bytes(raw[i : i + nb], "big") for i in range(0, len(raw), nb)]
        m = self.modulus
        for j, c in enumerate(out):
            if not 0 < c < m:
                raise MalformedMessageError(f"ciphertext #{j} is outside (0, modulus)")
        return out

    def to_wire(self) -> dict[str, int | str]:
        raise NotImplementedError

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> PublicKey:
        return public_key_from_wire(d)

    def fingerprint(self) -> str:
        """Short hex digest of the public key, for ledgers and logs."""
        import hashlib

        w = self.to_wire()
        h = hashlib.sha256(repr(sorted(w.items())).encode()).hexdigest()
        return h[:16]

    # --- scheme hooks ----------------------------------------------------------------------------
    def noise(self) -> mpz:
        """A fresh encryption of zero (``H^r``)."""
        raise NotImplementedError

    def _encrypt_one(self, v: int) -> mpz:
        raise NotImplementedError

    def warm_up(self, window: int = _TABLE_WINDOW) -> None:
        """Build the fixed-base tables now (otherwise on first use); a wider window trades memory
        (``ceil(random_bits/window) * 2**window`` ciphertexts) for fewer multiplications."""


class PrivateKey:
    public_key: PublicKey

    def decrypt_ints(self, cts: Sequence[mpz]) -> list[int]:
        """Plaintexts as non-negative integers (residues of the plaintext group)."""
        return [self._decrypt_one(mpz(c)) for c in cts]

    def decrypt_signed_ints(self, cts: Sequence[mpz]) -> list[int]:
        """Plaintexts as integers in ``(-plaintext_modulus/2, plaintext_modulus/2]``."""
        half, mod = self._plain_half(), self._plain_modulus()
        out = []
        for c in cts:
            v = self._decrypt_one(mpz(c))
            out.append(int(v - mod) if v > half else int(v))
        return out

    def to_wire(self) -> dict[str, int | str]:
        raise NotImplementedError

    def _decrypt_one(self, c: mpz) -> int:
        raise NotImplementedError

    def _plain_modulus(self) -> mpz:
        raise NotImplementedError

    def _plain_half(self) -> mpz:
        return self._plain_modulus() // 2


def _as_ints(values: Sequence[int] | np.ndarray) -> list[int]:
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iuO":
            raise CryptoError(f"plaintexts must be integers, got dtype {values.dtype}")
        return [int(v) for v in values.tolist()]
    return [int(v) for v in values]


# ================================================================================================
# Okamoto-Uchiyama
# ================================================================================================
class OkamotoUchiyamaPublicKey(PublicKey):
    scheme = "ou"

    def __init__(self, n: int, g: int, h: int, plaintext_bits: int, random_bits: int) -> None:
        self.n = mpz(n)
        self.g = mpz(g)  # the "capital G" of HEU: g^u mod n
        self.h = mpz(h)  # H = g'^(n u) mod n
        self.modulus = self.n
        self.bits = int(self.n.bit_length())
        self.ciphertext_bytes = (self.bits + 7) // 8
        self.plaintext_bits = int(plaintext_bits)
        self.random_bits = int(random_bits)
        self._g_table: FixedBaseTable | None = None
        self._g_inv_table: FixedBaseTable | None = None
        self._h_table: FixedBaseTable | None = None

    def warm_up(self, window: int = _TABLE_WINDOW) -> None:
        self._tables(window)

    def _tables(self, window: int = 0) -> tuple[FixedBaseTable, FixedBaseTable]:
        h_table, g_table = self._h_table, self._g_table
        if h_table is None or g_table is None or (window and h_table.window != window):
            w = window or _TABLE_WINDOW
            h_table = FixedBaseTable(self.h, self.n, self.random_bits, w)
            # plaintexts of SecureBoost/WOE are short (<= 128 bits); longer ones use powmod
            g_table = FixedBaseTable(self.g, self.n, 128, w)
            self._h_table, self._g_table = h_table, g_table
            self._g_inv_table = None  # built on the first negative plaintext
        return h_table, g_table

    def _g_inv(self) -> FixedBaseTable:
        if self._g_inv_table is None:
            w = self._tables()[1].window
            self._g_inv_table = FixedBaseTable(gmpy2.invert(self.g, self.n), self.n, 128, w)
        return self._g_inv_table

    def noise(self) -> mpz:
        return self._tables()[0].pow(secrets.randbits(self.random_bits))

    def _encrypt_one(self, v: int) -> mpz:
        h_table, g_table = self._tables()
        gm = g_table.pow(v) if v >= 0 else self._g_inv().pow(-v)
        return gm * h_table.pow(secrets.randbits(self.random_bits)) % self.n

    def to_wire(self) -> dict[str, int | str]:
        return {
            "scheme": "ou",
            "n": int(self.n),
            "g": int(self.g),
            "h": int(self.h),
            "plaintext_bits": self.plaintext_bits,
            "random_bits": self.random_bits,
        }


class OkamotoUchiyamaPrivateKey(PrivateKey):
    def __init__(self, public_key: OkamotoUchiyamaPublicKey, p: int, q: int, t: int) -> None:
        self.public_key: OkamotoUchiyamaPublicKey = public_key
        self.p, self.q, self.t = mpz(p), mpz(q), mpz(t)
        self.p2 = self.p * self.p
        if self.p2 * self.q != public_key.n or (self.p - 1) % self.t != 0:
            raise CryptoError("OU private key does not match its public key (p^2 q != n or t does not divide p-1)")
        lg = (gmpy2.powmod(public_key.g % self.p2, self.t, self.p2) - 1) // self.p
        if gmpy2.gcd(lg, self.p) != 1:
            raise CryptoError("OU key is degenerate: L(G^t mod p^2) is not invertible modulo p")
        self._lg_inv = gmpy2.invert(lg, self.p)

    def _decrypt_one(self, c: mpz) -> int:
        if not 0 < c < self.public_key.n:
            raise CryptoError("ciphertext is outside (0, n)")
        x = gmpy2.powmod(c % self.p2, self.t, self.p2)
        return int((x - 1) // self.p * self._lg_inv % self.p)

    def _plain_modulus(self) -> mpz:
        return self.p

    def to_wire(self) -> dict[str, int | str]:
        return {**self.public_key.to_wire(), "p": int(self.p), "q": int(self.q), "t": int(self.t)}


def _generate_ou(bits: int) -> tuple[OkamotoUchiyamaPublicKey, OkamotoUchiyamaPrivateKey]:
    k = (bits + 2) // 3 + 1  # p, q of k bits: n = p^2 q has at least 3k - 2 >= bits bits
    t_bits = _t_bits_for(bits)
    t = _random_prime(t_bits)
    while True:
        u = mpz(secrets.randbits(k - t_bits)) | (mpz(1) << (k - t_bits - 1))
        u += u & 1  # even, so that p = t u + 1 is odd
        p = t * u + 1
        if p.bit_length() == k and gmpy2.is_prime(p, _PRIME_ROUNDS):
            break
    while True:
        q = _random_prime(k)
        if q != p:
            break
    n = p * p * q
    p2 = p * p
    while True:
        g = mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(g, n) != 1:
            continue
        lg = (gmpy2.powmod(g % p2, p - 1, p2) - 1) // p
        if lg % p != 0:
            break
    while True:
        g2 = mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(g2, n) == 1:
            break
    big_g = gmpy2.powmod(g, u, n)
    big_h = gmpy2.powmod(g2, n * u, n)
    pub = OkamotoUchiyamaPublicKey(n, big_g, big_h, plaintext_bits=k - 2, random_bits=_random_bits_for(bits))
    return pub, OkamotoUchiyamaPrivateKey(pub, p, q, t)


# ================================================================================================
# Paillier
# ================================================================================================
class PaillierPublicKey(PublicKey):
    scheme = "paillier"

    def __init__(self, n: int, hs: int, plaintext_bits: int, random_bits: int) -> None:
        self.n = mpz(n)
        self.n2 = self.n * self.n
        self.hs = mpz(hs)
        self.modulus = self.n2
        self.bits = int(self.n.bit_length())
        self.ciphertext_bytes = (int(self.n2.bit_length()) + 7) // 8
        self.plaintext_bits = int(plaintext_bits)
        self.random_bits = int(random_bits)
        self._h_table: FixedBaseTable | None = None

    def warm_up(self, window: int = _TABLE_WINDOW) -> None:
        self._table(window)

    def _table(self, window: int = 0) -> FixedBaseTable:
        if self._h_table is None or (window and self._h_table.window != window):
            self._h_table = FixedBaseTable(self.hs, self.n2, self.random_bits, window or _TABLE_WINDOW)
        return self._h_table

    def noise(self) -> mpz:
        return self._table().pow(secrets.randbits(self.random_bits))

    def _encrypt_one(self, v: int) -> mpz:
        gm = (1 + (v % self.n) * self.n) % self.n2  # (1 + n)^m = 1 + m n mod n^2
        return gm * self.noise() % self.n2

    def to_wire(self) -> dict[str, int | str]:
        return {
            "scheme": "paillier",
            "n": int(self.n),
            "h": int(self.hs),
            "plaintext_bits": self.plaintext_bits,
            "random_bits": self.random_bits,
        }


class PaillierPrivateKey(PrivateKey):
    def __init__(self, public_key: PaillierPublicKey, p: int, q: int) -> None:
        self.public_key: PaillierPublicKey = public_key
        self.p, self.q = mpz(p), mpz(q)
        if self.p * self.q != public_key.n or self.p == self.q:
            raise CryptoError("Paillier private key does not match its public key (p q != n)")
        self.p2, self.q2 = self.p * self.p, self.q * self.q
        g = public_key.n + 1
        self._hp = gmpy2.invert((gmpy2.powmod(g, self.p - 1, self.p2) - 1) // self.p, self.p)
        self._hq = gmpy2.invert((gmpy2.powmod(g, self.q - 1, self.q2) - 1) // self.q, self.q)
        self._q_inv_p = gmpy2.invert(self.q, self.p)

    def _decrypt_one(self, c: mpz) -> int:
        if not 0 < c < self.public_key.n2:
            raise CryptoError("ciphertext is outside (0, n^2)")
        mp = (gmpy2.powmod(c % self.p2, self.p - 1, self.p2) - 1) // self.p * self._hp % self.p
        mq = (gmpy2.powmod(c % self.q2, self.q - 1, self.q2) - 1) // self.q * self._hq % self.q
        return int(mq + (mp - mq) * self._q_inv_p % self.p * self.q)  # CRT

    def _plain_modulus(self) -> mpz:
        return self.public_key.n

    def to_wire(self) -> dict[str, int | str]:
        return {**self.public_key.to_wire(), "p": int(self.p), "q": int(self.q)}


def _generate_paillier(bits: int) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    half = (bits + 1) // 2
    while True:
        p, q = _random_prime(half), _random_prime(half)
        n = p * q
        if p != q and n.bit_length() >= bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    n2 = n * n
    x = mpz(secrets.randbelow(int(n) - 2) + 2)
    hs = gmpy2.powmod((-x * x) % n, n, n2)
    pub = PaillierPublicKey(n, hs, plaintext_bits=int(n.bit_length()) - 2, random_bits=(int(n.bit_length()) + 1) // 2)
    return pub, PaillierPrivateKey(pub, p, q)


# ================================================================================================
def generate_keypair(scheme: Scheme = "ou", bits: int = 2048) -> tuple[PublicKey, PrivateKey]:
    """A fresh key pair. ``bits`` is the modulus size: 2048 (default) or more; 1024 only for tests."""
    if bits < MIN_BITS:
        raise CryptoError(f"key size {bits} is below the minimum of {MIN_BITS} bits")
    if scheme == "ou":
        return _generate_ou(bits)
    if scheme == "paillier":
        return _generate_paillier(bits)
    raise CryptoError(f"unknown HE scheme {scheme!r}: use 'ou' or 'paillier'")


def _wire_int(d: dict[str, Any], key: str) -> mpz:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise MalformedMessageError(f"public key field {key!r} must be a positive integer")
    return mpz(v)


def public_key_from_wire(d: dict[str, Any]) -> PublicKey:
    """Rebuild and validate a public key a peer sent (never trust its sizes)."""
    if not isinstance(d, dict):
        raise MalformedMessageError("public key must be a dict")
    scheme = d.get("scheme")
    n = _wire_int(d, "n")
    nbits = int(n.bit_length())
    if nbits < MIN_BITS or nbits > MAX_BITS or n % 2 == 0 or gmpy2.is_square(n):
        raise MalformedMessageError(f"public key modulus of {nbits} bits is not acceptable (need {MIN_BITS}-{MAX_BITS}, odd)")
    pbits = int(_wire_int(d, "plaintext_bits"))
    rbits = int(_wire_int(d, "random_bits"))
    if scheme == "ou":
        keys = {"scheme", "n", "g", "h", "plaintext_bits", "random_bits"}
        if set(d) != keys:
            raise MalformedMessageError(f"OU public key must have exactly the fields {sorted(keys)}")
        g, h = _wire_int(d, "g"), _wire_int(d, "h")
        if not (1 < g < n and 1 < h < n):
            raise MalformedMessageError("OU public key: g and h must lie in (1, n)")
        if pbits > nbits // 3 - 1 or rbits < 128 or rbits > nbits:
            raise MalformedMessageError("OU public key: plaintext_bits or random_bits out of range")
        return OkamotoUchiyamaPublicKey(n, g, h, pbits, rbits)
    if scheme == "paillier":
        keys = {"scheme", "n", "h", "plaintext_bits", "random_bits"}
        if set(d) != keys:
            raise MalformedMessageError(f"Paillier public key must have exactly the fields {sorted(keys)}")
        h = _wire_int(d, "h")
        if not 1 < h < n * n:
            raise MalformedMessageError("Paillier public key: h must lie in (1, n^2)")
        if pbits > nbits - 2 or rbits < 128 or rbits > 2 * nbits:
            raise MalformedMessageError("Paillier public key: plaintext_bits or random_bits out of range")
        return PaillierPublicKey(n, h, pbits, rbits)
    raise MalformedMessageError(f"unknown HE scheme {scheme!r} in public key")


def private_key_from_wire(d: dict[str, Any]) -> PrivateKey:
    """Rebuild a private key saved with ``to_wire`` (checks it matches its public part)."""
    if not isinstance(d, dict):
        raise CryptoError("private key must be a dict")
    pub_fields = {k: v for k, v in d.items() if k not in ("p", "q", "t")}
    try:
        pub = public_key_from_wire(pub_fields)
    except MalformedMessageError as exc:
        raise CryptoError(f"saved private key is invalid: {exc}") from exc
    for k in ("p", "q") + (("t",) if isinstance(pub, OkamotoUchiyamaPublicKey) else ()):
        if not isinstance(d.get(k), int) or d[k] <= 1:
            raise CryptoError(f"saved private key field {k!r} must be an integer > 1")
    if isinstance(pub, OkamotoUchiyamaPublicKey):
        return OkamotoUchiyamaPrivateKey(pub, d["p"], d["q"], d["t"])
    if isinstance(pub, PaillierPublicKey):
        return PaillierPrivateKey(pub, d["p"], d["q"])
    raise CryptoError(f"unsupported scheme {pub.scheme!r}")
