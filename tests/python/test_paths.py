"""paths, path_edges, funnel_dropoffs, funnel_correlation and the account as
the unit, on the demo lake, against brute-force computations over its raw
Parquet files (pandas), independent of vitals' SQL."""

import datetime as dt
import math
import os
import random

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from conftest import sql_json, write_partitions

DAY_US = 86_400_000_000
SEED = int(os.environ.get("VITALS_PATHS_SEED", random.randrange(1 << 30)))


@pytest.fixture(scope="module")
def events(demo_lake):
    t = ds.dataset(demo_lake / "events", format="parquet", partitioning="hive").to_table(columns=["user_id", "org_id", "event", "event_time"])
    df = pd.DataFrame(
        {
            "user_id": t["user_id"].to_pylist(),
            "org_id": t["org_id"].to_pylist(),
            "event": t["event"].to_pylist(),
            "t": pc.cast(t["event_time"], "int64").to_numpy(),
        }
    )
    return df.sort_values(["t", "event"], kind="stable").reset_index(drop=True)


def brute_paths(events, start, end, steps, window_us, unit="user_id", ignore=()):
    """Each unit's path as the README defines it, by a loop over its events."""
    ev = events[~events["event"].isin(ignore)]
    out = {}
    for key, g in ev.groupby(unit, sort=False):
        rows = list(zip(g["t"], g["event"]))
        anchor_event = start or end
        if anchor_event:
            hits = [r for r in rows if r[1] == anchor_event]
            if not hits:
                continue
            a = hits[0]
        else:
            a = rows[0]
        reached = None
        if start:
            stop = None
            if end:
                later = [r for r in rows if r[1] == end and r > a and r[0] <= a[0] + window_us]
                stop = later[0] if later else None
                reached = stop is not None
            inside = [r for r in rows if r >= a and r[0] <= a[0] + window_us and (stop is None or r <= stop)]
        elif end:
            inside = [r for r in rows if r <= a and r[0] >= a[0] - window_us]
            reached = True
        else:
            inside = [r for r in rows if r[0] >= a[0] and r[0] <= a[0] + window_us]
        collapsed = []
        for _, e in inside:
            if not collapsed or collapsed[-1] != e:
                collapsed.append(e)
        path = tuple(collapsed[:steps] if (start or not end) else collapsed[-steps:])
        out[key] = (path, reached)
    return out


def check_paths(lake, events, args_sql, start, end, steps, window_us, unit="user_id", ignore=()):
    brute = brute_paths(events, start, end, steps, window_us, unit, ignore)
    counts = {}
    for path, reached in brute.values():
        n, r = counts.get(path, (0, 0))
        counts[path] = (n + 1, r + (1 if reached else 0))
    total = len(brute)
    assert total > 20, f"too few units at the anchor ({total}) for a meaningful check"
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1][0], " → ".join(kv[0])))
    rows = sql_json(lake, f"SELECT * FROM paths({args_sql}, 1000) ORDER BY rank")
    listed = [r for r in rows if r["path_text"] != "other"]
    assert [tuple(r["path"]) for r in listed] == [p for p, _ in ranked]
    assert [r["users"] for r in listed] == [c[0] for _, c in ranked]
    for r, (path, (n, reached)) in zip(listed, ranked):
        assert r["path_text"] == " → ".join(path) and r["steps"] == len(path)
        assert math.isclose(r["share_pct"], 100.0 * n / total, rel_tol=1e-9)
        if end:
            assert math.isclose(r["reached_end_pct"], 100.0 * reached / n, rel_tol=1e-9)
        else:
            assert r.get("reached_end_pct") is None
    # With the top 3 listed, 'other' holds the rest and the shares add up to 100.
    top = sql_json(lake, f"SELECT * FROM paths({args_sql}, 3) ORDER BY rank")
    assert len(top) == 4 and top[-1]["path_text"] == "other" and top[-1]["rank"] == 4
    assert top[-1]["users"] == sum(c[0] for _, c in ranked[3:])
    assert math.isclose(sum(r["share_pct"] for r in top), 100.0, rel_tol=1e-9)
    # path_edges: every consecutive pair of every path, by step.
    edges = {}
    for path, _ in brute.values():
        for k in range(len(path) - 1):
            key = (k + 1, path[k], path[k + 1])
            edges[key] = edges.get(key, 0) + 1
    got = {(r["step"], r["from_event"], r["to_event"]): r["users"] for r in sql_json(lake, f"SELECT * FROM path_edges({args_sql})")}
    assert got == edges
    return ranked


def test_paths_after_a_start_event_equal_a_brute_force(demo_lake, events):
    ranked = check_paths(demo_lake, events, "'signup', '', 5, '1 day', 'user', NULL, NULL, ''", "signup", "", 5, DAY_US)
    assert all(p[0] == "signup" for p, _ in ranked)


