"""The churn model and churn risk: logistic_regression against an independent
numpy fit of the same objective on random data (printed seed), and on a demo
lake with half a year of history, the held-out AUC recomputed from the
predictions, the planted churners ranked, and too little history refused."""

import json
import math
import os
import random

import numpy as np
import pytest

from conftest import ROOT, run, sql_json

SEED = int(os.environ.get("VITALS_CHURN_SEED", random.SystemRandom().randrange(2**31)))


def newton(x, y, alpha):
    """argmin of sum(log(1 + exp(-s z))) + alpha/2 |w|^2, s = +-1, z = b + x w, by Newton's method."""
    n, k = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    s = np.where(y, 1.0, -1.0)
    theta = np.zeros(k + 1)
    reg = np.diag([alpha] * k + [0.0])
    for _ in range(100):
        z = a @ theta
        p = 1 / (1 + np.exp(s * z))  # d/dz of log(1 + exp(-s z)) is -s p
        grad = -(a.T @ (s * p)) + reg @ theta
        hess = a.T @ (a * (p * (1 - p))[:, None]) + reg
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-12:
            break
    return theta[:k], theta[k]


def test_logistic_regression_equals_a_newton_fit(tmp_path):
    print(f"churn seed {SEED}")
    rng = np.random.default_rng(SEED)
    n, k = 400, 3
    x = rng.normal(size=(n, k)) * [1.0, 3.0, 0.5] + [0.0, 10.0, -2.0]
    true = np.array([1.5, -0.4, 0.8])
    y = rng.random(n) < 1 / (1 + np.exp(-(((x - x.mean(0)) / x.std(0)) @ true - 1.0)))
    rows = ", ".join(f"({str(bool(l)).upper()}, {float(a)!r}, {float(b)!r}, {float(c)!r})" for l, (a, b, c) in zip(y, x))
    lake = tmp_path / "lake"
    run("demo", "--lake", lake, "--accounts", "3", "--days", "14")
    got = sql_json(lake, f"SELECT logistic_regression(l, make_array(a, b, c)) AS m FROM (VALUES {rows}) AS t(l, a, b, c)")[0]["m"]
    mean, std = x.mean(0), x.std(0)
    w, b = newton((x - mean) / std, y, 1.0)
    assert got["rows"] == n and got["positives"] == int(y.sum())
    assert np.allclose(got["means"], mean, rtol=1e-12) and np.allclose(got["stds"], std, rtol=1e-12)
    assert np.allclose(got["coefficients"], w, atol=1e-4), (got, w, b)
    assert math.isclose(got["intercept"], b, abs_tol=1e-4), (got, b)
    # NULL or non-finite features leave a row out; ragged rows are an error.
    same = sql_json(lake, f"SELECT logistic_regression(l, make_array(a, b, c)) AS m FROM (VALUES {rows}, (TRUE, NULL, 1.0, 2.0), (FALSE, 1.0, CAST('NaN' AS DOUBLE), 2.0)) AS t(l, a, b, c)")[0]["m"]
    assert same == got
    bad = run("sql", "--lake", lake, "SELECT logistic_regression(l, f) FROM (VALUES (TRUE, [1.0]), (FALSE, [1.0, 2.0])) AS t(l, f)", check=False)
    assert bad.returncode != 0 and "same number of features, got 1 and 2" in bad.stderr, bad.stderr
    one = run("sql", "--lake", lake, "SELECT logistic_regression(l, f) FROM (VALUES (TRUE, [1.0]), (TRUE, [2.0])) AS t(l, f)", check=False)
    assert one.returncode != 0 and "all 2 rows have the label true" in one.stderr, one.stderr


@pytest.fixture(scope="module")
def half_year(tmp_path_factory):
    """The demo with 180 days of events (the default 90 are too few for a 30-day horizon: see below)."""
    path = tmp_path_factory.mktemp("churn") / "lake"
    out = run("demo", "--lake", path, "--days", "180").stdout
    line = next(l for l in out.splitlines() if l.startswith("stopped paying:"))
    stops = dict(x.split(" on ") for x in line.split(": ", 1)[1].split(" (")[0].split(", "))
    declined = line.rsplit("fell: ", 1)[1].rstrip(")").split(", ")
    return path, stops, declined


