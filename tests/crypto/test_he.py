from __future__ import annotations

import numpy as np
import pytest

from misuan.crypto.encoding import FixedPointCodec
from misuan.crypto.he import (
    PublicKey,
    generate_keypair,
    private_key_from_wire,
    public_key_from_wire,
)
from misuan.errors import CryptoError, EncodingOverflowError, MalformedMessageError

SCHEMES = ["ou", "paillier"]


@pytest.fixture(scope="module", params=SCHEMES)
def keys(request: pytest.FixtureRequest):  # 1024-bit keys keep the suite fast; 2048 is tested once below
    return generate_keypair(request.param, bits=1024)


def test_default_key_is_2048_bits_and_roundtrips() -> None:
    pub, priv = generate_keypair()
    assert pub.scheme == "ou" and pub.bits >= 2048 and pub.random_bits == 224
    assert pub.plaintext_bits >= 680 and pub.ciphertext_bytes == (pub.bits + 7) // 8
    vals = [0, 1, 2**64 + 5, 2**pub.plaintext_bits - 1]
    assert priv.decrypt_ints(pub.encrypt_ints(vals)) == vals


def test_roundtrip_and_fresh_randomness(keys) -> None:
    pub, priv = keys
    rng = np.random.default_rng(1)
    vals = [int(v) for v in rng.integers(0, 2**62, size=40)] + [0, 2**pub.plaintext_bits - 1, 2**200 + 3]
    cts = pub.encrypt_ints(vals)
    assert priv.decrypt_ints(cts) == vals
    again = pub.encrypt_ints(vals)
    assert all(a != b for a, b in zip(cts, again, strict=True))  # same plaintext, different ciphertext
    re = pub.rerandomize(cts[0])
    assert re != cts[0] and priv.decrypt_ints([re]) == [vals[0]]


def test_signed_roundtrip(keys) -> None:
    pub, priv = keys
    vals = [-1, -(2**100), 5, 0, -(2 ** (pub.plaintext_bits - 1)) + 1]
    assert priv.decrypt_signed_ints(pub.encrypt_signed_ints(vals)) == vals


def test_homomorphic_add_and_shift(keys) -> None:
    pub, priv = keys
    a, b = pub.encrypt_ints([123456789, 987654321])
    assert priv.decrypt_ints([pub.add(a, b)]) == [123456789 + 987654321]
    assert priv.decrypt_ints([pub.mul_pow2(a, 70)]) == [123456789 << 70]
    packed = pub.pack(pub.encrypt_ints([3, 5, 7]), slot_bits=16)
    assert priv.decrypt_ints([packed]) == [(3 << 32) | (5 << 16) | 7]
    # signed sum through the plaintext group
    x, y = pub.encrypt_signed_ints([-50, 20])
    assert priv.decrypt_signed_ints([pub.add(x, y)]) == [-30]


def test_bin_sums_match_plaintext(keys) -> None:
    pub, priv = keys
    rng = np.random.default_rng(2)
    vals = rng.integers(0, 2**40, size=200)
    bins = rng.integers(0, 7, size=200)
    bins[bins == 3] = 4  # bin 3 empty
    sums = pub.bin_sums(pub.encrypt_ints(vals), bins, 9)
    expected = [int(vals[bins == b].sum()) for b in range(9)]
    assert priv.decrypt_ints(sums) == expected
    assert expected[3] == 0 and expected[8] == 0
    with pytest.raises(ValueError):
        pub.bin_sums(pub.encrypt_ints([1, 2]), np.array([0, 9]), 9)


def test_plaintext_out_of_range_refused(keys) -> None:
    pub, _ = keys
    with pytest.raises(CryptoError):
        pub.encrypt_ints([2**pub.plaintext_bits])
    with pytest.raises(CryptoError):
        pub.encrypt_ints([-1])


