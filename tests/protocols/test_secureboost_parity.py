"""SecureBoost at XGBoost parity: missing-value splits, monotone constraints, per-row contributions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from misuan.crypto.he import generate_keypair
from misuan.errors import ConfigError
from misuan.net.local import run_local
from misuan.protocols import secureboost as sb
from misuan.protocols.secureboost.explain import contributions
from misuan.protocols.secureboost.model import Answers, goes_left, route_leaves

KEYS = generate_keypair("ou", bits=2048)


def _train(Xa, Xb, y, p, p_partner=None):
    out = run_local({
        "bank": lambda c: sb.train_label_party(c, Xa, y, ["partner"], p, keys=KEYS),
        "partner": lambda c: sb.train_feature_party(c, Xb, "bank", p_partner or p),
    })
    return {party: o.result.model for party, o in out.items()}


def _explain(models, Xa, Xb, method="treeshap", mode="nodes"):
    out = run_local({
        "bank": lambda c: sb.explain_label_party(c, models["bank"], Xa, method=method, mode=mode),
        "partner": lambda c: sb.predict_feature_party(c, models["partner"], Xb, prediction_mode=mode),
    })
    return out["bank"].result


def _margin(models, Xa, Xb):
    out = run_local({
        "bank": lambda c: sb.predict_label_party(c, models["bank"], Xa),
        "partner": lambda c: sb.predict_feature_party(c, models["partner"], Xb),
    })
    return out["bank"].result


def _xgb(X, y, p, **kw):
    return xgb.XGBClassifier(
        n_estimators=p.n_estimators, max_depth=p.max_depth, learning_rate=p.learning_rate, tree_method="hist",
        max_bin=p.max_bin, reg_lambda=p.reg_lambda, min_child_weight=p.min_child_weight, base_score=p.base_score,
        n_jobs=1, **kw,
    ).fit(X, y)


def _binned_data(n=1500, seed=0):
    """Features with few distinct values (each value its own bin on both sides) and missing values."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 6, size=(n, 6)).astype(float)
    X[rng.random(X.shape) < 0.15] = np.nan
    z = np.nan_to_num(X[:, 0], nan=4.0) - np.nan_to_num(X[:, 3], nan=0.5) + 1.5 * np.isnan(X[:, 4]) + rng.normal(0, 1.5, n)
    return X, (z > 0.5).astype(float)


def test_trees_equal_xgboosts_on_the_same_bins_missing_directions_included() -> None:
    X, y = _binned_data()
    p = sb.SecureBoostParams(n_estimators=3, max_depth=3, max_bin=16, base_score=0.5, n_jobs=1)
    models = _train(X[:, :3], X[:, 3:], y, p)
    margin = _margin(models, X[:, :3], X[:, 3:])
    ref = _xgb(X, y, p)
    np.testing.assert_allclose(margin, ref.predict(X, output_margin=True), atol=1e-5)
    # the split features and default directions are XGBoost's, node by node
    ours = [[(nd["party"], nd["feature"], nd["default_left"]) for nd in t["nodes"] if "leaf" not in nd] for t in models["bank"]["trees"]]
    theirs = []
    for tree in ref.get_booster().get_dump(dump_format="json"):
        nodes, stack = [], [json.loads(tree)]
        while stack:
            nd = stack.pop()
            if "children" in nd:
                f = int(nd["split"][1:])
                nodes.append((nd["nodeid"], ("bank", f) if f < 3 else ("partner", f - 3), nd["missing"] == nd["yes"]))
                stack += nd["children"]
        theirs.append([(*pf, left) for _, pf, left in sorted(nodes)])
    assert [sorted(t) for t in ours] == [sorted(t) for t in theirs]


def test_a_flag_that_is_one_or_missing_is_split_on() -> None:
    """The "missing vs present" candidate: a feature with one present value is kept (XGBoost splits on it)."""
    rng = np.random.default_rng(3)
    n = 3000
    flag = np.where(rng.random(n) < 0.4, 1.0, np.nan)
    y = (rng.random(n) < np.where(np.isnan(flag), 0.6, 0.1)).astype(float)
    other = rng.normal(size=(n, 2))
    Xa, Xb = other, flag[:, None]
    p = sb.SecureBoostParams(n_estimators=5, max_depth=2, max_bin=16, base_score=0.5, n_jobs=1)
    tr, te = slice(0, 2000), slice(2000, None)
    models = _train(Xa[tr], Xb[tr], y[tr], p)
    assert any(sp["threshold"] is None for sp in models["partner"]["splits"])  # "missing vs present"
    auc = roc_auc_score(y[te], _margin(models, Xa[te], Xb[te]))
    X = np.column_stack([Xa, Xb])
    ref = roc_auc_score(y[te], _xgb(X[tr], y[tr], p).predict_proba(X[te])[:, 1])
    assert ref > 0.7 and abs(auc - ref) < 0.01, (auc, ref)  # without the candidate: about 0.5


