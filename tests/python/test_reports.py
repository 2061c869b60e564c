"""The reports on the demo lake against direct computations over its raw
Parquet files (pyarrow + numpy), independent of vitals' SQL."""

import json

import numpy as np
import pytest
import pyarrow.compute as pc
import pyarrow.dataset as ds

from conftest import run, sql_json

DAY_US = 86_400_000_000


def phi(x, y):
    a = np.sum(x & y)
    b = np.sum(x & ~y)
    c = np.sum(~x & y)
    d = np.sum(~x & ~y)
    den = float(a + b) * (c + d) * (a + c) * (b + d)
    return (a * d - b * c) / np.sqrt(den)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    path = tmp_path_factory.mktemp("reports") / "lake"
    run("demo", "--lake", path)
    return path


def test_magic_number_phi_matches_a_direct_computation(lake):
    ev = ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table(columns=["user_id", "event", "event_time"])
    users = ds.dataset(lake / "users", format="parquet").to_table(columns=["user_id", "signup_time"])

    t = pc.cast(ev["event_time"], "int64").to_numpy()
    first_day = (t.min() // DAY_US) * DAY_US
    end = (t.max() // DAY_US) * DAY_US + DAY_US

    uid = ev["user_id"].to_numpy(zero_copy_only=False)
    names, inverse = np.unique(uid, return_inverse=True)
    signup = dict(zip(users["user_id"].to_pylist(), pc.cast(users["signup_time"], "int64").to_pylist()))
    t0 = np.array([signup[n] for n in names], dtype=np.int64)
    # New users whose first two weeks lie inside the data.
    cohort = (t0 >= first_day) & (t0 + 14 * DAY_US <= end)

    dt = t - t0[inverse]
    dash = (ev["event"].to_numpy(zero_copy_only=False) == "create_dashboard") & (dt >= 0) & (dt < 7 * DAY_US)
    count = np.bincount(inverse, weights=dash, minlength=len(names))
    week2 = (dt >= 7 * DAY_US) & (dt < 14 * DAY_US)
    active = np.bincount(inverse, weights=week2, minlength=len(names)) > 0

    x = count[cohort] >= 3
    y = active[cohort]
    expected = phi(x, y)

    rows = sql_json(lake, "SELECT section, event, n, phi, users, users_with FROM magic_number() ORDER BY section, phi DESC NULLS LAST")
    best = [r for r in rows if r["section"] == "best"]
    assert best[0]["event"] == "create_dashboard" and best[0]["n"] == 3, best[:3]
    row = next(r for r in rows if r["event"] == "create_dashboard" and r["n"] == 3)
    assert row["users"] == int(cohort.sum())
    assert row["users_with"] == int(x.sum())
    assert abs(row["phi"] - expected) < 0.02, (row["phi"], expected)
    assert row["phi"] > 0.6


def test_vitals_report_runs_a_report_by_name_in_its_order(lake):
    listing = run("report", "--lake", lake).stdout
    for name in ["funnel", "retention_matrix", "feature_retention", "magic_number", "health_scores",
                 "declining_accounts", "intervention_effect", "account_lifecycle", "user_lifecycle"]:
        assert f"{name}(" in listing, name
    rows = json.loads(run("report", "--lake", lake, "--format", "json", "declining_accounts", "2", "3", "14").stdout)
    assert [r["rank"] for r in rows] == list(range(1, 7))
    # `-` keeps a default; the same report through SQL gives the same rows.
    via_sql = sql_json(lake, "SELECT * FROM funnel('signup,create_project,upgrade', NULL, 'plan') ORDER BY breakdown, step")
    via_report = json.loads(run("report", "--lake", lake, "--format", "json", "funnel", "signup,create_project,upgrade", "-", "plan").stdout)
    key = lambda r: (r["breakdown"] == "other", r["breakdown"], r["step"])
    assert sorted(via_report, key=key) == via_report
    assert sorted(via_sql, key=key) == via_report
    bad = run("report", "--lake", lake, "no_such_report", check=False)
    assert bad.returncode == 2 and "unknown report 'no_such_report'" in bad.stderr and "health_scores" in bad.stderr
    bad = run("report", "--lake", lake, "health_scores", "2026-09-30", "0", check=False)
    assert bad.returncode == 2 and "days must be between 1 and 3660" in bad.stderr
