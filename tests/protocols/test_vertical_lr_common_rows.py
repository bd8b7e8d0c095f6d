"""The rows a training with several feature parties takes (:mod:`misuan.protocols.vertical_lr.common_rows`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from misuan.errors import MalformedMessageError, NoOverlapError
from misuan.net.local import run_local
from misuan.protocols.vertical_lr import common_rows, receive_common_rows, send_common_rows
from misuan.protocols.vertical_lr.messages import CommonRows


def test_the_common_rows_are_the_bank_rows_in_every_psi_and_each_partner_gets_their_positions() -> None:
    rng = np.random.default_rng(1)
    psi_a = rng.permutation(1000)[:600]  # the bank's dataset positions, in each PSI's own order
    psi_b = rng.permutation(1000)[:500]
    psi_c = rng.permutation(1000)[:700]
    common, positions = common_rows([psi_a, psi_b, psi_c])
    want = [r for r in psi_a.tolist() if r in set(psi_b) & set(psi_c)]  # in the first PSI's order, not the bank's
    assert common.tolist() == want and common.dtype == np.int64 and want != sorted(want)
    for rows, pos in zip((psi_a, psi_b, psi_c), positions, strict=True):
        assert rows[pos].tolist() == want  # each partner's PSI rows at its positions: the same customers, in order


def test_no_customer_shared_by_all_is_a_clear_error() -> None:
    with pytest.raises(NoOverlapError, match="every feature party"):
        common_rows([np.array([1, 2, 3]), np.array([4, 5])])


def test_a_feature_party_takes_the_positions_and_both_record_them() -> None:
    pos = np.array([4, 0, 2], dtype=np.int64)
    out = run_local({"bank": lambda c: send_common_rows(c, "partner", pos),
                     "partner": lambda c: receive_common_rows(c, "bank", 5)})
    assert out["partner"].result.tolist() == [4, 0, 2]
    for party in ("bank", "partner"):
        (entry,) = out[party].disclosures
        assert (entry.discloser, entry.recipient, entry.shape) == ("bank", "partner", (3,))


@pytest.mark.parametrize("positions", [
    np.array([0, 0, 1], dtype=np.int64),  # a row twice
    np.array([0, 5], dtype=np.int64),  # past the partner's PSI rows
    np.array([-1, 2], dtype=np.int64),
    np.array([0.0, 1.0]),  # not integers
    np.zeros((2, 2), dtype=np.int64),
    np.zeros(0, dtype=np.int64),  # nothing to train on
])
def test_a_feature_party_refuses_positions_that_are_not_distinct_rows_of_its_psi(positions: np.ndarray) -> None:
    def forger(c: Any) -> None:
        c.send("partner", "vertical_lr/common-rows", CommonRows(positions))

    with pytest.raises(MalformedMessageError, match="distinct positions among our 5 PSI rows"):
        run_local({"bank": forger, "partner": lambda c: receive_common_rows(c, "bank", 5)})
