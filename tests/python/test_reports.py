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


def test_health_history_equals_health_scores_on_its_dates(lake):
    """Three random dates: on each, every account's row of the history is
    health_scores' row on that day (history steps of one day, as alerts
    takes, and of several, shorter and longer than the period)."""
    import random as _random

    seed = _random.randrange(1 << 30)
    rng = _random.Random(seed)
    days = rng.choice([7, 14])
    every = rng.choice([1, 3, 5, 7, 15])
    history = sql_json(lake, f"SELECT * FROM health_history('2026-07-20', '2026-09-30', '{every} days', {days})")
    dates = sorted({r["as_of"] for r in history})
    # The dates are from `from` every `every` days up to `to`.
    want_dates = []
    d = np.datetime64("2026-07-20")
    while d <= np.datetime64("2026-09-30"):
        want_dates.append(str(d))
        d += np.timedelta64(every, "D")
    assert dates == want_dates, (seed, dates)
    for as_of in rng.sample(dates, 3):
        rows = {r["org_id"]: r for r in history if r["as_of"] == as_of}
        scores = sql_json(lake, f"SELECT * FROM health_scores('{as_of}', {days})")
        assert sorted(rows) == sorted(s["org_id"] for s in scores), (seed, as_of)
        for want in scores:
            row = rows[want["org_id"]]
            assert set(want) == set(row) - {"as_of"}, (seed, set(want) ^ set(row))
            for k, v in want.items():
                if isinstance(v, float):
                    assert abs(row[k] - v) < 1e-9, (seed, every, days, as_of, row["org_id"], k, row[k], v)
                else:
                    assert row[k] == v, (seed, every, days, as_of, row["org_id"], k, row[k], v)


def test_debug_logging_names_each_report_stage_with_its_rows(lake):
    """`--log vitals=debug` says, for each stage of a report, how many rows it
    held and how long it took: health_scores' usage (a row per account and
    window with events), its one row of core modules, and its measures (a row
    per account signed up by as_of and window)."""
    proc = run("--log", "vitals=debug", "sql", "--lake", lake, "--format", "json", "SELECT * FROM health_scores('2026-09-30', 7)")
    stages = {}
    for line in proc.stderr.splitlines():
        if "report stage" in line:
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            stages[fields["stage"]] = (int(fields["rows"]), int(fields["elapsed_ms"]))
            assert fields["report"] == "health_scores", line
    assert list(stages) == ["usage", "core", "health"], proc.stderr
    assert stages["core"][0] == 1
    signed_up = sql_json(lake, "SELECT count(*) AS n FROM accounts WHERE signup_time IS NULL OR CAST(signup_time AS DATE) <= DATE '2026-09-30'")
    assert stages["health"][0] == 3 * signed_up[0]["n"], (stages, signed_up)
    # usage: a row per account and window with events in it.
    active = sql_json(lake, "SELECT count(*) AS n FROM (SELECT DISTINCT org_id, (CAST(DATE '2026-09-30' AS INT) - CAST(event_date AS INT)) / 7 AS w "
                            "FROM events WHERE event_date > DATE '2026-09-30' - INTERVAL '21 days' AND event_date <= DATE '2026-09-30')")
    assert stages["usage"][0] == active[0]["n"], (stages, active)


