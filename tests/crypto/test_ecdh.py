from __future__ import annotations

import hashlib

import gmpy2
import numpy as np
import pytest

from misuan.crypto.ecdh import (
    POINT_BYTES,
    BlindingKey,
    SmallOrderPointError,
    find_invalid_point,
    find_noncanonical,
    hash_to_curve,
)

P = (1 << 255) - 19


def _points(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + POINT_BYTES], "little") for i in range(0, len(data), POINT_BYTES)]


def test_hash_to_curve_is_deterministic_and_lands_on_the_curve() -> None:
    msgs = [b"", b"a", "张三".encode(), b"x" * 1000]
    first = hash_to_curve(msgs)
    assert first == hash_to_curve(msgs) and len(first) == 4 * POINT_BYTES
    for u in _points(first):
        # independent check of the curve equation v^2 = u^3 + A u^2 + u with Euler's criterion
        rhs = (u**3 + 486662 * u**2 + u) % P
        assert u < P and rhs != 0 and pow(rhs, (P - 1) // 2, P) == 1
    assert len(set(_points(hash_to_curve([b"%d" % i for i in range(500)])))) == 500


def test_blinding_commutes_and_lands_in_the_prime_order_subgroup() -> None:
    a, b = BlindingKey(), BlindingKey()
    pts = hash_to_curve([b"%d" % i for i in range(50)])
    ab = a.blind(b.blind(pts))
    assert ab == b.blind(a.blind(pts))
    assert a.blind(pts) != b.blind(pts) and find_invalid_point(ab) == -1
    assert a.blind(pts, truncate=16) == b"".join(a.blind(pts)[i : i + 16] for i in range(0, len(pts), 32))
    # the same secret gives the same map (worker processes rebuild the key from its bytes)
    assert BlindingKey(a.secret_bytes()).blind(pts) == a.blind(pts)


def test_invalid_and_small_order_points() -> None:
    good = hash_to_curve([b"ok"])
    for bad in (P, P + 5, (1 << 255) + 9):
        assert find_invalid_point(good + bad.to_bytes(32, "little")) == 1
    twist = next(u for u in range(2, 50) if gmpy2.jacobi((u**3 + 486662 * u**2 + u) % P, P) == -1)
    assert find_invalid_point(twist.to_bytes(32, "little")) == 0
    with pytest.raises(SmallOrderPointError) as info:
        BlindingKey().blind(good + (1).to_bytes(32, "little"))
    assert info.value.index == 1
    with pytest.raises(ValueError):
        BlindingKey().blind(b"short")
    with pytest.raises(ValueError):
        BlindingKey(b"short")


def _reference_hash_to_curve(msg: bytes) -> tuple[int, int]:
    """The v2 definition written out plainly: BLAKE2b-512(ctr || msg) halves, the first on the curve.

    Returns the point and the ``ctr`` of the hash call that gave it.
    """
    for ctr in range(256):
        digest = hashlib.blake2b(bytes([ctr]) + msg, digest_size=64, person=b"misuan-psi-h2c1").digest()
        for half in (digest[:32], digest[32:]):
            u = int.from_bytes(half, "little") & ((1 << 255) - 1)
            rhs = (u**3 + 486662 * u**2 + u) % P
            if u < P and rhs and pow(rhs, (P - 1) // 2, P) == 1:
                return u, ctr
    raise AssertionError("unreachable")


def test_hash_to_curve_follows_its_written_definition() -> None:
    msgs = [b"%d" % i for i in range(300)] + ["张三".encode(), b""]
    reference = [_reference_hash_to_curve(m) for m in msgs]
    assert _points(hash_to_curve(msgs)) == [u for u, _ in reference]
    # about 1 in 4 messages needs a second hash call: the slow path is exercised
    assert any(ctr > 0 for _, ctr in reference)


@pytest.mark.parametrize(
    ("u", "canonical"),
    [(0, True), (P - 1, True), (P, False), (P + 18, False), ((1 << 255) - 1, False), ((1 << 255) + 9, False),
     ((1 << 256) - 1, False), ((1 << 192) * ((1 << 63) - 1), True), (P - (1 << 64), True)],
)
def test_find_noncanonical(u: int, canonical: bool) -> None:
    good = hash_to_curve([b"a", b"b"])
    data = good[:32] + u.to_bytes(32, "little") + good[32:]
    assert find_noncanonical(data) == (-1 if canonical else 1)
    assert find_noncanonical(b"") == -1


def test_find_invalid_point_on_a_sample() -> None:
    twist = next(u for u in range(2, 50) if gmpy2.jacobi((u**3 + 486662 * u**2 + u) % P, P) == -1)
    data = hash_to_curve([b"a", b"b", b"c"]) + twist.to_bytes(32, "little")
    assert find_invalid_point(data, np.array([0, 2])) == -1
    assert find_invalid_point(data, np.array([3, 1])) == 3
