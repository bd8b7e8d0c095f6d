"""Online joint scoring of a two-part scorecard (:mod:`misuan.protocols.serving.scorecard`): the online
PD and reasons equal the batch joint scoring's for every hold-out row; an unknown applicant; the
fallback; and the nodes over gRPC + mutual TLS with the decision API (its score is the points total)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from misuan.datasets import taiwan
from misuan.errors import ProtocolError
from misuan.ml.vertical_lr import VerticalLogisticRegression, fit_local, scorecard_part
from misuan.net.local import free_port, make_test_pki, run_local
from misuan.net.memory import MemoryNetwork
from misuan.protocols.psi import IdNormalization
from misuan.protocols.secureboost.binning import binned_features
from misuan.protocols.serving import BankScorecard, PartnerScorecard, PointsReply
from misuan.serving.app import HttpServer, create_app
from misuan.serving.config import load_serve_config, model_sha256
from misuan.serving.feature_store import FeatureStore, build_feature_store
from misuan.serving.node import start_bank, start_partner
from misuan.serving.session import BankSession, PartnerService, Pins
from tests.serving.serve_files import write_serve_config

COLS = {"bank": ["LIMIT_BAL", "PAY_0", "PAY_2", "PAY_3"], "partner": ["AGE", "BILL_AMT1", "PAY_AMT1", "PAY_AMT2"]}
NORM = IdNormalization(case="casefold")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A scorecard trained jointly on 2,400 rows, its parts as JSON documents, and the batch joint
    scores of the 600 hold-out rows (``score_points`` over in-memory channels)."""
    tmp = tmp_path_factory.mktemp("scorecard-serving")
    df = taiwan.load_taiwan().iloc[:3000].reset_index(drop=True)
    df["customer_id"] = [f"C{i:05d}" for i in range(len(df))]
    df.loc[2400:2450, "AGE"] = np.nan  # some missing partner values among the hold-out rows
    train, test = df.iloc[:2400], df.iloc[2400:].reset_index(drop=True)
    binned = {p: binned_features(train[c], 6) for p, c in COLS.items()}
    models, _ = fit_local(VerticalLogisticRegression(tol=1e-3, max_iter=15), {p: b[1] for p, b in binned.items()},
                          {p: b[0].n_bins for p, b in binned.items()}, train[taiwan.LABEL].to_numpy(), label_party="bank")
    cards, docs, test_bins = {}, {}, {}
    for p, (binner, _, names) in binned.items():
        labels = [[f"bin {i}" for i in range(n)] for n in binner.n_bins]
        cards[p] = models[p].scorecard(names, labels, n_features=8)
        docs[p] = json.loads(json.dumps(scorecard_part(p, models[p].role_, cards[p], models[p].coef_,
                                                       models[p].intercept_ if p == "bank" else None, binner.cuts, 8)))
        test_bins[p] = binner.transform(test[COLS[p]].to_numpy(dtype=float)).astype(np.int64)
    out = run_local({p: (lambda ch, p=p: models[p].score_points(test_bins[p], cards[p], channel=ch,
                                                                peer="partner" if p == "bank" else "bank"))
                     for p in COLS}, job_id="batch")
    test.to_csv(tmp / "partner.csv", index=False)
    store = build_feature_store(tmp / "partner.csv", tmp / "partner.sqlite", id_column="customer_id",
                                features=COLS["partner"], normalization=NORM)
    return {"docs": docs, "test": test, "batch": out["bank"].result, "store": store, "tmp": tmp, "models": models,
            "cards": cards, "binned": binned}


def _session(trained: dict[str, Any], *, deadline_s: float = 5.0) -> tuple[BankSession, PartnerService, threading.Thread]:
    chans = MemoryNetwork(["bank", "partner"], job_id="serve-card").channels(timeout_s=10)
    store = FeatureStore(trained["store"], COLS["partner"])
    service = PartnerService(PartnerScorecard(trained["docs"]["partner"], "bank"), store.lookup,
                             Pins("card", "p" * 64, "b" * 64), lambda: chans["partner"])
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    session = BankSession(BankScorecard(trained["docs"]["bank"], "partner"), Pins("card", "b" * 64, "p" * 64),
                          lambda: chans["bank"], deadline_s=deadline_s)
    return session, service, thread


def test_the_online_pd_and_reasons_equal_the_batch_joint_scoring_for_every_hold_out_row(trained: dict[str, Any]) -> None:
    session, service, thread = _session(trained)
    test, batch = trained["test"], trained["batch"]
    ids = [i.casefold() for i in test["customer_id"]]
    X = test[COLS["bank"]].to_numpy(dtype=float)
    online = session.score(ids, X)
    assert np.max(np.abs(online.pd - batch.pd)) <= 1e-9
    assert [r[:4] for r in online.reasons] == batch.reasons  # the same four principal reasons, same order
    one_by_one = [session.score([ids[i]], X[i: i + 1]).pd[0] for i in range(0, 600, 30)]
    assert np.max(np.abs(np.array(one_by_one) - batch.pd[::30])) <= 1e-9
    assert all(m is None for m in online.partner_missing)
    assert any(r.startswith("partner:") for rs in online.reasons for r in rs)  # reasons from both parts
    service.stop.set()
    thread.join(5)


