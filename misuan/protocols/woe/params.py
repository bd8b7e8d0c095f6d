"""The parameters of a WOE/IV job, declared once (:mod:`misuan.params`): :class:`WoeParams`.

Both parties of a job must hold the same binning parameters; the label party sends
:meth:`WoeParams.fingerprint` with its first message and the feature party refuses a different one.
``min_key_bits`` and ``workers`` stay each party's own choice (a security floor and a number of
cores), so they are left out of the fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, get_args

from misuan.crypto.he import MAX_BITS, MIN_BITS
from misuan.params import ParamError, check_params, param

__all__ = ["MAX_BINS", "METHODS", "SUPERVISED", "Method", "WoeParams"]

Method = Literal["quantile", "equal_width", "chimerge", "tree", "monotonic"]
METHODS: tuple[str, ...] = get_args(Method)
# methods whose bins depend on labels: computed from encrypted pre-bin sums and merged by the label party
SUPERVISED: tuple[str, ...] = ("chimerge", "tree", "monotonic")
MAX_BINS = 1000  # bounds every per-feature array that crosses the wire


@dataclasses.dataclass(frozen=True)
class WoeParams:
    """How features are binned and what is shared; both parties of a WOE job must hold the same values.

    ``n_bins`` is the target number of value bins for ``quantile``/``equal_width`` and the maximum
    for ``chimerge``/``tree``/``monotonic``, which start from ``n_prebins`` quantile pre-bins. ``smoothing`` is
    added to the good and bad count of every bin of a feature in which some bin has no goods or no
    bads (so its WOE is finite); features without an empty cell get the textbook values.
    ``chi2_threshold`` (ChiMerge) keeps merging while the most similar adjacent pair has a
    chi-square below it, even under ``n_bins``; leaving it out merges only down to ``n_bins``.
    """

    method: Method = param("quantile", "how features are binned (chimerge, tree and monotonic are supervised)")
    methods: Mapping[str, Method] = param({}, 'per-feature override of method, e.g. { income = "tree" }')
    n_bins: int = param(
        10, "bins (quantile, equal_width) or the most bins (chimerge, tree)", ge=1, le=MAX_BINS
    )
    n_prebins: int = param(50, "quantile pre-bins for chimerge, tree and monotonic (at least n_bins)", ge=1, le=MAX_BINS)
    min_bin_size: int = param(5, "small-cell rule: no revealed bin holds fewer rows (5 or more recommended)", ge=1)
    smoothing: float = param(0.5, "added to the bin counts of a feature with an empty class cell", ge=0)
    chi2_threshold: float | None = param(None, "ChiMerge also stops merging above this chi-square", ge=0)
    share_edges: bool = param(True, "the feature party sends its bin edges (shown in the report)")
    share_iv: bool = param(False, "the label party sends the IV of each feature back")
    min_key_bits: int = param(
        2048, "weakest homomorphic key the feature party accepts (2048 recommended)", ge=MIN_BITS, le=MAX_BITS
    )
    workers: int | None = param(None, "processes per party for encryption and bin sums (default: all cores)", ge=1)

    # each party's own choice, not compared between the parties
    LOCAL: ClassVar[tuple[str, ...]] = ("min_key_bits", "workers")

    def __post_init__(self) -> None:
        check_params(self, "woe")
        if self.n_bins > self.n_prebins:
            raise ParamError(
                "n_prebins", f"must be at least n_bins ({self.n_bins}), not {self.n_prebins}", "woe"
            )

    def method_for(self, feature: str) -> str:
        return self.methods.get(feature, self.method)

    def fingerprint(self) -> str:
        """The fields both parties must agree on (all but :attr:`LOCAL`), as canonical JSON."""
        agreed: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self.LOCAL
        }
        agreed["methods"] = dict(sorted(self.methods.items()))
        return json.dumps(agreed, sort_keys=True)