def test_alerts_equal_the_default_rules_evaluated_day_by_day(lake, tmp_path):
    """alerts(as_of, '14 days') against a brute force: health_scores run for
    each day of the lookback, the default rules evaluated in Python, and the
    run of days each rule has held up to as_of."""
    as_of = np.datetime64("2026-09-30")
    lookback = 14
    accounts = {r["org_id"]: r for r in sql_json(lake, "SELECT org_id, is_paid, renewal_date FROM accounts")}
    subs = ds.dataset(lake / "subscriptions", format="parquet").to_table().to_pylist()

    def mrr(org, day):
        return sum(s["mrr"] for s in subs if s["org_id"] == org and np.datetime64(s["starts_on"]) <= day and (s["ends_on"] is None or np.datetime64(s["ends_on"]) > day))

    def holds(rule, r, day):
        paid = bool(accounts[r["org_id"]]["is_paid"])
        renewal = accounts[r["org_id"]].get("renewal_date")
        to_renewal = None if renewal is None else int((np.datetime64(renewal) - day) / np.timedelta64(1, "D"))
        if rule == "red_health":
            return paid and r["band"] == "red"
        if rule == "key_users_inactive":
            return paid and r["key_users"] > 0 and r["key_users_active"] == 0
        if rule == "renewal_at_risk":
            return paid and to_renewal is not None and 0 <= to_renewal <= 90 and r["health"] < 50
        if rule == "health_dropped":
            return paid and r.get("health_change") is not None and r["health_change"] <= -20
        if rule == "mrr_contracted":
            return mrr(r["org_id"], day) - mrr(r["org_id"], day - np.timedelta64(lookback, "D")) < 0
        raise AssertionError(rule)

    rules = ["red_health", "key_users_inactive", "renewal_at_risk", "health_dropped", "mrr_contracted"]
    days = [as_of - np.timedelta64(k, "D") for k in range(lookback, -1, -1)]
    held = {}  # (org, rule) -> list of days it held, in order
    seen = {}  # org -> days it was scored
    for day in days:
        for r in sql_json(lake, f"SELECT * FROM health_scores('{day}', 7)"):
            seen.setdefault(r["org_id"], []).append(day)
            for rule in rules:
                if holds(rule, r, day):
                    held.setdefault((r["org_id"], rule), set()).add(day)
    want = {}
    for (org, rule), hit in held.items():
        if as_of not in hit:
            continue
        first = as_of
        for day in reversed(seen[org]):
            if day not in hit:
                break
            first = day
        want[(org, rule)] = str(first)
    got_rows = sql_json(lake, f"SELECT org_id, rule, severity, first_seen, reason FROM alerts('{as_of}', '{lookback} days')")
    got = {(r["org_id"], r["rule"]): r["first_seen"] for r in got_rows}
    assert len(got) == len(got_rows), "one row per account and rule"
    assert got == want
    assert {r["rule"] for r in got_rows} >= {"red_health", "key_users_inactive"}
    # The planted declines the CSM did not act on each raise at least one high alert.
    planted = planted_declines(lake)
    high = {r["org_id"] for r in got_rows if r["severity"] == "high"}
    for org in planted["declining"]:
        if org not in planted["intervened"]:
            assert org in high, org
    # Reasons carry the numbers: a red account's reason names its health.
    red = next(r for r in got_rows if r["rule"] == "red_health")
    assert "health " in red["reason"] and "red band" in red["reason"]


def planted_declines(lake):
    out = run("demo", "--lake", lake.parent / "planted-probe", "--force").stdout
    line = next(l for l in out.splitlines() if l.startswith("planted:"))
    declining = line.split("declining in the last 14 days: ")[1].split(";")[0].split(", ")
    intervened = line.split("CSM intervened at: ")[1].split(", ")
    return {"declining": declining, "intervened": intervened}


def test_alert_rules_from_the_config(lake, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text('[[alerts]]\nname = "fine"\nseverity = "low"\nwhen = "health < 10"\nreason = "\'x\'"\n\n'
                      '[[alerts]]\nname = "typo"\nseverity = "high"\nwhen = "helth < 10"\nreason = "\'x\'"\n')
    r = run("sql", "--lake", lake, "--config", broken, "SELECT 1", check=False)
    assert r.returncode != 0 and "alert rule typo does not plan" in r.stderr and "helth" in r.stderr, r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[alerts]]\nname = "x"\nseverity = "urgent"\nwhen = "true"\nreason = "\'x\'"\n')
    r = run("sql", "--lake", lake, "--config", bad, "SELECT 1", check=False)
    assert r.returncode != 0 and "alert rule x: severity 'urgent'" in r.stderr, r.stderr
    # A rule of one's own: every paying account with fewer than 3 active users, since when.
    own = tmp_path / "own.toml"
    own.write_text('[[alerts]]\nname = "few_users"\nseverity = "medium"\nwhen = "is_paid AND active_users < 3"\n'
                   'reason = "concat(active_users, \' active users\')"\n')
    rows = sql_json(lake, "SELECT org_id, rule, reason FROM alerts('2026-09-30', '7 days')", env={"VITALS_CONFIG": str(own)})
    want = sql_json(lake, "SELECT org_id, active_users FROM health_scores('2026-09-30', 7) WHERE is_paid AND active_users < 3")
    assert sorted(r["org_id"] for r in rows) == sorted(w["org_id"] for w in want)
    assert all(r["rule"] == "few_users" and r["reason"].endswith(" active users") for r in rows)
    none = tmp_path / "none.toml"
    none.write_text("alerts = []\n")
    assert sql_json(lake, "SELECT * FROM alerts()", env={"VITALS_CONFIG": str(none)}) == []
    r = run("sql", "--lake", lake, "SELECT * FROM alerts('2026-09-30', '12 hours')", check=False)
    assert r.returncode != 0 and "lookback must be a whole number of days" in r.stderr