def test_an_unknown_applicant_scores_with_every_partner_feature_missing_and_is_flagged(trained: dict[str, Any]) -> None:
    session, service, thread = _session(trained)
    X = trained["test"][COLS["bank"]].to_numpy(dtype=float)[:2]
    out = session.score(["nobody", trained["test"]["customer_id"].iloc[1].casefold()], X)
    assert out.partner_missing == ["the partner does not know this customer", None]
    card_b, card_p = trained["cards"]["bank"], trained["cards"]["partner"]
    binner_b, binner_p = trained["binned"]["bank"][0], trained["binned"]["partner"][0]
    missing = np.array([[n - 1 for n in binner_p.n_bins]])  # each feature's last bin: missing values
    score = card_b.score(binner_b.transform(X[:1]).astype(np.int64)) + card_p.score(missing)
    assert out.pd[0] == pytest.approx(1 / (1 + np.exp(-(600 - 20 / np.log(2) * np.log(50) - score[0]) / (20 / np.log(2)))),
                                      rel=1e-12)
    service.stop.set()
    thread.join(5)
    gone = session.score(["nobody"], X[:1])  # the partner is gone: the probe's answer, flagged
    assert gone.partner_missing[0] is not None and gone.pd[0] == pytest.approx(out.pd[0], rel=1e-12)


def test_a_partner_sending_malformed_points_is_refused(trained: dict[str, Any]) -> None:
    bank = BankScorecard(trained["docs"]["bank"], "partner")
    X = trained["test"][COLS["bank"]].to_numpy(dtype=float)[:2]
    bad = PointsReply(1, np.ones(3, dtype=bool), ["AGE"], np.zeros(3), np.zeros((3, 1), np.int32), np.zeros((3, 1)))
    with pytest.raises(Exception, match="points for 3 rows, not 2"):
        bank.combine(bad, X)


def test_a_scorecard_trained_with_more_feature_parties_is_refused_not_mis_scored(trained: dict[str, Any]) -> None:
    """A bank part of a three-party scorecard served with one partner would leave out the third's
    points and its share of the offset: every score wrong. It refuses instead."""
    doc = {**trained["docs"]["bank"], "n_features_all_parties": 11}  # 4 + 4 here, 3 more at another partner
    bank = BankScorecard(doc, "partner")
    X = trained["test"][COLS["bank"]].to_numpy(dtype=float)[:2]
    reply = PointsReply(1, np.ones(2, dtype=bool), COLS["partner"], np.zeros(2), np.zeros((2, 4), np.int32),
                        np.zeros((2, 4)))
    with pytest.raises(ProtocolError, match="trained on 11 features; this part's 4 and partner's 4 are not all"):
        bank.combine(reply, X)
    assert BankScorecard(trained["docs"]["bank"], "partner").combine(reply, X).score.shape == (2,)
    with pytest.raises(ProtocolError, match="n_features_all_parties"):
        BankScorecard({**doc, "n_features_all_parties": 3}, "partner")


def _config(root: Path, party: str, peer: str, ports: dict[str, int], sha_peer: str, http: int | None) -> Path:
    return write_serve_config(root, party, peer, ports, sha_peer, http, model=f"{party}_scorecard.json",
                              model_id="card-model", deadline_ms=1000)


def test_the_nodes_serve_the_scorecard_over_grpc_and_the_api_scores_in_its_points(trained: dict[str, Any]) -> None:
    root, test = trained["tmp"] / "nodes", trained["test"]
    root.mkdir()
    for p in COLS:
        (root / f"{p}_scorecard.json").write_text(json.dumps(trained["docs"][p]))
        test[["customer_id", *COLS[p]]].to_csv(root / f"{p}.csv", index=False)
    make_test_pki(root / "certs", ["bank", "partner"])
    ports, http = {"bank": free_port(), "partner": free_port()}, free_port()
    sha = {p: model_sha256(root / f"{p}_scorecard.json") for p in COLS}
    partner = start_partner(load_serve_config(_config(root, "partner", "bank", ports, sha["bank"], None)))
    bank = start_bank(load_serve_config(_config(root, "bank", "partner", ports, sha["partner"], http)))
    server = HttpServer(create_app(bank), f"127.0.0.1:{http}")
    try:
        import urllib.request

        doc = {"applicants": [{"id": i} for i in test["customer_id"].iloc[:200]]}
        req = urllib.request.Request(f"{server.url}/v1/decisions/batch", data=json.dumps(doc).encode(),
                                     headers={"content-type": "application/json"})
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=30) as r:
            body = json.loads(r.read())
        assert time.monotonic() - t0 < 20
        assert all(x["partner_answered"] for x in body["results"]), "the partner missed the deadline: fallback PDs"
        pds = np.array([x["pd"] for x in body["results"]])
        assert np.max(np.abs(pds - trained["batch"].pd[:200])) <= 1e-9
        scores = np.array([x["score"] for x in body["results"]])
        assert np.max(np.abs(scores - trained["batch"].score[:200])) <= 0.051  # the points total, to 0.1
        given = [x["code"] for r in body["results"] for x in r["reasons"]]
        assert given and "FEATURE_AGE" not in given  # a protected attribute is never a reason given
    finally:
        server.stop()
        bank.close()
        partner.close()
