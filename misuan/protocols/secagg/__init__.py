"""Secure aggregation with dropouts: the sum of N data parties' vectors, seen by no one else.

Bonawitz, Ivanov, Kreuter, Marcedone, McMahan, Patel, Ramage, Segal, Seth, "Practical Secure
Aggregation for Privacy-Preserving Machine Learning", CCS 2017: the semi-honest protocol (its
rounds 0-3, without the signatures and consistency round of the active variant). A star: data
parties talk only to the aggregator, which may be a separate node or one of the data parties.

0. ``advertise``: each data party ``u`` sends two fresh X25519 public keys (one to receive shares,
   one for masks).
1. ``keys`` / ``shares``: the aggregator lists the advertisers ``U1`` (sorted: a party's index + 1
   is its Shamir ``x``) with a random session id; each ``u`` draws a 16-byte self-mask seed ``b_u``
   and Shamir-shares it and its mask private key ``s_u`` with threshold ``t`` (:mod:`.shamir`), and
   sends each other ``v`` its two shares under AES-GCM with a key from X25519(``u``, ``v``)
   (HKDF-SHA256 with the session id), through the aggregator.
2. ``inbox`` / ``masked``: the aggregator relays the shares of those that sent them (``U2``); each
   ``u`` sends ``y_u = x_u + PRG(b_u) + sum_v +-PRG(s_uv)`` over ``v`` in ``U2``, where ``x_u`` is its
   fixed-point input in Z / 2^64, ``s_uv`` the HKDF of X25519(``s_u``, ``v``'s mask key), the sign
   ``+`` when ``u < v`` (by name) so that each pair cancels, and PRG AES-128-CTR (:mod:`.masking`).
3. ``survivors`` / ``reveal``: the aggregator names the parties whose ``y`` arrived (``U3``) and
   those that shared but did not (``D = U2 - U3``); each survivor returns its shares of ``b_u`` for
   ``u`` in ``U3`` and of ``s_d`` for ``d`` in ``D`` (never both for one party). With ``t`` of them
   the aggregator rebuilds those secrets, removes the self masks and the survivors' masks with the
   dropped, and has ``sum_{u in U3} x_u``; it may send it back (``total``, ``broadcast``).

A party that misses a round's deadline (``round_timeout_s``) or whose link breaks is dropped; the sum
survives while at least ``t`` parties remain at every round (``TooFewPartiesError`` otherwise).
``t`` defaults to ``floor(N/2) + 1``, and must exceed ``N/2``.

**Security model**: semi-honest (honest-but-curious) aggregator and data parties; any coalition of
the aggregator with fewer than ``t`` data parties learns nothing about the other parties' inputs
beyond the sum of the survivors' inputs (Bonawitz et al., Theorem 6.3, with pseudorandom AES-CTR
masks, X25519 under the gap-DH assumption with HKDF, and AES-GCM); without the aggregator, any
coalition of data parties learns nothing but the broadcast sum. Not covered: an aggregator that lies
about who dropped to learn a party's input (the active variant's consistency round), nor
differential privacy of the sum itself.

**Leakage** (declared in :mod:`.disclosures`, recorded in the ledger): to the aggregator, every
party's public keys, the encrypted shares it relays, each party's masked input (uniform on its own),
the shares it needs to unmask, **which parties dropped out and when**, and the sum of the survivors'
inputs; to each data party, the others' public keys, the shares encrypted to it, the lists of
survivors and dropped parties, and the sum when broadcast. The vector length and the fixed-point
precision are public. A sum over few parties says a lot about each of them: that is the output.

Fixed point: each entry as ``round(x * 2^frac_bits)`` in Z / 2^64, entries above ``max_abs``
refused; the parameters are checked so that the sum of N parties cannot wrap around.

Layout: :mod:`.params`, :mod:`.messages`, :mod:`.disclosures`, :mod:`.shamir`, :mod:`.masking`, one
module per role (:mod:`.data_party`, :mod:`.aggregator`: pure message logic and its driver).
"""

from misuan.protocols.secagg.aggregator import AggregationResult, Aggregator, aggregate_as_aggregator
from misuan.protocols.secagg.data_party import DataParty, aggregate_as_data_party
from misuan.protocols.secagg.disclosures import DISCLOSURES
from misuan.protocols.secagg.messages import PROTOCOL, STEP
from misuan.protocols.secagg.params import SecAggParams

__all__ = [
    "DISCLOSURES", "PROTOCOL", "STEP", "AggregationResult", "Aggregator", "DataParty", "SecAggParams",
    "aggregate_as_aggregator", "aggregate_as_data_party",
]