def test_wire_array_roundtrip_and_checks(keys) -> None:
    pub, priv = keys
    cts = pub.encrypt_ints([1, 2, 3, 256])
    cts.append(pub.add(cts[0], cts[1]))
    arr = pub.to_array(cts)
    assert arr.dtype == np.dtype(f"S{pub.ciphertext_bytes}") and arr.shape == (5,)
    assert pub.from_array(arr) == cts
    # a ciphertext whose last byte is 0 survives (numpy S strips trailing NULs on item access)
    c = next(c for c in (pub.encrypt_ints([9])[0] for _ in range(2000)) if c % 256 == 0)
    assert priv.decrypt_ints(pub.from_array(pub.to_array([c]))) == [9]
    with pytest.raises(MalformedMessageError):  # wrong itemsize
        pub.from_array(np.zeros(3, dtype=f"S{pub.ciphertext_bytes - 1}"))
    with pytest.raises(MalformedMessageError):  # wrong dtype
        pub.from_array(np.zeros(3, dtype=np.uint64))
    with pytest.raises(MalformedMessageError):  # zero is not a ciphertext
        pub.from_array(np.zeros(2, dtype=f"S{pub.ciphertext_bytes}"))
    too_big = np.frombuffer(b"\xff" * pub.ciphertext_bytes, dtype=f"S{pub.ciphertext_bytes}")
    with pytest.raises(MalformedMessageError):  # >= modulus
        pub.from_array(too_big)


def test_key_wire_roundtrip_and_validation(keys) -> None:
    pub, priv = keys
    pub2 = public_key_from_wire(pub.to_wire())
    assert isinstance(pub2, PublicKey) and pub2.to_wire() == pub.to_wire()
    assert priv.decrypt_ints(pub2.encrypt_ints([42])) == [42]
    priv2 = private_key_from_wire(priv.to_wire())
    assert priv2.decrypt_ints(pub.encrypt_ints([7])) == [7]
    w = pub.to_wire()
    for bad in (
        {**w, "n": 2**512 + 1},  # too small
        {**w, "n": int(w["n"]) + 1},  # even
        {**w, "plaintext_bits": 10**6},
        {**w, "random_bits": 8},
        {**w, "scheme": "rsa"},
        {**w, "extra": 1},
        {k: v for k, v in w.items() if k != "h"},
        {**w, "h": "x"},
    ):
        with pytest.raises(MalformedMessageError):
            public_key_from_wire(bad)
    broken = {**priv.to_wire(), "p": 7}
    with pytest.raises(CryptoError):
        private_key_from_wire(broken)
    with pytest.raises(CryptoError):
        generate_keypair("ou", bits=512)


def test_codec_sums_signed_values_through_he(keys) -> None:
    pub, priv = keys
    codec = FixedPointCodec(frac_bits=20, max_abs=1.0, max_terms=300)
    codec.check_fits(pub.plaintext_bits, slots=2)
    rng = np.random.default_rng(3)
    g = rng.uniform(-1, 1, size=300)
    h = rng.uniform(0, 0.25, size=300)
    packed = codec.pack([codec.encode(g), codec.encode(h)])
    cts = pub.encrypt_ints(packed)
    bins = rng.integers(0, 4, size=300)
    sums = priv.decrypt_ints(pub.bin_sums(cts, bins, 4))
    g_raw, h_raw = codec.unpack(sums, 2)
    tol = 300 * 2.0**-21
    np.testing.assert_allclose(codec.decode_sum(g_raw), [g[bins == b].sum() for b in range(4)], atol=tol)
    np.testing.assert_allclose(codec.decode_sum(h_raw), [h[bins == b].sum() for b in range(4)], atol=tol)


def test_codec_overflow_detection() -> None:
    codec = FixedPointCodec(frac_bits=16, max_abs=2.0, max_terms=10)
    np.testing.assert_allclose(codec.decode(codec.encode([-2.0, 1.5, 0.0])), [-2.0, 1.5, 0.0])
    with pytest.raises(EncodingOverflowError):
        codec.encode([2.5])
    with pytest.raises(EncodingOverflowError):
        codec.encode([float("nan")])
    # a raw sum no <= max_terms encodings can reach is detected
    with pytest.raises(EncodingOverflowError):
        codec.decode_sum([11 * (2**codec.value_bits - 1)])
    with pytest.raises(EncodingOverflowError):
        codec.check_fits(codec.slot_bits * 3 - 1, slots=3)
    worst = codec.encode([-2.0] * 10)
    assert codec.decode_sum([sum(worst)])[0] == pytest.approx(-20.0)
