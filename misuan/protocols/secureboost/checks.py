"""What the label party can check for free in a feature party's replies (issue: cheap consistency checks).

The label party knows every row's gradient and hessian and the codec that encoded them, so it knows
exactly what the sums a feature party returns must add up to:

- a histogram: for every sampled feature, its bins add up to the node's gradient and hessian sums
  (as encoded: each row rounded to ``2**-frac_bits``; the sums are exact in the codec);
- a partition: the rows a feature party sends left add up to the left sums of the bins the label
  party chose (so "every row one way" cannot pass when the bins say otherwise);
- leaf sets: intersected with the label party's own, exactly one leaf remains per row and tree.

These checks catch a broken or careless peer and crude forgeries; they are not security against a
malicious feature party, which can still return sums consistent with other, forged bins.
"""

from __future__ import annotations

import numpy as np

from misuan.errors import InconsistentPeerError

__all__ = ["codec_rounded", "check_histogram_totals", "check_partition_sums", "peer_contradicts"]


def peer_contradicts(peer: str, check: str, detail: str) -> InconsistentPeerError:
    """The error of a failed check (the one kind every protocol raises), naming the peer and the check."""
    return InconsistentPeerError(f"{peer} failed the {check} check: {detail}", peer=peer, check=check)


def codec_rounded(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """``x`` as the fixed-point codec encodes it (rounded to ``2**-frac_bits``), in float64."""
    scale = 2.0**frac_bits
    return np.rint(x * scale) / scale


def _tolerance(frac_bits: int) -> float:
    # the sums of encodings are exact multiples of 2**-frac_bits: half a unit absorbs float summation order
    return 0.5 * 2.0**-frac_bits


def check_histogram_totals(
    peer: str, node: int, G: np.ndarray, H: np.ndarray, offsets: np.ndarray, features: list[int],
    g_total: float, h_total: float, frac_bits: int,
) -> None:
    """Every sampled feature's bins of one node add up to the node's (codec-rounded) sums."""
    tol = _tolerance(frac_bits)
    for f in features:
        o, e = int(offsets[f]), int(offsets[f + 1])
        gs, hs = float(G[o:e].sum()), float(H[o:e].sum())
        if abs(gs - g_total) > tol or abs(hs - h_total) > tol:
            raise peer_contradicts(
                peer, "histogram totals",
                f"node {node}, feature #{f}: bins sum to (g={gs:.6g}, h={hs:.6g}), the node's rows to (g={g_total:.6g}, h={h_total:.6g})",
            )


def check_partition_sums(
    peer: str, node: int, left_g: float, left_h: float, expected_g: float, expected_h: float, n_left: int, n_rows: int,
    frac_bits: int,
) -> None:
    """The rows sent left add up to the left bins' sums of the chosen split."""
    tol = _tolerance(frac_bits)
    if abs(left_g - expected_g) > tol or abs(left_h - expected_h) > tol:
        raise peer_contradicts(
            peer, "split partition",
            f"node {node}: {n_left} of {n_rows} rows sent left sum to (g={left_g:.6g}, h={left_h:.6g}); "
            f"the chosen bins hold (g={expected_g:.6g}, h={expected_h:.6g})",
        )