def _monotone_data(n=1200):
    rng = np.random.default_rng(4)
    bank = pd.DataFrame({"b0": rng.normal(size=n), "b1": rng.normal(size=n)})
    partner = pd.DataFrame({"p0": rng.normal(size=n), "p1": rng.normal(size=n)})
    bank.loc[rng.random(n) < 0.1, "b0"] = np.nan
    z = np.sin(3 * bank["b0"].fillna(0)) + bank["b0"].fillna(0) - np.cos(3 * partner["p1"]) - partner["p1"] + bank["b1"] * partner["p0"]
    y = (z + rng.normal(0, 0.5, n) > 0).to_numpy(float)
    return bank, partner, y


def test_predictions_are_monotone_in_constrained_features_of_both_parties() -> None:
    bank, partner, y = _monotone_data()
    p = sb.SecureBoostParams(n_estimators=8, max_depth=4, max_bin=32, base_score=0.5, n_jobs=1, monotone_constraints={"b0": 1})
    p_partner = sb.BoostingParams(max_bin=32, n_jobs=1, monotone_constraints={"p1": -1, "b0": 1})  # b0: not its own
    models = _train(bank, partner, y, p, p_partner)
    used = {(nd["party"], nd["feature_name"]) for t in models["bank"]["trees"] for nd in t["nodes"] if "leaf" not in nd}
    assert {("bank", "b0"), ("partner", "p1")} <= used
    rng = np.random.default_rng(5)
    grid = np.linspace(-3, 3, 25)
    for _ in range(4):  # property: for random rows, the margin moves with the constrained feature only one way
        i = int(rng.integers(len(y)))
        rows_b = pd.concat([bank.iloc[[i]]] * len(grid), ignore_index=True)
        rows_p = pd.concat([partner.iloc[[i]]] * len(grid), ignore_index=True)
        up = _margin(models, rows_b.assign(b0=grid), rows_p)
        down = _margin(models, rows_b, rows_p.assign(p1=grid))
        assert np.all(np.diff(up) >= -1e-12) and np.all(np.diff(down) <= 1e-12)
    # unconstrained, the same data gives a margin that is not monotone in b0
    free = _train(bank, partner, y, sb.SecureBoostParams(n_estimators=8, max_depth=4, max_bin=32, base_score=0.5, n_jobs=1))
    rows_b = pd.concat([bank.iloc[[i]] for i in range(10) for _ in grid], ignore_index=True).assign(b0=np.tile(grid, 10))
    rows_p = pd.concat([partner.iloc[[i]] for i in range(10) for _ in grid], ignore_index=True)
    assert np.any(np.diff(_margin(free, rows_b, rows_p).reshape(10, -1), axis=1) < 0)


def test_monotone_constraints_must_name_known_features_and_agree() -> None:
    bank, partner, y = _monotone_data(300)
    base = dict(n_estimators=1, max_depth=2, max_bin=8, base_score=0.5, n_jobs=1)
    with pytest.raises(ConfigError, match="no party has: \\['nope'\\]"):
        _train(bank, partner, y, sb.SecureBoostParams(**base, monotone_constraints={"nope": 1}))
    with pytest.raises(ConfigError, match="partner declares 0 for its feature 'p1', this party 1"):
        _train(bank, partner, y, sb.SecureBoostParams(**base, monotone_constraints={"p1": 1}), sb.BoostingParams(n_jobs=1))
    with pytest.raises(Exception, match="values must be -1, 0 or 1"):
        sb.BoostingParams(monotone_constraints={"b0": 2})


