from __future__ import annotations

import numpy as np
import pytest

from misuan.net.memory import MemoryNetwork
from misuan.protocols.secure_sum import secure_sum
from misuan.protocols.simulation import run_parties


@pytest.mark.parametrize("parties", [["bank", "partner"], ["bank", "telecom", "insurer"]])
def test_secure_sum_matches_plaintext_and_ledger_shows_disclosures(parties: list[str]) -> None:
    rng = np.random.default_rng(0)
    data = {p: rng.integers(-(10**12), 10**12, size=50) for p in parties}
    channels = MemoryNetwork(parties, job_id="sum").channels()
    out = run_parties(channels, {p: (lambda ch, p=p: secure_sum(ch, data[p])) for p in parties})
    expected = sum(data.values())
    for p in parties:
        np.testing.assert_array_equal(out[p], expected)
        entries = channels[p].recorder.entries  # type: ignore[attr-defined]
        learned = [d for d in entries if d.recipient == p]
        # p learns one partial sum from each peer and the total
        assert sorted(d.discloser for d in learned if d.form == "aggregate") == sorted(set(parties) - {p})
        assert any(d.what == "sum of all parties' vectors" and d.shape == (50,) for d in learned)
        assert all(d.job_id == "sum" and p in (d.discloser, d.recipient) for d in entries)


def test_transcript_partner_receives_only_uniform_shares() -> None:
    """What the partner receives from the bank is uniformly random except the final partial sum."""
    ch = MemoryNetwork(["bank", "partner"]).channels()
    ch["partner"].transcript = []
    x = np.full(2000, 7, dtype=np.int64)
    run_parties(ch, {"bank": lambda c: secure_sum(c, x), "partner": lambda c: secure_sum(c, np.zeros(2000, np.int64))})
    steps = [(frm, step) for frm, step, _ in ch["partner"].transcript]
    assert steps == [("bank", "secure_sum/share"), ("bank", "secure_sum/partial")]
    share = ch["partner"].transcript[0][2].values
    assert share.dtype == np.uint64 and share.shape == (2000,)
    assert np.mean(share.view(np.int64) == 7) < 0.01 and len(np.unique(share)) > 1990
    # the high bit of a uniform u64 is set about half the time: the constant input does not show
    assert 0.45 < np.mean(share >> np.uint64(63)) < 0.55
