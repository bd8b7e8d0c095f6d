"""Secure aggregation (Bonawitz et al. 2017): the sum with dropouts at every round, what the aggregator sees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from misuan.errors import ConfigError, CryptoError, DataError, MalformedMessageError, TooFewPartiesError
from misuan.net.channel import Channel
from misuan.net.local import run_local
from misuan.protocols.secagg import (
    Aggregator,
    DataParty,
    SecAggParams,
    aggregate_as_aggregator,
    aggregate_as_data_party,
)
from misuan.protocols.secagg.messages import Inbox, Masked, Reveal, Survivors
from misuan.protocols.secagg.shamir import combine, split

STAGES = ("advertise", "share", "masked", "reveal")
PARAMS = SecAggParams(frac_bits=20, max_abs=1e4)


def _inputs(n: int, length: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"p{i}": rng.normal(0, 100, length) for i in range(n)}


def _round(inputs: dict[str, np.ndarray], drop: dict[str, str], params: SecAggParams = PARAMS) -> tuple[np.ndarray, list[str]]:
    """One round of the message logic, no network; ``drop[p]``: the stage at which ``p`` stops sending."""
    parties = {p: DataParty(p, x, list(inputs), params) for p, x in inputs.items()}
    agg = Aggregator(list(inputs), params)

    def alive(stage: str) -> list[str]:
        return [p for p in parties if STAGES.index(drop.get(p, "never") if p in drop else "reveal") > STAGES.index(stage)
                or p not in drop]

    keys = agg.keys({p: parties[p].advertise() for p in alive("advertise")})
    inboxes = agg.route({p: parties[p].share(keys) for p in alive("share")})
    survivors = agg.survivors({p: parties[p].masked(inboxes[p]) for p in alive("masked") if p in inboxes})
    total = agg.unmask({p: parties[p].reveal(survivors) for p in alive("reveal") if p in survivors.survivors})
    return total.view(np.int64).astype(np.float64) / 2**params.frac_bits, list(agg.u3)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("n_drop", [0, 1, 2])
def test_the_sum_survives_dropouts_at_every_round(stage: str, n_drop: int) -> None:
    inputs = _inputs(5)  # threshold 3: up to N - t = 2 may drop
    drop = {p: stage for p in list(inputs)[:n_drop]}
    total, contributors = _round(inputs, drop)
    # a party that drops while unmasking has already sent its masked input: it is in the sum
    expected = set(inputs) - set(drop) if stage != "reveal" else set(inputs)
    assert set(contributors) == expected
    want = sum(inputs[p] for p in expected)
    assert np.allclose(total, want, atol=len(expected) * 2.0**-20)


def test_too_many_dropouts_are_reported_not_summed() -> None:
    inputs = _inputs(5)
    with pytest.raises(TooFewPartiesError, match="2 of 5 data parties left at masked input"):
        _round(inputs, {"p0": "masked", "p1": "masked", "p2": "masked"})


def test_shamir_any_threshold_of_shares_and_no_fewer() -> None:
    secret = bytes(range(32))
    shares = split(secret, 5, 3)
    assert combine({1: shares[0], 3: shares[2], 5: shares[4]}, 3) == secret
    assert combine({2: shares[1], 4: shares[3], 5: shares[4]}, 3) == secret
    with pytest.raises(CryptoError):
        combine({1: shares[0], 2: shares[1]}, 3)


def test_parameters_and_inputs_are_checked() -> None:
    with pytest.raises(ConfigError, match="above 2"):
        SecAggParams(threshold=2).threshold_for(5)
    with pytest.raises(ConfigError, match="3 to 100"):
        SecAggParams().threshold_for(2)
    with pytest.raises(ConfigError, match="ring"):
        SecAggParams(frac_bits=40, max_abs=1e9).check_capacity(20)
    with pytest.raises(DataError, match="above max_abs"):
        DataParty("p0", np.array([2e4]), ["p0", "p1", "p2"], PARAMS)
    trio = ["p0", "p1", "p2"]
    p = DataParty("p0", np.zeros(3), trio, PARAMS)
    keys = Aggregator(trio, PARAMS).keys({q: DataParty(q, np.zeros(3), trio, PARAMS).advertise() for q in ["p1", "p2"]}
                                         | {"p0": p.advertise()})
    p.share(keys)
    with pytest.raises(MalformedMessageError, match="outside the key list"):
        p.masked(Inbox(["mallory"], [b"x"]))


def _run(inputs: dict[str, np.ndarray], drop_at: dict[str, str], params: SecAggParams, own: bool = False) -> dict[str, Any]:
    names = list(inputs)
    aggregator = names[0] if own else "agg"

    def data_party(me: str) -> Callable[[Channel], Any]:
        def run(chan: Channel) -> Any:
            if me in drop_at:  # a party that goes away: it takes part up to the named round, then leaves
                return _partial(chan, me, inputs[me], aggregator, names, params, drop_at[me])
            return aggregate_as_data_party(chan, inputs[me], aggregator, names, params)
        return run

    fns: dict[str, Callable[[Channel], Any]] = {p: data_party(p) for p in names if p != aggregator}
    fns[aggregator] = lambda chan: aggregate_as_aggregator(chan, names, params, own=inputs[aggregator] if own else None)
    return {p: o for p, o in run_local(fns, job_id="secagg-test", transcripts=True, timeout_s=30).items()}


def _partial(chan: Channel, me: str, x: np.ndarray, aggregator: str, names: list[str], params: SecAggParams, stop: str) -> str:
    from misuan.protocols.secagg.messages import Inbox as InboxMsg
    from misuan.protocols.secagg.messages import KeyList

    party = DataParty(me, x, names, params)
    chan.send(aggregator, "secagg/advertise", party.advertise())
    shares = party.share(chan.recv(aggregator, "secagg/keys", expect=KeyList))
    if stop == "share":
        return "left before sharing"
    chan.send(aggregator, "secagg/shares", shares)
    masked = party.masked(chan.recv(aggregator, "secagg/inbox", expect=InboxMsg))
    if stop == "masked":
        return "left before its masked input"
    chan.send(aggregator, "secagg/masked", masked)
    return "left before unmasking"


@pytest.mark.parametrize("own", [False, True])
def test_over_channels_a_party_leaving_mid_round_and_the_aggregators_view(own: bool) -> None:
    inputs = _inputs(5, length=20, seed=3)
    params = SecAggParams(frac_bits=20, max_abs=1e4, round_timeout_s=3.0)
    out = _run(inputs, {"p3": "masked"}, params, own=own)
    agg = "p0" if own else "agg"
    res = out[agg].result
    assert res.contributors == ["p0", "p1", "p2", "p4"] and res.dropped == {"p3": "masked input"}
    want = sum(inputs[p] for p in res.contributors)
    assert np.allclose(res.total, want, atol=1e-4)
    for p in ("p1", "p2", "p4"):
        total, contributors = out[p].result  # broadcast back, with whose inputs it holds
        assert np.allclose(total, want, atol=1e-4) and contributors == res.contributors
    # the aggregator's view: masked vectors far from any input, and never a party's seed and key together
    transcript = out[agg].transcript or []
    masked = {frm: m.values for frm, step, m in transcript if isinstance(m, Masked)}
    assert set(masked) == set(res.contributors) - {agg}
    for frm, y in masked.items():
        encoded = np.round(inputs[frm] * 2**20).astype(np.int64).view(np.uint64)
        assert not np.any(y == encoded)
    reveals = [m for _, _, m in transcript if isinstance(m, Reveal)]
    assert reveals and all(set(r.seed_of).isdisjoint(r.key_of) and r.key_of == ["p3"] for r in reveals)
    survivors = [m for _, _, m in transcript if isinstance(m, Survivors)]
    assert not survivors  # the aggregator sends it; it receives none
    # both sides of each disclosure record it
    sent = sorted((d.what, d.discloser) for d in out["p1"].disclosures if d.discloser == "p1")
    seen = sorted((d.what, d.discloser) for d in out[agg].disclosures if d.discloser == "p1")
    assert sent == seen


def test_the_aggregator_refuses_other_settings_and_parties_refuse_malformed_lists() -> None:
    trio = ["p0", "p1", "p2"]
    agg = Aggregator(trio, PARAMS, context="model A")
    adverts = {q: DataParty(q, np.zeros(3), trio, PARAMS, context="model A").advertise() for q in trio}
    adverts["p2"] = DataParty("p2", np.zeros(3), trio, SecAggParams(frac_bits=20, max_abs=10.0), context="model A").advertise()
    with pytest.raises(ConfigError, match="p2 runs secagg"):
        agg.keys(adverts)
    adverts["p2"] = DataParty("p2", np.zeros(3), trio, PARAMS, context="model B").advertise()
    with pytest.raises(ConfigError, match="model B"):
        Aggregator(trio, PARAMS, context="model A").keys(adverts)
    parties = {q: DataParty(q, np.ones(3), trio, PARAMS) for q in trio}
    agg = Aggregator(trio, PARAMS)
    keys = agg.keys({q: parties[q].advertise() for q in trio})
    inboxes = agg.route({q: parties[q].share(keys) for q in trio})
    for q in trio:
        parties[q].masked(inboxes[q])
    with pytest.raises(MalformedMessageError, match="distinct"):
        parties["p0"].reveal(Survivors(["p0", "p0", "p1"], ["p2"]))
    with pytest.raises(ConfigError, match="ring"):  # a party checks the capacity itself
        DataParty("p0", np.zeros(3), trio, SecAggParams(frac_bits=52, max_abs=1e6))