# --- contributions ----------------------------------------------------------------------------------
def _joint_model_from_xgboost(booster: xgb.Booster, n_bank: int, base_margin: float) -> tuple[dict, dict]:
    """XGBoost's trees as SecureBoost's label-party model: features below ``n_bank`` the bank's, the
    others the partner's (thresholds kept aside to compute the partner's decisions)."""
    trees, partner_splits = [], {}
    for t, dump in enumerate(booster.get_dump(dump_format="json", with_stats=True)):
        nodes, stack = [], [json.loads(dump)]
        while stack:
            nd = stack.pop()
            if "leaf" in nd:
                nodes.append({"id": nd["nodeid"], "leaf": nd["leaf"], "cover": nd["cover"]})
                continue
            f = int(nd["split"][1:])
            party, feat = ("bank", f) if f < n_bank else ("partner", f - n_bank)
            nd["split_condition"] = float(np.float32(nd["split_condition"]))  # the dump's decimal, as XGBoost's float32
            node = {"id": nd["nodeid"], "party": party, "feature": feat, "feature_name": f"f{f}", "default_left": nd["missing"] == nd["yes"],
                    "left": nd["yes"], "right": nd["no"], "gain": nd["gain"], "cover": nd["cover"]}
            if party == "bank":
                node["threshold"] = nd["split_condition"]
            else:
                partner_splits[(t, nd["nodeid"])] = (feat, nd["split_condition"], node["default_left"])
            nodes.append(node)
            stack += nd["children"]
        trees.append({"nodes": sorted(nodes, key=lambda d: d["id"])})
    n_features = int(booster.num_features())
    model = {"party": "bank", "feature_names": [f"f{j}" for j in range(n_bank)], "base_margin": base_margin,
             "feature_parties": {"partner": [f"f{j}" for j in range(n_bank, n_features)]}, "trees": trees}
    return model, partner_splits


@pytest.mark.parametrize(("method", "xgb_kw"), [("treeshap", {"pred_contribs": True}), ("saabas", {"pred_contribs": True, "approx_contribs": True})])
def test_contributions_equal_xgboosts_on_the_same_trees(method: str, xgb_kw: dict) -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(600, 6)).astype(np.float32).astype(np.float64)  # XGBoost compares in float32
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (X[:, 0] + np.nan_to_num(X[:, 4]) * X[:, 1] + rng.normal(0, 0.5, 600) > 0).astype(float)
    ref = xgb.XGBClassifier(n_estimators=4, max_depth=4, learning_rate=0.3, base_score=0.5, n_jobs=1).fit(X, y)
    model, partner_splits = _joint_model_from_xgboost(ref.get_booster(), 3, 0.0)
    Xa, Xb = X[:, :3], X[:, 3:]
    decisions = {t: {} for t in range(len(model["trees"]))}
    for (t, nid), (feat, thr, dl) in partner_splits.items():
        decisions[t][("partner", nid)] = goes_left(Xb[:, feat], thr, dl)
    leaves = {t: route_leaves(tree, Xa, decisions[t], "bank") for t, tree in enumerate(model["trees"])}
    ours = contributions(model, Xa, Answers(leaves, decisions), "bank", method)  # type: ignore[arg-type]
    theirs = ref.get_booster().predict(xgb.DMatrix(X), **xgb_kw)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def _on_every_party(models, parts, method, **kw):
    """Call estimator ``method`` on every party's rows jointly (run_local)."""
    def party(name):
        return lambda c: getattr(models[name], method)(parts[name], channel=c, **kw)

    return run_local({name: party(name) for name in parts})


def test_contributions_and_reason_codes_through_the_protocol() -> None:
    from misuan.ml.secureboost import SecureBoostClassifier, fit_local

    bank, partner, y = _monotone_data(900)
    est = SecureBoostClassifier(n_estimators=3, max_depth=3, max_bin=16, n_jobs=1, base_score=0.5, prediction_mode="nodes")
    models, _ = fit_local(est, {"bank": bank, "partner": partner}, y, label_party="bank")
    lp = models["bank"]
    assert lp.contribution_names_ == ["bank:b0", "bank:b1", "partner:p0", "partner:p1", "bias"]
    parts = {"bank": bank.iloc[:50], "partner": partner.iloc[:50]}
    out = _on_every_party(models, parts, "predict_contributions")
    phi = out["bank"].result
    assert out["partner"].result is None and phi.shape == (50, 5)
    np.testing.assert_allclose(phi.sum(axis=1), _margin({p: m.model_ for p, m in models.items()}, bank.iloc[:50], partner.iloc[:50]))
    out = _on_every_party(models, parts, "reason_codes", k=2)
    codes = out["bank"].result
    for row, reasons in zip(phi, codes, strict=True):
        top = [lp.contribution_names_[j] for j in np.argsort(-row[:-1])[:2] if row[j] > 0]
        assert reasons == top
    # Saabas needs only each row's leaf: it works in the leaf-set mode too
    saabas = _explain({p: m.model_ for p, m in models.items()}, bank.iloc[:50], partner.iloc[:50], method="saabas", mode="leaves")
    np.testing.assert_allclose(saabas.sum(axis=1), phi.sum(axis=1))
