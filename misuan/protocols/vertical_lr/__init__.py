"""Vertical logistic regression between a label party (the bank) and a feature party: building blocks.

Work in progress (issue #12): the construction is decided and costed in ``docs/architecture.md``
("Vertical LR: the optimiser and the construction, decided"); this package so far holds its
building blocks, each with its own security statement:

- :mod:`.ring`: fixed point in Z/2^64 and additive shares.
- :mod:`.bin_shares`: shares of ``X a`` (a lookup of the holder's per-bin words at the chooser's
  bins) and of ``X^T v`` (a scatter of the holder's per-row words into the chooser's bins) from the
  punctured OT keys of SecureBoost's OT histograms.

No training protocol, step or estimator uses them yet.
"""
