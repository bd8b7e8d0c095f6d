"""Secure sum of integer vectors by additive secret sharing.

Each of n parties holds a vector ``x_p`` of int64 of the same length and all learn ``sum_p x_p``
(mod 2**64, read as signed int64).

Protocol. Every party splits its vector into n uniformly random shares modulo 2**64 that add up to
it, keeps one and sends one to each peer (``secure_sum.Share``). Each party adds the shares it holds
and sends that partial sum to every peer (``secure_sum.PartialSum``); everyone adds the n partials.

Security model: semi-honest, any coalition of up to n-1 parties. A share and a partial sum are
uniform given the other parties' views, except that the n partials sum to the result.

Leakage: the total to every party, and nothing more; with n = 2 the total and one's own input
determine the peer's input, which is inherent in the output. The catalogue
(:mod:`.disclosures`): each party records the partial sum it reveals to each peer (form
``aggregate``) and the total it learns.

Layout (every protocol package has the same): :mod:`.messages` (wire messages and ``PROTOCOL``),
:mod:`.disclosures` (the catalogue), :mod:`.party` (the one role: an object that turns received
messages into the next ones, and the driver that moves them over a channel). Step adapter:
:mod:`misuan.node.steps.secure_sum`.
"""

from misuan.protocols.secure_sum.disclosures import DISCLOSURES
from misuan.protocols.secure_sum.messages import PROTOCOL, STEP, PartialSum, Share
from misuan.protocols.secure_sum.party import SecureSumParty, secure_sum

__all__ = ["DISCLOSURES", "PROTOCOL", "STEP", "PartialSum", "SecureSumParty", "Share", "secure_sum"]
