"""Revenue retention and its movements against an independent pandas
computation from the raw subscriptions: on the demo lake and on random
subscriptions (upgrades, downgrades, churn and a return inside one month),
for several period lengths; the ingest's checks on subscriptions."""

import json
import os
import random

import pandas as pd
import pyarrow.dataset as ds
import pytest

from conftest import ROOT, run, sql_json

FREQ = {"week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}
MONEY = ["mrr_start", "new", "expansion", "contraction", "churned", "reactivation", "mrr_end"]
LOGOS = ["logos_start", "logos_new", "logos_reactivated", "logos_churned", "logos_end"]


def expected_retention(subs: pd.DataFrame, period: str, start: str, end: str) -> list[dict]:
    """ChartMogul's movements, judged per account on its MRR on the day before
    each calendar period and on the period's last day (or `end`)."""
    subs = subs.copy()
    subs["starts_on"] = pd.to_datetime(subs["starts_on"])
    subs["ends_on"] = pd.to_datetime(subs["ends_on"])
    end_day = pd.Timestamp(end)
    paid = subs[subs["mrr"] > 0]
    first_paid = paid.groupby("org_id")["starts_on"].min()

    def mrr_on(day):
        live = subs[(subs["starts_on"] <= day) & (subs["ends_on"].isna() | (subs["ends_on"] > day))]
        return live.groupby("org_id")["mrr"].sum().round(6)

    out = []
    for p in pd.period_range(pd.Timestamp(start), end_day, freq=FREQ[period]):
        first = p.start_time.normalize()
        last = min(p.end_time.normalize(), end_day)
        before, after = mrr_on(first - pd.Timedelta(days=1)), mrr_on(last)
        orgs = sorted(set(before.index) | set(after.index))
        row = {k: 0.0 for k in MONEY} | {k: 0 for k in LOGOS}
        row["period_start"], row["period_end"] = first.date().isoformat(), last.date().isoformat()
        for org in orgs:
            s, e = float(before.get(org, 0.0)), float(after.get(org, 0.0))
            row["mrr_start"] += s
            row["mrr_end"] += e
            row["logos_start"] += s > 0
            row["logos_end"] += e > 0
            if s == 0 and e > 0:
                kind = "new" if first_paid[org] >= first else "reactivation"
                row[kind] += e
                row["logos_new" if kind == "new" else "logos_reactivated"] += 1
            elif s > 0 and e == 0:
                row["churned"] += s
                row["logos_churned"] += 1
            elif e > s:
                row["expansion"] += e - s
            elif e < s:
                row["contraction"] += s - e
        out.append(row)
    return out


def compare(got: list[dict], want: list[dict], label: str):
    assert [g["period_start"] for g in got] == [w["period_start"] for w in want], label
    for g, w in zip(got, want):
        where = f"{label} {w['period_start']}"
        assert g["period_end"] == w["period_end"], where
        for k in MONEY:
            assert abs(g[k] - w[k]) < 1e-6 * max(1.0, abs(w[k])), (where, k, g[k], w[k])
        for k in LOGOS:
            assert g[k] == w[k], (where, k, g[k], w[k])
        # The identity every period must keep.
        moved = g["mrr_start"] + g["new"] + g["reactivation"] + g["expansion"] - g["contraction"] - g["churned"]
        assert abs(moved - g["mrr_end"]) < 1e-6 * max(1.0, g["mrr_end"]), where
        assert g["logos_start"] + g["logos_new"] + g["logos_reactivated"] - g["logos_churned"] == g["logos_end"], where
        if w["mrr_start"] > 0:
            nrr = 100 * (w["mrr_start"] + w["expansion"] - w["contraction"] - w["churned"]) / w["mrr_start"]
            grr = 100 * (w["mrr_start"] - w["contraction"] - w["churned"]) / w["mrr_start"]
            assert abs(g["nrr_pct"] - nrr) < 1e-9 and abs(g["grr_pct"] - grr) < 1e-9, where
        else:
            assert g.get("nrr_pct") is None and g.get("grr_pct") is None, where


def check_movements(lake, period: str, start: str, end: str, totals: list[dict]):
    """revenue_movements adds up to revenue_retention's totals, period by period."""
    moves = sql_json(lake, f"SELECT * FROM revenue_movements('{start}', '{end}', '{period}')")
    for t in totals:
        mine = [m for m in moves if m["period_start"] == t["period_start"]]
        for kind, col in [("new", "new"), ("reactivation", "reactivation"), ("expansion", "expansion")]:
            got = sum(m["mrr_change"] for m in mine if m["kind"] == kind)
            assert abs(got - t[col]) < 1e-6 * max(1.0, t[col]), (t["period_start"], kind)
        for kind in ["contraction", "churned"]:
            got = -sum(m["mrr_change"] for m in mine if m["kind"] == kind)
            assert abs(got - t[kind]) < 1e-6 * max(1.0, t[kind]), (t["period_start"], kind)
        assert sum(m["kind"] == "churned" for m in mine) == t["logos_churned"]
        assert sum(m["kind"] == "new" for m in mine) == t["logos_new"]
        for m in mine:
            assert m["period_start"] <= m["changed_on"] <= t["period_end"], m
            assert (m["mrr_after"] - m["mrr_before"]) == pytest.approx(m["mrr_change"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("revenue") / "lake"
    out = run("demo", "--lake", path).stdout
    return path, out


def test_revenue_retention_on_the_demo_equals_pandas(demo):
    lake, out = demo
    subs = ds.dataset(lake / "subscriptions", format="parquet").to_table().to_pandas()
    # The demo's accounts pay what their subscriptions say: arr = 12 x the MRR in force today.
    accounts = ds.dataset(lake / "accounts", format="parquet").to_table().to_pandas().set_index("org_id")
    current = subs[subs["ends_on"].isna()].groupby("org_id")["mrr"].sum()
    for org, arr in accounts["arr"].items():
        assert abs(arr - 12 * current.get(org, 0.0)) < 1e-6, org
    for period, start in [("month", "2026-01-01"), ("quarter", "2025-11-15"), ("week", "2026-07-03")]:
        got = sql_json(lake, f"SELECT * FROM revenue_retention('{period}', '{start}', '2026-09-30') ORDER BY period_start")
        want = expected_retention(subs, period, start, "2026-09-30")
        compare(got, want, f"demo {period}")
        check_movements(lake, period, start, "2026-09-30", got)
    # What the demo says it planted shows: each churned account churns in its month.
    churned_line = next(l for l in out.splitlines() if l.startswith("stopped paying:"))
    planted = dict(x.split(" on ") for x in churned_line.split(": ", 1)[1].split(" (")[0].split(", "))
    assert len(planted) >= 3
    moves = sql_json(lake, "SELECT org_id, kind, changed_on FROM revenue_movements('2026-07-01', '2026-09-30')")
    churned = {m["org_id"]: m["changed_on"] for m in moves if m["kind"] == "churned" and m["org_id"] in planted}
    assert churned == planted
    kinds = {m["kind"] for m in moves}
    assert kinds == {"new", "expansion", "contraction", "churned", "reactivation"}, kinds


def random_subscriptions(rng: random.Random) -> pd.DataFrame:
    rows = []
    day0 = pd.Timestamp("2023-01-01")
    for a in range(60):
        org = f"org-{a:03d}"
        for k in range(rng.randint(1, 3)):
            t = day0 + pd.Timedelta(days=rng.randint(0, 600))
            spans = rng.randint(1, 5)
            for i in range(spans):
                length = rng.choice([rng.randint(1, 20), rng.randint(20, 150)])
                mrr = 0.0 if rng.random() < 0.08 else round(rng.uniform(10, 900), 2)
                last = i == spans - 1
                ends = None if (last and rng.random() < 0.5) else t + pd.Timedelta(days=length)
                rows.append({"org_id": org, "subscription_id": f"{org}-s{k}", "plan": rng.choice(["starter", "pro", "team"]),
                             "mrr": mrr, "starts_on": t.date().isoformat(),
                             "ends_on": None if ends is None else ends.date().isoformat(), "seats": rng.randint(1, 50)})
                if ends is None:
                    break
                # The next span: at once (a plan change), or after a gap (churn, then a return, often in the same month).
                t = ends + pd.Timedelta(days=rng.choice([0, 0, rng.randint(1, 12), rng.randint(12, 90)]))
    return pd.DataFrame(rows)


def test_revenue_retention_on_random_subscriptions_equals_pandas(tmp_path):
    seed = int(os.environ.get("VITALS_REVENUE_SEED", random.randrange(1 << 30)))
    print(f"revenue seed {seed} (VITALS_REVENUE_SEED={seed} repeats it)")
    subs = random_subscriptions(random.Random(seed))
    csv = tmp_path / "subscriptions.csv"
    subs.to_csv(csv, index=False)
    lake = tmp_path / "lake"
    run("ingest", "--lake", lake, "--table", "subscriptions", csv)
    for period, start, end in [("month", "2023-02-14", "2024-11-20"), ("quarter", "2023-01-01", "2025-03-31"), ("week", "2023-06-01", "2023-10-01"), ("year", "2023-01-01", "2025-12-31")]:
        got = sql_json(lake, f"SELECT * FROM revenue_retention('{period}', '{start}', '{end}') ORDER BY period_start")
        compare(got, expected_retention(subs, period, start, end), f"seed {seed} {period}")
        check_movements(lake, period, start, end, got)


def test_subscriptions_written_by_another_tool_are_read_as_declared(tmp_path):
    """A pipeline's own file: timestamps for dates, whole-number MRR in int32,
    dictionary strings, no seats column, in a folder of its choosing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    seed = int(os.environ.get("VITALS_REVENUE_SEED", random.randrange(1 << 30)))
    print(f"revenue seed {seed}")
    subs = random_subscriptions(random.Random(seed))
    subs["mrr"] = subs["mrr"].round()
    table = pa.table({
        "org_id": pa.array(subs["org_id"]).dictionary_encode(),
        "subscription_id": subs["subscription_id"],
        "plan": pa.array(subs["plan"]).dictionary_encode(),
        "mrr": pa.array(subs["mrr"].astype("int32")),
        "starts_on": pa.array(pd.to_datetime(subs["starts_on"]), pa.timestamp("ms")),
        "ends_on": pa.array(pd.to_datetime(subs["ends_on"]), pa.timestamp("ms")),
    })
    folder = tmp_path / "lake" / "subscriptions" / "loaded=2024-12-01"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "part-0.parquet")
    lake = tmp_path / "lake"
    got = sql_json(lake, "SELECT * FROM revenue_retention('month', '2023-01-01', '2024-12-31') ORDER BY period_start")
    compare(got, expected_retention(subs, "month", "2023-01-01", "2024-12-31"), f"seed {seed} foreign file")


def test_subscriptions_ingest_refuses_what_breaks_the_contract(tmp_path):
    lake = tmp_path / "lake"
    good = tmp_path / "good.csv"
    good.write_text("org_id,subscription_id,plan,mrr,starts_on,ends_on,seats\n"
                    "acme,s1,starter,100,2024-01-01,2024-02-01,5\n"
                    "acme,s1,pro,250,2024-02-01,,9\n")
    run("ingest", "--lake", lake, "--table", "subscriptions", good)
    before = sorted(p.name for p in (lake / "subscriptions").iterdir())

    def refused(text, *needles):
        bad = tmp_path / "bad.csv"
        bad.write_text("org_id,subscription_id,plan,mrr,starts_on,ends_on,seats\n" + text)
        r = run("ingest", "--lake", lake, "--table", "subscriptions", bad, check=False)
        assert r.returncode != 0, text
        for n in needles:
            assert n in r.stderr, (n, r.stderr)
        # Nothing changed: the same files, the same rows.
        assert sorted(p.name for p in (lake / "subscriptions").iterdir()) == before
        assert sql_json(lake, "SELECT count(*) AS n FROM subscriptions")[0]["n"] == 2

    # Overlapping rows of one subscription, one of them already in the lake: both named.
    refused("acme,s1,pro,300,2024-03-01,,9\n", "overlap", "s1", "2024-02-01", "2024-03-01")
    refused("beta,s2,pro,10,2024-01-01,2024-03-01,1\nbeta,s2,pro,20,2024-02-15,,1\n", "overlap", "s2", "2024-02-15")
    refused("beta,s1,pro,10,2025-01-01,,1\n", "two accounts", "acme", "beta")
    refused("beta,s3,pro,-5,2024-01-01,,1\n", "line 2", "mrr", "at least 0")
    refused("beta,s3,pro,5,2024-03-01,2024-03-01,1\n", "ends_on", "after starts_on")
    refused("beta,s3,pro,,2024-03-01,,1\n", "mrr", "missing value")
    # Keyed by subscription_id and starts_on: a row given again replaces the old one.
    fix = tmp_path / "fix.csv"
    fix.write_text("org_id,subscription_id,plan,mrr,starts_on,ends_on,seats\nacme,s1,pro,260,2024-02-01,,9\n")
    run("ingest", "--lake", lake, "--table", "subscriptions", fix)
    rows = sql_json(lake, "SELECT mrr FROM subscriptions ORDER BY starts_on")
    assert [r["mrr"] for r in rows] == [100.0, 260.0]


def test_revenue_reports_on_a_lake_without_subscriptions_say_so(tmp_path):
    lake = tmp_path / "lake"
    for t in ["accounts", "users", "events"]:
        run("ingest", "--lake", lake, "--table", t, ROOT / "data" / "fixture" / f"{t}.csv")
    for report in ["revenue_retention", "revenue_movements"]:
        r = run("sql", "--lake", lake, f"SELECT * FROM {report}()", check=False)
        assert r.returncode != 0 and "has no subscriptions" in r.stderr and "vitals ingest --table subscriptions" in r.stderr, r.stderr
    # The other reports still work.
    rows = sql_json(lake, "SELECT org_id FROM health_scores('2024-01-14', 7) ORDER BY org_id")
    assert [r["org_id"] for r in rows] == ["acme", "beta", "coda"]
    listing = json.loads(run("report", "--lake", lake, "--format", "json", "account_usage", "2024-01-14", "7").stdout)
    assert len(listing) == 3
    # And the account's timeline, without subscription rows.
    story = sql_json(lake, "SELECT kind FROM account_timeline('acme', '2023-12-31', '2024-01-15')")
    kinds = {r["kind"] for r in story}
    assert "usage" in kinds and "subscription" not in kinds, kinds
    effect = sql_json(lake, "SELECT mrr_before, mrr_change_pct, matched_mrr_accounts FROM intervention_effect(7)")
    assert effect == [] or all(r["mrr_before"] is None and r["mrr_change_pct"] is None for r in effect)


def test_intervention_mrr_outcome_equals_pandas(demo):
    """intervention_effect's MRR columns from the raw subscriptions: MRR in
    force on the intervention day and 90 days later (cut at the last day with
    events), its change, and the effect = change - the matched accounts'."""
    lake, _ = demo
    subs = ds.dataset(lake / "subscriptions", format="parquet").to_table().to_pandas()
    subs["starts_on"] = pd.to_datetime(subs["starts_on"])
    subs["ends_on"] = pd.to_datetime(subs["ends_on"])
    last = pd.Timestamp(sql_json(lake, "SELECT CAST(max(event_date) AS VARCHAR) AS d FROM events")[0]["d"])

    def mrr(org, day):
        s = subs[(subs["org_id"] == org) & (subs["starts_on"] <= day) & (subs["ends_on"].isna() | (subs["ends_on"] > day))]
        return float(s["mrr"].sum())

    rows = sql_json(lake, "SELECT * FROM intervention_effect(7)")
    assert rows
    for r in rows:
        day = pd.Timestamp(r["at"][:10])
        end = min(day + pd.Timedelta(days=90), last)
        assert r["mrr_days_after"] == (end - day).days
        if not (subs["org_id"] == r["org_id"]).any():
            # An account without subscriptions has no MRR, not 0.
            assert r.get("mrr_before") is None and r.get("mrr_change_pct") is None, r
            continue
        before, after = mrr(r["org_id"], day), mrr(r["org_id"], end)
        assert r["mrr_before"] == pytest.approx(before, abs=1e-5), r
        assert r["mrr_after"] == pytest.approx(after, abs=1e-5), r
        if before > 0:
            assert r["mrr_change_pct"] == pytest.approx(100 * (after - before) / before, abs=1e-6), r
        else:
            assert r.get("mrr_change_pct") is None
        assert r["matched_mrr_accounts"] <= r["matched_accounts"]
        if r.get("matched_mrr_change_pct") is not None and r.get("mrr_change_pct") is not None:
            assert r["mrr_effect_pct_points"] == pytest.approx(r["mrr_change_pct"] - r["matched_mrr_change_pct"])
        else:
            assert r.get("mrr_effect_pct_points") is None
    # The demo's interventions are on paying accounts with paying matches.
    assert any(r["matched_mrr_accounts"] > 0 and r.get("mrr_effect_pct_points") is not None for r in rows)