def auc(scores, labels):
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def test_the_model_ranks_held_out_churn(half_year):
    lake, stops, declined = half_year
    rows = sql_json(lake, "SELECT * FROM churn_model(NULL, 30)")
    ev = {r["item"]: r for r in rows if r["section"] == "evaluation"}
    held = ev["auc_held_out"]
    assert held["value"] >= 0.8, rows
    assert held["churned"] > 0 and held["first_as_of"] > ev["auc_training"]["last_as_of"]
    coef = {r["item"]: r["value"] for r in rows if r["section"] == "coefficient"}
    assert set(coef) == {"intercept", "active_seat_share", "visits_percentile", "minutes_percentile", "breadth_share", "key_user_share",
                         "visit_trend", "user_growth", "admins_active", "health_change", "log_mrr"}
    cal = sorted((r for r in rows if r["section"] == "calibration"), key=lambda r: r["decile"])
    assert [r["decile"] for r in cal] == list(range(1, 11))
    assert sum(r["rows"] for r in cal) == held["rows"] and sum(r["churned"] for r in cal) == held["churned"]
    # The whole model again, from the raw tables: features from health_history
    # on the same dates, MRR and who stopped paying from the raw subscriptions
    # (pandas), the fit by Newton's method, the AUC by counting pairs.
    import pandas as pd
    import pyarrow.dataset as ds
    subs = ds.dataset(lake / "subscriptions", format="parquet").to_table().to_pandas()
    subs["starts_on"] = pd.to_datetime(subs["starts_on"])
    subs["ends_on"] = pd.to_datetime(subs["ends_on"])
    paid = subs[subs["mrr"] > 0]

    def in_force(frame, day):
        return frame[(frame["starts_on"] <= day) & (frame["ends_on"].isna() | (frame["ends_on"] > day))]

    stops_of = {}
    for org, day in paid.dropna(subset=["ends_on"])[["org_id", "ends_on"]].drop_duplicates().itertuples(index=False):
        if in_force(paid[paid["org_id"] == org], day).empty:
            stops_of.setdefault(org, []).append(day)
    train = ev["auc_training"]
    hist = pd.DataFrame(sql_json(lake, f"SELECT * FROM health_history('{train['first_as_of']}', '{held['last_as_of']}', '7 days', 7)"))
    hist["as_of"] = pd.to_datetime(hist["as_of"])
    feats, labels, is_held = [], [], []
    for r in hist.itertuples(index=False):
        mrr = float(in_force(subs[subs["org_id"] == r.org_id], r.as_of)["mrr"].sum())
        if mrr <= 0:
            continue
        stopped = any(r.as_of < d <= r.as_of + pd.Timedelta(days=30) for d in stops_of.get(r.org_id, []))
        change = 0.0 if r.health_change is None or (isinstance(r.health_change, float) and math.isnan(r.health_change)) else r.health_change
        feats.append([r.active_seat_share, r.visits_percentile, r.minutes_percentile, r.breadth_share, r.key_user_share,
                      r.trend_score, r.growth_score, r.admins_score, change, math.log(1 + mrr)])
        labels.append(stopped)
        is_held.append(r.as_of >= pd.Timestamp(held["first_as_of"]))
    x, y, h = np.array(feats, dtype=float), np.array(labels), np.array(is_held)
    assert (~h).sum() == train["rows"] and y[~h].sum() == train["churned"] and h.sum() == held["rows"] and y[h].sum() == held["churned"]
    mean, std = x[~h].mean(0), x[~h].std(0)
    std[std == 0] = 1.0
    w, b = newton((x[~h] - mean) / std, y[~h], 1.0)
    names = ["active_seat_share", "visits_percentile", "minutes_percentile", "breadth_share", "key_user_share", "visit_trend", "user_growth", "admins_active", "health_change", "log_mrr"]
    for name, want in zip(names, w):
        assert coef[name] == pytest.approx(want, abs=2e-3), (name, coef[name], want)
    assert coef["intercept"] == pytest.approx(b, abs=2e-3)
    score = ((x - mean) / std) @ w + b
    assert held["value"] == pytest.approx(auc(score[h], y[h]), abs=1e-3)
    assert train["value"] == pytest.approx(auc(score[~h], y[~h]), abs=1e-3)


def test_planted_churners_rank_high_a_month_before(half_year):
    lake, stops, declined = half_year
    first = sql_json(lake, "SELECT CAST(min(event_date) AS VARCHAR) AS d FROM events")[0]["d"]
    import datetime as dt
    checked = []
    for org in declined:
        day = dt.date.fromisoformat(stops[org])
        as_of = day - dt.timedelta(days=30)
        # The model needs 21 + 14 + 30 days of events before as_of.
        if (as_of - dt.date.fromisoformat(first)).days + 1 < 65:
            continue
        risk = sql_json(lake, f"SELECT org_id, risk_decile, churn_risk_pct, raises_most FROM churn_risk('{as_of}', 30)")
        mine = next(r for r in risk if r["org_id"] == org)
        checked.append((org, mine["risk_decile"]))
        assert mine.get("raises_most"), mine
    assert len(checked) >= 3, checked
    top = [o for o, d in checked if d == 1]
    assert len(top) * 2 > len(checked), checked


def test_too_little_history_says_how_much_is_needed(half_year):
    lake, _, _ = half_year
    r = run("sql", "--lake", lake, "SELECT * FROM churn_model(NULL, 180)", check=False)
    assert r.returncode == 2 and "too little history" in r.stderr and "needs at least 215 days of events" in r.stderr and "the lake has 180 days" in r.stderr, r.stderr
    r = run("sql", "--lake", lake, "SELECT * FROM churn_risk(NULL, 0)", check=False)
    assert r.returncode == 2 and "horizon_days must be between 1 and 3660" in r.stderr, r.stderr
