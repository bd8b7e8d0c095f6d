"""Intel crypto_mb's X25519 against OpenSSL's, value for value, and the backend switch."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from misuan.crypto import x25519_multibuffer
from misuan.crypto.ecdh import BlindingKey, SmallOrderPointError, hash_to_curve

P = (1 << 255) - 19
# u-coordinates X25519 must handle like OpenSSL: small order (0, 1, the order-8 point), p - 1, and
# encodings that are not canonical (p, p + 1, the top bit set)
SPECIAL_U = [
    0,
    1,
    int.from_bytes(bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), "little"),
    P - 1,
    P,
    P + 1,
    (1 << 255) | 9,
    (1 << 256) - 1,
]

with pytest.MonkeyPatch.context() as env:  # whether crypto_mb works here, whatever MISUAN_X25519 says
    env.setenv(x25519_multibuffer.BACKEND_ENV, "auto")
    multibuffer = x25519_multibuffer.load()
needs_multibuffer = pytest.mark.skipif(
    multibuffer is None, reason=f"crypto_mb unavailable: {x25519_multibuffer.unavailable_reason()}"
)


def _openssl(scalar: bytes, u: bytes) -> bytes:
    try:
        return X25519PrivateKey.from_private_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(u))
    except ValueError:  # OpenSSL refuses an all-zero shared value (small-order input)
        return bytes(32)


@needs_multibuffer
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000])
def test_equals_openssl_for_random_and_special_points(n: int) -> None:
    assert multibuffer is not None
    rng = np.random.default_rng(n)
    scalar = rng.bytes(32)
    points = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    if n >= len(SPECIAL_U):
        points[: len(SPECIAL_U)] = [np.frombuffer(u.to_bytes(32, "little"), dtype=np.uint8) for u in SPECIAL_U]
    got = multibuffer.scalar_mult(scalar, points)
    assert got.shape == (n, 32)
    for i in range(n):
        assert got[i].tobytes() == _openssl(scalar, points[i].tobytes()), i


@needs_multibuffer
def test_inputs_crypto_mb_gets_wrong_are_computed_by_openssl() -> None:
    """crypto_mb alone is wrong on [p - 1393, p) and on values with one or two zero bits."""
    assert multibuffer is not None
    rng = np.random.default_rng(5)
    near_p = [P - int(k) for k in rng.integers(1, 1394, 40)]
    ones = (1 << 255) - 1
    bits, lows = rng.integers(8, 255, 40).tolist(), rng.integers(0, 64, 40).tolist()
    one_zero = [ones & ~(1 << b) - low for b, low in zip(bits, lows, strict=True)]
    values = [u for u in near_p + one_zero if u < P]
    points = np.array([np.frombuffer(u.to_bytes(32, "little"), dtype=np.uint8) for u in values])
    scalar = rng.bytes(32)
    got = multibuffer.scalar_mult(scalar, points)
    assert [got[i].tobytes() for i in range(len(values))] == [_openssl(scalar, u.to_bytes(32, "little")) for u in values]


@needs_multibuffer
def test_blinding_keys_give_the_same_values_on_both_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = bytes(range(32))
    points = hash_to_curve([b"id-%d" % i for i in range(77)])
    monkeypatch.setenv(x25519_multibuffer.BACKEND_ENV, "auto")
    fast = BlindingKey(secret)
    monkeypatch.setenv(x25519_multibuffer.BACKEND_ENV, "openssl")
    slow = BlindingKey(secret)
    assert (fast.backend, slow.backend) == ("crypto_mb", "openssl")
    assert fast.blind(points) == slow.blind(points)
    assert fast.blind(points, truncate=16) == slow.blind(points, truncate=16)
    small_order = points[:64] + (1).to_bytes(32, "little") + points[64:]
    for key in (fast, slow):
        with pytest.raises(SmallOrderPointError) as info:
            key.blind(small_order)
        assert info.value.index == 2


def test_the_backend_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(x25519_multibuffer.BACKEND_ENV, "openssl")
    assert x25519_multibuffer.load() is None
    assert x25519_multibuffer.unavailable_reason() == "MISUAN_X25519=openssl"
    assert BlindingKey().backend == "openssl"
    monkeypatch.setenv(x25519_multibuffer.BACKEND_ENV, "multibuffer")
    if multibuffer is None:
        with pytest.raises(RuntimeError, match="MISUAN_X25519=multibuffer but"):
            x25519_multibuffer.load()
    else:
        assert BlindingKey().backend == "crypto_mb"


def test_scalar_must_be_32_bytes() -> None:
    if multibuffer is None:
        pytest.skip("crypto_mb unavailable")
    with pytest.raises(ValueError, match="32 bytes"):
        multibuffer.scalar_mult(b"short", np.zeros((1, 32), dtype=np.uint8))


def test_a_missing_library_means_openssl_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(dist: str, name: str) -> None:
        raise FileNotFoundError(f"the {dist} package is not installed")

    monkeypatch.setenv(x25519_multibuffer.BACKEND_ENV, "auto")
    monkeypatch.setattr(x25519_multibuffer, "_find", missing)
    x25519_multibuffer._load_cached.cache_clear()
    try:
        if x25519_multibuffer.sys.platform.startswith("linux") and x25519_multibuffer.os.uname().machine == "x86_64":
            assert x25519_multibuffer.load() is None
            assert "is not installed" in (x25519_multibuffer.unavailable_reason() or "")
        key = BlindingKey()
        assert key.backend == "openssl"
        points = hash_to_curve([b"a", b"b"])
        assert BlindingKey(key.secret_bytes()).blind(points) == key.blind(points)
    finally:
        monkeypatch.undo()
        x25519_multibuffer._load_cached.cache_clear()
    if multibuffer is not None:  # loaded again, with no stale reason
        monkeypatch.setenv(x25519_multibuffer.BACKEND_ENV, "auto")
        assert x25519_multibuffer.load() is not None and x25519_multibuffer.unavailable_reason() is None
