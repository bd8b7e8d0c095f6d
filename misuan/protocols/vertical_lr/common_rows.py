"""The rows a training with several feature parties takes: the customers the bank shares with every one.

Each feature party's PSI with the bank (``reveal = "both"``) gives both of them the customers they
share, in an order they agreed on; the bank alone holds every such list (positions of its own rows).
With one feature party the training takes that PSI's rows as they are. With several, the bank
keeps the customers in every list, in the order of the first list's PSI (the lead's: the order
of its blinded IDs' digests, fresh each run; not the bank's own row order, which a partner must not
learn), and tells each feature party which of its PSI rows those are (:func:`send_common_rows`).

Leakage (``COMMON_ROWS``, recorded on both sides): each feature party learns which of the customers
it shares with the bank the other feature parties share with the bank too, and so how many they all
share, and (not the lead) the lead's PSI order of them; nothing about customers outside its own
intersection with the bank. The bank learns nothing it did not know from the PSIs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from misuan.errors import MalformedMessageError, NoOverlapError
from misuan.net.channel import Channel
from misuan.protocols.vertical_lr import disclosures as D
from misuan.protocols.vertical_lr.messages import STEP, CommonRows

__all__ = ["common_rows", "receive_common_rows", "send_common_rows"]


def common_rows(psi_rows: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """From the bank's rows of each PSI (its dataset positions, in that PSI's order): the rows in
    every one, in the first PSI's order, and for each PSI the positions of those rows in its order."""
    if not psi_rows:
        raise ValueError("no PSI rows to intersect")
    first = np.asarray(psi_rows[0], dtype=np.int64)
    in_all = np.ones(len(first), dtype=bool)
    for rows in psi_rows[1:]:
        in_all &= np.isin(first, rows)
    common = first[in_all]
    if len(common) == 0:
        raise NoOverlapError(
            "no customer is shared by the bank and every feature party of the training; check each party's IDs "
            "and the PSI steps' normalize option, or train with fewer feature parties"
        )
    positions = []
    for rows in psi_rows:
        order = np.argsort(rows, kind="stable")
        positions.append(order[np.searchsorted(rows, common, sorter=order)].astype(np.int64))
    return common, positions


def send_common_rows(chan: Channel, peer: str, positions: np.ndarray, *, step: str = STEP) -> None:
    """The bank tells feature party ``peer`` which of their PSI rows the training takes, in order."""
    chan.send(peer, f"{step}/common-rows", CommonRows(np.asarray(positions, dtype=np.int64)))
    chan.disclose(step, D.COMMON_ROWS, chan.party, peer, (len(positions),))


def receive_common_rows(chan: Channel, peer: str, n_psi_rows: int, *, step: str = STEP) -> np.ndarray:
    """A feature party's positions, into its ``n_psi_rows`` PSI rows with the bank ``peer``, of the
    rows the training takes: distinct and in range, or a MalformedMessageError."""
    msg = chan.recv(peer, f"{step}/common-rows", expect=CommonRows)
    pos = msg.positions
    ok = (isinstance(pos, np.ndarray) and pos.ndim == 1 and pos.dtype == np.int64 and 0 < len(pos) <= n_psi_rows
          and int(pos.min()) >= 0 and int(pos.max()) < n_psi_rows and len(np.unique(pos)) == len(pos))
    if not ok:
        raise MalformedMessageError(
            f"{peer} sent the common rows as something other than distinct positions among our {n_psi_rows} PSI rows"
        )
    chan.disclose(step, D.COMMON_ROWS, peer, chan.party, (len(pos),))
    return pos
