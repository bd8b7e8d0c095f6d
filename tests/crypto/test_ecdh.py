from __future__ import annotations

import gmpy2
import pytest

from misuan.crypto.ecdh import (
    POINT_BYTES,
    BlindingKey,
    SmallOrderPointError,
    find_invalid_point,
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
