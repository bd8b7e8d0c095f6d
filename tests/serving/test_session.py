"""Online joint scoring (:mod:`misuan.protocols.serving`, :mod:`misuan.serving.session`) over in-memory
channels: the online score equals the batch prediction; pins; an unknown applicant; the fallback."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from misuan.datasets import taiwan
from misuan.errors import ProtocolError
from misuan.ml.secureboost import SecureBoostClassifier, fit_local, predict_local
from misuan.net.memory import MemoryNetwork
from misuan.protocols.psi import IdNormalization
from misuan.protocols.serving import BankModel, PartnerModel
from misuan.serving.feature_store import FeatureStore, build_feature_store
from misuan.serving.session import BankSession, PartnerService, Pins

BANK_COLS = ["LIMIT_BAL", "PAY_0", "PAY_2", "PAY_3"]
PARTNER_COLS = ["AGE", "BILL_AMT1", "PAY_AMT1", "PAY_AMT2"]
NORM = IdNormalization(case="casefold")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("serving")
    df = taiwan.load_taiwan().iloc[:3000].reset_index(drop=True)
    df["customer_id"] = [f"C{i:05d}" for i in range(len(df))]
    train, test = df.iloc[:2400], df.iloc[2400:]
    est = SecureBoostClassifier(n_estimators=4, max_depth=3, learning_rate=0.3)
    models, _ = fit_local(est, {"bank": train[BANK_COLS], "partner": train[PARTNER_COLS]}, train[taiwan.LABEL].to_numpy(),
                          label_party="bank")
    batch = predict_local(models, {"bank": test[BANK_COLS], "partner": test[PARTNER_COLS]})
    test.to_csv(tmp / "partner.csv", index=False)
    store = build_feature_store(tmp / "partner.csv", tmp / "partner.sqlite", id_column="customer_id", features=PARTNER_COLS,
                                normalization=NORM)
    return {"models": models, "test": test, "batch": batch, "store": store}


def _session(trained: dict[str, Any], *, partner_pin: str = "p" * 64, deadline_s: float = 5.0):  # type: ignore[no-untyped-def]
    """A partner service in a thread (it sleeps 0.6 s on the ID "slow") and the bank's session, in memory."""
    net = MemoryNetwork(["bank", "partner"], job_id="serve-test")
    chans = net.channels(timeout_s=10)
    bank = BankModel(trained["models"]["bank"].model_)
    partner = PartnerModel(trained["models"]["partner"].model_)
    store = FeatureStore(trained["store"], PARTNER_COLS)

    def lookup(ids: list[str]) -> Any:
        if "slow" in ids:
            time.sleep(0.6)
        return store.lookup(ids)

    service = PartnerService(partner, lookup, Pins("m1", partner_pin, "b" * 64), lambda: chans["partner"])
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    session = BankSession(bank, Pins("m1", "b" * 64, "p" * 64), lambda: chans["bank"], deadline_s=deadline_s)
    return session, service, thread, chans


def test_the_online_score_equals_the_batch_prediction_for_every_test_row(trained: dict[str, Any]) -> None:
    session, service, thread, _ = _session(trained)
    test = trained["test"]
    ids = [i.casefold() for i in test["customer_id"]]
    X = test[BANK_COLS].to_numpy(dtype=float)
    one_by_one = np.array([session.score([ids[i]], X[i : i + 1]).pd[0] for i in range(40)])
    batch = session.score(ids, X)
    margin = np.asarray(trained["batch"])
    want = 1 / (1 + np.exp(-margin))
    assert np.array_equal(batch.pd, want)  # exact: the same leaves, the same sums
    assert np.array_equal(one_by_one, want[:40])
    assert all(m is None for m in batch.partner_missing) and all(len(r) <= 8 for r in batch.reasons)
    service.stop.set()
    thread.join(5)
    assert service.answered == 42  # the probe and 41 requests


def test_an_unknown_applicant_takes_the_missing_value_path_and_is_flagged(trained: dict[str, Any]) -> None:
    session, service, thread, _ = _session(trained)
    X = trained["test"][BANK_COLS].to_numpy(dtype=float)[:2]
    out = session.score(["nobody", trained["test"]["customer_id"].iloc[1].casefold()], X)
    assert out.partner_missing == ["the partner does not know this customer", None]
    # the same path as the batch prediction with the partner's features all missing
    models = trained["models"]
    nan = trained["test"][PARTNER_COLS].iloc[:1] * np.nan
    want = predict_local(models, {"bank": trained["test"][BANK_COLS].iloc[:1], "partner": nan})
    assert out.pd[0] == pytest.approx(1 / (1 + np.exp(-np.asarray(want)[0])), abs=0)
    service.stop.set()
    thread.join(5)


def test_a_model_mismatch_refuses_to_serve_naming_both_hashes(trained: dict[str, Any]) -> None:
    session, service, thread, _ = _session(trained, partner_pin="q" * 64)
    out = session.score(["x"], np.zeros((1, len(BANK_COLS))))
    assert "model mismatch with partner" in out.partner_missing[0] and "qqqqqqqqqqqqqqqq" in out.partner_missing[0]
    thread.join(5)
    assert isinstance(service.error, ProtocolError) and "pppppppppppppppp" in str(service.error)


def test_a_slow_or_gone_partner_gives_the_fallback_within_the_deadline(trained: dict[str, Any]) -> None:
    session, service, thread, _ = _session(trained, deadline_s=0.2)
    X = trained["test"][BANK_COLS].to_numpy(dtype=float)[:1]
    key = trained["test"]["customer_id"].iloc[0].casefold()
    assert session.score([key], X).partner_missing == [None]
    t0 = time.monotonic()
    late = session.score(["slow"], X)
    assert time.monotonic() - t0 < 0.5 and "did not answer in time" in str(late.partner_missing[0])
    assert np.isfinite(late.pd[0])  # the model's missing-value path for the partner's part
    time.sleep(1.2)  # past the back-off: the session reopens (the memory channel is the same) and serves again
    service.stop.set()
    thread.join(5)
    gone = session.score([key], X)
    assert gone.partner_missing[0] is not None and np.isfinite(gone.pd[0])


def test_the_compiled_forest_answers_as_the_batch_prediction_code_does(trained: dict[str, Any]) -> None:
    """The partner's compiled leaf sets are byte for byte those of ``leaf_sets_for`` (missing values included)."""
    from misuan.protocols.secureboost.model import leaf_sets_for, trees_of_shape

    part = trained["models"]["partner"].model_
    X = trained["test"][PARTNER_COLS].to_numpy(dtype=float)
    X[::7, 1] = np.nan
    shapes = trees_of_shape(np.array(part["shape"], dtype=np.int32).reshape(-1, 4), range(int(part["n_trees"])))
    want = leaf_sets_for(list(part["splits"]), shapes, X, list(part["feature_names"]))
    pm = PartnerModel(part)
    got = pm.forest.pack(pm.forest.allowed(X))
    assert np.array_equal(got, want.masks) and pm.forest.n_leaves.tolist() == want.n_leaves.tolist()
