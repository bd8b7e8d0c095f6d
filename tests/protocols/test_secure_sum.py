from __future__ import annotations

import functools

import numpy as np
import pytest

from misuan.errors import MalformedMessageError
from misuan.net.local import run_local
from misuan.protocols.secure_sum import PartialSum, SecureSumParty, Share, secure_sum


@pytest.mark.parametrize("parties", [["bank", "partner"], ["bank", "telecom", "insurer"]])
def test_secure_sum_matches_plaintext_and_ledger_shows_disclosures(parties: list[str]) -> None:
    rng = np.random.default_rng(0)
    data = {p: rng.integers(-(10**12), 10**12, size=50) for p in parties}
    out = run_local({p: functools.partial(secure_sum, values=data[p]) for p in parties}, job_id="sum")
    expected = sum(data.values())
    for p in parties:
        np.testing.assert_array_equal(out[p].result, expected)
        entries = out[p].disclosures
        learned = [d for d in entries if d.recipient == p]
        # p learns one partial sum from each peer and the total
        assert sorted(d.discloser for d in learned if d.form == "aggregate") == sorted(set(parties) - {p})
        assert any(d.what == "sum of all parties' vectors" and d.shape == (50,) for d in learned)
        assert all(d.job_id == "sum" and p in (d.discloser, d.recipient) for d in entries)


def test_transcript_partner_receives_only_uniform_shares() -> None:
    """What the partner receives from the bank is uniformly random except the final partial sum."""
    x = np.full(2000, 7, dtype=np.int64)
    out = run_local(
        {"bank": lambda c: secure_sum(c, x), "partner": lambda c: secure_sum(c, np.zeros(2000, np.int64))},
        transcripts=True,
    )
    transcript = out["partner"].transcript or []
    steps = [(frm, step) for frm, step, _ in transcript]
    assert steps == [("bank", "secure_sum/share"), ("bank", "secure_sum/partial")]
    share = transcript[0][2].values
    assert share.dtype == np.uint64 and share.shape == (2000,)
    assert np.mean(share.view(np.int64) == 7) < 0.01 and len(np.unique(share)) > 1990
    # the high bit of a uniform u64 is set about half the time: the constant input does not show
    assert 0.45 < np.mean(share >> np.uint64(63)) < 0.55


def test_role_objects_wired_by_hand_sum_three_parties() -> None:
    """The role object alone, no channel: shares and partial sums handed over in a dict."""
    names = ("bank", "telecom", "insurer")
    rng = np.random.default_rng(3)
    data = {p: rng.integers(-(10**12), 10**12, size=20) for p in names}
    parties = {p: SecureSumParty(data[p], [q for q in names if q != p]) for p in names}
    shares = {p: parties[p].shares() for p in names}  # shares[sender][receiver]
    partials = {p: parties[p].partial_sum({q: shares[q][p] for q in names if q != p}) for p in names}
    for p in names:
        total = parties[p].total({q: partials[q] for q in names if q != p})
        assert total.dtype == np.int64
        np.testing.assert_array_equal(total, sum(data.values()))


@pytest.mark.parametrize(
    "values",
    [np.zeros(20, np.int64), np.zeros(19, np.uint64), np.zeros((20, 1), np.uint64), [0] * 20],
    ids=["int64", "short", "2-d", "list"],
)
def test_a_malformed_share_or_partial_is_refused_naming_the_sender(values: object) -> None:
    me = SecureSumParty(np.arange(20), ["bank", "partner"])
    good = Share(np.zeros(20, np.uint64))
    with pytest.raises(MalformedMessageError, match=r"^partner sent .*expected \(20,\) uint64"):
        me.partial_sum({"bank": good, "partner": Share(values)})  # type: ignore[arg-type]
    with pytest.raises(MalformedMessageError, match=r"^partner sent .*expected \(20,\) uint64"):
        me.total({"bank": PartialSum(good.values), "partner": PartialSum(values)})  # type: ignore[arg-type]