def test_the_planted_onboarding_step_is_the_top_path_after_signup(demo_lake):
    # The demo's onboarding: after signing up most users create a project
    # (and some build a dashboard first); the session's own events are ignored.
    noise = "login,page_view,export_report,share_dashboard,run_query,api_call,create_alert"
    rows = sql_json(demo_lake, f"SELECT * FROM paths('signup', '', 2, '30 days', 'user', NULL, NULL, '{noise}', 5) ORDER BY rank")
    assert rows[0]["path"] == ["signup", "create_project"]
    assert rows[0]["share_pct"] > 50


@pytest.fixture(scope="module")
def random_lake(tmp_path_factory):
    """Events a foreign pipeline wrote: random streams over a small alphabet,
    many equal timestamps (and exact duplicates), several users per account,
    in files partitioned by load date (one day after the events' day, not the
    event date), each day's rows shuffled over two files."""
    rng = random.Random(SEED)
    print(f"paths seed {SEED}")
    alphabet = ["a", "b", "c", "d", "e"]
    base = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    rows = []
    for u in range(600):
        org = f"org{u % 40:02d}"
        start = rng.randint(0, 6 * 86_400)
        for _ in range(rng.randint(1, 14)):
            t = base + dt.timedelta(seconds=start + rng.choice([0, 0, 30, 600, 3_600, 40_000, 90_000]) * rng.randint(0, 3))
            rows.append((t, org, f"u{u:04d}", rng.choices(alphabet, [30, 20, 20, 15, 15])[0]))
    rng.shuffle(rows)
    table = pa.table(
        {
            "event_time": pa.array([r[0] for r in rows], type=pa.timestamp("us", tz="UTC")),
            "org_id": [r[1] for r in rows],
            "user_id": [r[2] for r in rows],
            "event": [r[3] for r in rows],
        }
    )
    root = tmp_path_factory.mktemp("paths") / "lake"
    loaded = [(r[0] + dt.timedelta(days=1)).strftime("%Y-%m-%d") for r in rows]
    write_partitions(table, root / "events", "load_date", loaded, 2)
    df = pd.DataFrame({"user_id": [r[2] for r in rows], "org_id": [r[1] for r in rows], "event": [r[3] for r in rows], "t": pc.cast(table["event_time"], "int64").to_numpy()})
    return root, df.sort_values(["t", "event"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize(
    "start,end,steps,window_s,unit,ignore",
    [
        ("a", "", 4, 86_400, "user", ""),
        ("", "c", 3, 7_200, "user", ""),
        ("b", "e", 5, 2 * 86_400, "user", "d"),
        ("", "", 3, 3_600, "user", ""),
        ("a", "", 6, 86_400, "account", "b"),
        ("c", "a", 4, 86_400, "account", ""),
    ],
)
def test_paths_on_a_random_foreign_lake_equal_a_brute_force(random_lake, start, end, steps, window_s, unit, ignore):
    lake, events = random_lake
    args = f"'{start}', '{end}', {steps}, '{window_s} seconds', '{unit}', NULL, NULL, '{ignore}'"
    column = "org_id" if unit == "account" else "user_id"
    ranked = check_paths(lake, events, args, start, end, steps, window_s * 1_000_000, column, tuple(x for x in ignore.split(",") if x))
    assert ranked, f"seed {SEED}: no paths"


def test_paths_leading_to_an_end_event_and_between_two_equal_a_brute_force(demo_lake, events):
    ranked = check_paths(demo_lake, events, "'', 'upgrade', 4, '7 days', 'user', NULL, NULL, ''", "", "upgrade", 4, 7 * DAY_US)
    assert all(p[-1] == "upgrade" for p, _ in ranked)
    check_paths(demo_lake, events, "'signup', 'upgrade', 6, '14 days', 'user', NULL, NULL, 'page_view'", "signup", "upgrade", 6, 14 * DAY_US, ignore=("page_view",))


def test_paths_by_account_equal_a_brute_force(demo_lake, events):
    check_paths(demo_lake, events, "'login', '', 4, '2 hours', 'account', NULL, NULL, 'page_view'", "login", "", 4, 7200 * 1_000_000, unit="org_id", ignore=("page_view",))


def test_funnel_by_account_equals_window_funnel_grouped_by_org_id(demo_lake):
    steps = "signup,create_project,invite_user,upgrade"
    conds = ", ".join(f"event = '{e}'" for e in steps.split(","))
    levels = sql_json(demo_lake, f"SELECT window_funnel(INTERVAL '14 days', event_time, {conds}) AS level FROM events GROUP BY org_id")
    lv = np.array([r["level"] for r in levels])
    rows = sql_json(demo_lake, f"SELECT step, users FROM funnel('{steps}', '14 days', '', '', NULL, NULL, 'account') ORDER BY step")
    assert [r["users"] for r in rows] == [int((lv >= k).sum()) for k in range(1, 5)]
    by_user = sql_json(demo_lake, f"SELECT step, users FROM funnel('{steps}', '14 days') ORDER BY step")
    assert rows[0]["users"] < by_user[0]["users"], "accounts are fewer than their users"


def test_retention_matrix_by_account_equals_a_brute_force_over_accounts(demo_lake, events):
    # Weeks start on Monday (UTC dates); an account's cohort is the week of its
    # first sign-up by any member; it is retained in week k if any member logs in.
    day = events["t"] // DAY_US
    week = day - (day + 3) % 7  # 1970-01-01 was a Thursday
    ev = events.assign(week=week)
    first_week, last_week = int(ev["week"].min()), int(ev["week"].max())
    cohort = ev[ev["event"] == "signup"].groupby("org_id")["week"].min()
    cohort = cohort[cohort >= first_week]
    logins = ev[ev["event"] == "login"].groupby("org_id")["week"].agg(set)
    want = {}
    for p in sorted(set(cohort)):
        members = cohort[cohort == p].index
        for k in range(5):
            n = sum(1 for o in members if p + 7 * k in logins.get(o, set()))
            want[(int(p) * DAY_US, k)] = (len(members), n if p + 7 * k <= last_week else None)
    rows = sql_json(demo_lake, "SELECT CAST(CAST(cohort_start AS TIMESTAMP) AS BIGINT) / 1000 AS p, period_k, cohort_users, retained_users FROM retention_matrix('signup', 'login', 'week', 4, 'first_time', NULL, NULL, 'account') WHERE cohort_start IS NOT NULL")
    got = {(r["p"], r["period_k"]): (r["cohort_users"], r.get("retained_users")) for r in rows}
    assert len(want) > 20 and got == want
    by_user = sql_json(demo_lake, "SELECT sum(cohort_users) AS n FROM retention_matrix('signup', 'login', 'week', 4) WHERE cohort_start IS NOT NULL AND period_k = 0")
    assert by_user[0]["n"] > sum(v[0] for (p, k), v in want.items() if k == 0), "accounts are fewer than their users"


def test_funnel_dropoffs_are_funnels_dropped_users_with_their_next_events(demo_lake, events):
    steps = "signup,create_project,invite_user,upgrade"
    funnel = {r["step"]: r for r in sql_json(demo_lake, f"SELECT * FROM funnel('{steps}', '14 days')")}
    by_user = {u: g for u, g in events.groupby("user_id", sort=False)}
    seen_any = False
    for step in (1, 2, 3):
        rows = sql_json(demo_lake, f"SELECT user_id, org_id, step_event, missed_event, CAST(reached_at AS BIGINT) AS reached, next_events FROM funnel_dropoffs('{steps}', '14 days', {step}, '', NULL, NULL, 100000)")
        assert len(rows) == funnel[step + 1]["dropped"], step
        assert len({r["user_id"] for r in rows}) == len(rows)
        for r in rows[:300]:
            g = by_user[r["user_id"]]
            assert r["step_event"] == steps.split(",")[step - 1] and r["missed_event"] == steps.split(",")[step]
            # reached_at is one of the user's step events; the next events follow it.
            assert ((g["t"] == r["reached"]) & (g["event"] == r["step_event"])).any()
            after = g[g["t"] > r["reached"]]
            assert (r.get("next_events") or []) == list(after["event"][:3])
            assert r["org_id"] == g["org_id"].iloc[0]
            seen_any = seen_any or bool(r.get("next_events"))
    assert seen_any


def test_funnel_correlation_equals_odds_ratios_worked_from_the_raw_events(demo_lake, events):
    window = 14 * DAY_US
    accounts = ds.dataset(demo_lake / "accounts", format="parquet").to_table(columns=["org_id", "plan"]).to_pandas()
    plan = dict(zip(accounts["org_id"], accounts["plan"]))
    signups = events[events["event"] == "signup"]
    assert signups["user_id"].is_unique, "the demo's users sign up once"
    by_user = {u: g for u, g in events.groupby("user_id", sort=False)}
    success, failure = 0, 0
    cells = {}
    for _, s in signups.iterrows():
        g = by_user[s["user_id"]]
        t_in = s["t"]
        ups = g[(g["event"] == "upgrade") & (g["t"] >= t_in) & (g["t"] <= t_in + window)]
        converted = len(ups) > 0
        t_out = ups["t"].min() if converted else t_in + window
        inside = g[(g["t"] >= t_in) & (g["t"] <= t_out) & ~g["event"].isin(["signup", "upgrade"])]
        features = {("event", e, None) for e in inside["event"]}
        features.add(("property", "plan", plan[s["org_id"]]))
        if converted:
            success += 1
        else:
            failure += 1
        for f in features:
            a, b = cells.get(f, (0, 0))
            cells[f] = (a + converted, b + (not converted))
    assert success > 20 and failure > 20
    rows = sql_json(demo_lake, "SELECT * FROM funnel_correlation('signup,upgrade', '14 days', '', NULL, NULL, 'plan') ORDER BY rank")
    assert len(rows) == len(cells)
    for r in rows:
        a, b = cells[(r["kind"], r["name"], r.get("value"))]
        c, d = success - a, failure - b
        assert (r["success_with"], r["failure_with"], r["success_without"], r["failure_without"]) == (a, b, c, d)
        k = 0.5 if 0 in (a, b, c, d) else 0.0
        ln_or = math.log((a + k) * (d + k) / ((b + k) * (c + k)))
        se = math.sqrt(1 / (a + k) + 1 / (b + k) + 1 / (c + k) + 1 / (d + k))
        assert math.isclose(r["odds_ratio"], math.exp(ln_or), rel_tol=1e-9)
        assert math.isclose(r["ci_low"], math.exp(ln_or - 1.959963984540054 * se), rel_tol=1e-9)
        assert math.isclose(r["ci_high"], math.exp(ln_or + 1.959963984540054 * se), rel_tol=1e-9)
        lo, hi = ln_or - 1.959963984540054 * se, ln_or + 1.959963984540054 * se
        assert r["correlation"] == ("success" if lo > 0 else "failure" if hi < 0 else "none")
    # Rows with evidence (an interval excluding 1) first, each part by strength.
    key = [(r["correlation"] == "none", -abs(math.log(r["odds_ratio"]))) for r in rows]
    assert all(x[0] < y[0] or (x[0] == y[0] and x[1] <= y[1] + 1e-9) for x, y in zip(key, key[1:])), "ranked by evidence, then strength"
    # The planted behaviour: engaged users build dashboards and upgrade more often.
    dash = [r for r in rows if r["kind"] == "event" and r["name"] == "create_dashboard"]
    assert dash and dash[0]["correlation"] == "success" and dash[0]["ci_low"] > 1
    # An event every entrant did has nobody to compare with: no evidence.
    for r in rows:
        if r["success_without"] + r["failure_without"] == 0:
            assert r["correlation"] == "none"


# The readable bin widths of funnel_time_to_convert, in seconds, as the README lists them.
WIDTHS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
          86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400, 180 * 86400, 365 * 86400]


@pytest.mark.parametrize("second, window_days, bins", [("upgrade", 14, 20), ("upgrade", 14, 7), ("create_project", 7, 50)])
def test_funnel_time_to_convert_equals_a_histogram_of_the_raw_times(demo_lake, events, second, window_days, bins):
    # Every demo user signs up once, so a two-step chain is the sign-up and the
    # first `second` event at or after it within the window.
    window = window_days * DAY_US
    signup = events[events["event"] == "signup"].groupby("user_id")["t"].min()
    later = events[events["event"] == second].merge(signup.rename("t0"), left_on="user_id", right_index=True)
    later = later[(later["t"] >= later["t0"]) & (later["t"] <= later["t0"] + window)]
    times = (later.groupby("user_id")["t"].min() - later.groupby("user_id")["t0"].min()).to_numpy()
    assert len(times) > 20
    slowest = int(times.max())
    width = next(w for w in WIDTHS if slowest < bins * w * 1_000_000)
    counts = np.bincount(times // (width * 1_000_000))
    rows = sql_json(demo_lake, f"SELECT * FROM funnel_time_to_convert('signup,{second}', '{window_days} days', 1, 0, {bins}) ORDER BY bin")
    assert [r["bin"] for r in rows] == list(range(1, len(counts) + 1)) and len(rows) <= bins
    assert [r["users"] for r in rows] == counts.tolist()
    assert [(r["from_seconds"], r["to_seconds"]) for r in rows] == [(k * width, (k + 1) * width) for k in range(len(counts))]
    assert math.isclose(rows[-1]["cumulative_pct"], 100.0) and math.isclose(sum(r["share_pct"] for r in rows), 100.0)
    # The narrowest width: the next narrower one would need more than `bins` bins.
    narrower = [w for w in WIDTHS if w < width]
    assert not narrower or slowest >= bins * narrower[-1] * 1_000_000
    funnel = sql_json(demo_lake, f"SELECT users FROM funnel('signup,{second}', '{window_days} days') WHERE step = 2")
    assert sum(r["users"] for r in rows) == funnel[0]["users"] == len(times)
