"""The dashboard in a real headless Chromium (Debian's, driven by
playwright-core from tests/browser): a CSM signs in and sees only their
accounts, clicks a declining account and finds its usage chart and key users;
an analyst sees every account and every page. Each chart must have drawn as
many marks as its data has rows, the pages must log no console error, and a
screenshot of each page is written (to $VITALS_SHOTS, or the test's folder)."""

import datetime as dt
import json
import os
import shutil
import subprocess
import re
from pathlib import Path

import pytest

from conftest import sql_json, vitals_bin
from server_util import Server, role_tokens
from test_web import get_json, report_path

# The demo's CSM with three of the planted declining accounts (org-00025 first).
CSM = "carla.rossi"
PLANTED = {"org-00025", "org-00033", "org-00077"}
BROWSER = Path(__file__).resolve().parent.parent / "browser"


@pytest.fixture(scope="module")
def server(demo_lake, tmp_path_factory):
    config = tmp_path_factory.mktemp("dash") / "vitals.toml"
    config.write_text(role_tokens(CSM, "org-00025"))
    s = Server(demo_lake, config)
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def first_run(demo_lake):
    """`vitals serve` with no config on loopback, and the URL it prints."""
    proc = subprocess.Popen([vitals_bin(), "serve", "--lake", str(demo_lake), "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = None
        for _ in range(10):
            m = re.search(r"open the dashboard, signed in: (\S+)", proc.stdout.readline())
            if m:
                url = m.group(1)
                break
        assert url, "vitals serve printed no dashboard URL"
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def seen(server, first_run, tmp_path_factory):
    """What the browser saw, by page name, and the run's errors."""
    if not shutil.which("node") or not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists():
        pytest.fail("the dashboard test needs node and /usr/bin/chromium (tests/run.sh installs them)")
    if not (BROWSER / "node_modules" / "playwright-core").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER, check=True)
    shots = Path(os.environ.get("VITALS_SHOTS") or tmp_path_factory.mktemp("shots"))
    env = dict(os.environ)
    env.update(
        VITALS_URL=f"http://127.0.0.1:{server.port}",
        VITALS_CSM_TOKEN="csm-secret",
        VITALS_ANALYST_TOKEN="analyst-secret",
        VITALS_SHOTS=str(shots),
        VITALS_FIRST_URL=first_run,
    )
    run = subprocess.run(["node", "dashboard.mjs"], cwd=BROWSER, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[:2000] + "\n...\n" + run.stderr[-2000:]
    out = json.loads(run.stdout)
    return {v["name"]: v for v in out["visits"]}, out["errors"], shots


def last_day_of(server):
    return get_json(server.port, "/api/v1/me")["last_day"]


def first_day_of(server):
    """The first day the dashboard's trends show: 89 days before the last, or the lake's first."""
    me = get_json(server.port, "/api/v1/me")
    last = dt.date.fromisoformat(me["last_day"])
    return max(dt.date.fromisoformat(me["first_day"]), last - dt.timedelta(days=89)).isoformat()


def api(server, name, token="analyst-secret", **args):
    return get_json(server.port, report_path(name, args), token=token)["rows"]


def test_the_first_run_link_opens_the_dashboard_signed_in(seen):
    visits, _, _ = seen
    page = visits["first-run"]
    # An admin's home, not the sign-in page, and the token gone from the address bar.
    assert page["hash"].startswith("#/overview"), page["hash"]
    assert "token" not in page["url"] and page["title"] == "Overview"
    assert {c["id"] for c in page["charts"]} == {"activity", "bands", "renewals", "revenue"}


def test_no_console_errors(seen):
    _, errors, _ = seen
    assert errors == []


def test_every_chart_drew_a_mark_per_row(seen):
    visits, _, _ = seen
    checked = 0
    for name, v in visits.items():
        assert v["alerts"] == [], (name, v["alerts"])
        for c in v["charts"]:
            assert c["rows"] > 0, (name, c)
            if c["marks"] == "each":
                assert all(n == c["rows"] for n in c["drawn"]), (name, c)
            else:
                assert sum(c["drawn"]) == c["rows"], (name, c)
            checked += 1
    assert checked >= 15


def test_screenshots_written(seen):
    visits, _, shots = seen
    for name in visits:
        png = shots / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert png.stat().st_size > 20_000, png


def test_a_csm_sees_only_their_accounts(server, demo_lake, seen):
    visits, _, _ = seen
    mine = {r["org_id"] for r in sql_json(demo_lake, f"SELECT org_id FROM accounts WHERE csm = '{CSM}'")}
    page = visits["csm-accounts"]
    assert page["hash"].startswith("#/accounts"), page["hash"]
    shown = set(page["orgs"])
    assert shown and shown <= mine, shown - mine
    # The list of accounts is every one of theirs that health_scores rates.
    listed = next(t for t in page["tables"] if t["title"] == "Accounts")
    rated = {r["org_id"] for r in api(server, "health_scores", days=14) if r["csm"] == CSM}
    assert set(listed["orgs"]) == rated
    # Each declining account is theirs, and the planted ones are among them.
    declining = next(t for t in page["tables"] if t["title"] == "Declining accounts")
    assert PLANTED <= set(declining["orgs"]) <= mine
    quadrant = next(c for c in page["charts"] if c["id"] == "quadrant")
    assert quadrant["rows"] == len(rated)
    # Alerts: the open ones of their accounts (the csm's own token sees no others).
    alerts = next(t for t in page["tables"] if t["title"] == "Alerts: who needs you now")
    theirs = api(server, "alerts", token="csm-secret", lookback="28 days", days=14)
    assert {a["org_id"] for a in theirs} <= mine
    assert alerts["rows"] == len(theirs) > 0
    assert set(alerts["orgs"]) == {a["org_id"] for a in theirs}


def test_a_declining_account_shows_usage_and_key_users(server, seen):
    visits, _, _ = seen
    page = visits["csm-account"]
    first = api(server, "declining_accounts", token="csm-secret", csms=1, per_csm=50, days=14)[0]["org_id"]
    assert first in PLANTED
    assert page["hash"].startswith(f"#/account/{first}"), page["hash"]
    charts = {c["id"]: c for c in page["charts"]}
    # The usage chart: one point a day, for the 90 days to the lake's last day.
    me = get_json(server.port, "/api/v1/me", token="csm-secret")
    last = dt.date.fromisoformat(me["last_day"])
    first_day = max(dt.date.fromisoformat(me["first_day"]), last - dt.timedelta(days=89))
    assert charts["usage"]["rows"] == (last - first_day).days + 1
    assert charts["usage"]["drawn"] == [charts["usage"]["rows"]] * 3
    # Key users: a bar (this period and the one before) per user of the account.
    users = api(server, "key_user_usage", org_id=first, days=14)
    assert len(users) > 0
    assert charts["key_users"]["drawn"] == [len(users), len(users)]
    table = next(t for t in page["tables"] if t["title"] == "Key users and everyone else")
    assert table["rows"] == len(users)
    assert "modules" in charts
    # The account's features: a table row per account_feature_usage row, a declining account's drops among them.
    used = api(server, "account_feature_usage", token="csm-secret", org_id=first, days=14)
    features = next(t for t in page["tables"] if t["title"] == "Features used in the last 14 days, against the 14 before")
    assert features["rows"] == len(used) > 0
    assert any(r["users_change_pct"] is not None and r["users_change_pct"] < 0 for r in used)
    # Health week by week: twelve weeks to the last day (the lake starts more
    # than 84 days before it), a point per week on both lines, and the last
    # point is the account's health_scores row of that day.
    history = charts["health_history"]
    assert history["rows"] == 13 and history["drawn"] == [13, 13]
    rows = api(server, "health_history", token="csm-secret", **{"from": (last - dt.timedelta(days=84)).isoformat(), "to": last.isoformat(), "every": "7 days", "days": 14, "org_id": first})
    assert len(rows) == 13
    today = next(r for r in api(server, "health_scores", token="csm-secret", days=14) if r["org_id"] == first)
    assert max(rows, key=lambda r: r["as_of"])["health"] == today["health"]
    # The timeline: one table row per account_timeline row of the page's 90 days.
    story = api(server, "account_timeline", token="csm-secret", org_id=first, days=14, **{"from": first_day.isoformat(), "to": last.isoformat()})
    assert {r["kind"] for r in story} >= {"usage"}
    timeline = next(t for t in page["tables"] if t["title"] == "What happened, in order (last 90 days)")
    assert timeline["rows"] == len(story)


def test_from_the_account_to_a_user(server, seen):
    visits, _, _ = seen
    org = visits["csm-account"]["hash"].split("/")[2].split("?")[0]
    page = visits["csm-user"]
    first = api(server, "key_user_usage", org_id=org, days=14)[0]
    assert page["hash"].startswith(f"#/user/{first['user_id']}?org={org}"), page["hash"]
    assert first["user_id"] in page["title"]
    usage = next(c for c in page["charts"] if c["id"] == "user_usage")
    days = api(server, "activity_trend", token="csm-secret", org_id=org, user_id=first["user_id"], **{"from": first_day_of(server), "to": last_day_of(server)})
    assert usage["rows"] == len(days) and usage["drawn"] == [len(days)] * 3
    # Their events one by one, the latest first, as user_events lists them.
    events = api(server, "user_events", token="csm-secret", user_id=first["user_id"], limit=200, **{"from": first_day_of(server), "to": last_day_of(server)})
    table = next(t for t in page["tables"] if t["title"] == "Events, the latest first (at most 200)")
    assert table["rows"] == len(events) > 0


def test_the_page_in_chinese(seen):
    visits, _, _ = seen
    zh = visits["csm-account-zh"]
    assert zh["lang"] == "zh-CN"
    assert "我的客户" in zh["nav"] and "My accounts" not in zh["nav"]
    assert visits["csm-account"]["hash"] == zh["hash"]


def test_an_analyst_sees_every_account(server, demo_lake, seen):
    visits, _, _ = seen
    every = {r["org_id"] for r in sql_json(demo_lake, "SELECT org_id FROM accounts")}
    page = visits["accounts"]
    listed = next(t for t in page["tables"] if t["title"] == "Accounts")
    assert set(listed["orgs"]) == {r["org_id"] for r in api(server, "health_scores", days=14)}
    assert len(listed["orgs"]) == len(every)
    overview = visits["overview"]
    assert {c["id"] for c in overview["charts"]} == {"activity", "bands", "renewals", "revenue"}
    # Revenue: the twelve months to the last day, as the report gives them.
    revenue = next(c for c in overview["charts"] if c["id"] == "revenue")
    months = api(server, "revenue_retention", period="month", **{"from": "2025-10-01", "to": "2026-09-30"})
    assert revenue["rows"] == len(months) == 12
    table = next(t for t in overview["tables"] if t["title"].startswith("Revenue retention"))
    assert table["rows"] == 12
    assert visits["account"]["hash"].startswith("#/account/org-")


def test_product_page_follows_its_controls(server, seen):
    visits, _, _ = seen
    me = get_json(server.port, "/api/v1/me")
    steps = ",".join(["signup", *me["settings"]["milestones"], "upgrade"])
    last = dt.date.fromisoformat(me["last_day"])
    frm = max(dt.date.fromisoformat(me["first_day"]), last - dt.timedelta(days=89)).isoformat()
    plain = {c["id"]: c for c in visits["product"]["charts"]}
    by_browser = {c["id"]: c for c in visits["product-browser"]["charts"]}
    want = api(server, "funnel", steps=steps, window="7 days", **{"from": frm, "to": last.isoformat()})
    assert plain["funnel"]["rows"] == len(want) == len(steps.split(","))
    want = api(server, "funnel", steps=steps, window="7 days", breakdown="browser", **{"from": frm, "to": last.isoformat()})
    assert by_browser["funnel"]["rows"] == len(want) > len(steps.split(","))
    matrix = api(server, "retention_matrix", cohort_event="signup", return_event="login", periods=8, **{"from": frm, "to": last.isoformat()})
    # A cell per cohort and period reached (a period still to come has no value), and the curve's points.
    cells = [r for r in matrix if r["cohort_start"] and r["retained_pct"] is not None]
    assert 0 < plain["retention"]["rows"] == len(cells) < len([r for r in matrix if r["cohort_start"]])
    assert plain["retention_curve"]["rows"] == len([r for r in matrix if r["cohort_start"] is None and r["retained_pct"] is not None])
    assert {"funnel", "retention", "retention_curve", "features", "product_modules", "paths"} <= set(plain)
    # Paths after the funnel's first step: one drawn link per path_edges row.
    period = {"from": frm, "to": last.isoformat()}
    edges = api(server, "path_edges", start_event="signup", steps=5, window="1 day", unit="user", ignore="page_view,login", **period)
    assert plain["paths"]["rows"] == len(edges) > 3 and plain["paths"]["drawn"] == [len(edges)]
    tables = {t["title"]: t for t in visits["product"]["tables"]}
    top = [r for r in api(server, "paths", start_event="signup", steps=5, window="1 day", ignore="page_view,login", top=10, **period) if r["users"] > 0]
    assert tables["Most common paths after signup"]["rows"] == len(top) == 11
    # Without a click, the drop-offs are of the step most users drop out after.
    funnel = api(server, "funnel", steps=steps, window="7 days", **period)
    worst = max(range(1, len(funnel)), key=lambda k: (funnel[k]["dropped"], -k))
    names = steps.split(",")
    drop = api(server, "funnel_dropoffs", steps=steps, window="7 days", step=worst, limit=50, **period)
    assert tables[f"Who reached {names[worst - 1]} but not {names[worst]}, and what they did next"]["rows"] == len(drop) == 50
    corr = [r for r in api(server, "funnel_correlation", steps=steps, window="7 days", **period) if r["odds_ratio"] and r["odds_ratio"] > 0]
    assert tables["What goes with converting (odds ratio, 95% interval)"]["rows"] == plain["correlation"]["rows"] == min(15, len(corr)) > 0
    assert plain["correlation"]["drawn"] == [plain["correlation"]["rows"]]
    # Time to convert over the whole funnel: one bar and one point per bin.
    bins = api(server, "funnel_time_to_convert", steps=steps, window="7 days", from_step=1, to_step=len(names), bins=20, **period)
    assert plain["time_to_convert"]["rows"] == len(bins) > 1 and plain["time_to_convert"]["drawn"] == [len(bins), len(bins)]
    assert sum(b["users"] for b in bins) == funnel[-1]["users"]
    # A click on the third bar: who reached the second step but not the third, and their time between the two.
    clicked = visits["product-drop"]
    assert "drop=2" in clicked["hash"], clicked["hash"]
    tables = {t["title"]: t for t in clicked["tables"]}
    drop = api(server, "funnel_dropoffs", steps=steps, window="7 days", step=2, limit=50, **period)
    assert tables[f"Who reached {names[1]} but not {names[2]}, and what they did next"]["rows"] == len(drop) > 0
    bins = api(server, "funnel_time_to_convert", steps=steps, window="7 days", from_step=2, to_step=3, bins=20, **period)
    charts = {c["id"]: c for c in clicked["charts"]}
    assert charts["time_to_convert"]["rows"] == len(bins) and sum(b["users"] for b in bins) == funnel[2]["users"]
    assert f"Time from {names[1]} to {names[2]}" in tables
    # By account the funnel counts accounts: fewer than users on its first step.
    acct = {c["id"]: c for c in visits["product-account"]["charts"]}
    by_account = api(server, "funnel", steps=steps, window="7 days", unit="account", **period)
    assert acct["funnel"]["rows"] == len(by_account) and by_account[0]["users"] < want_users(server, steps, period)


def want_users(server, steps, period):
    return api(server, "funnel", steps=steps, window="7 days", **period)[0]["users"]


def test_any_report_has_a_table(server, seen):
    visits, _, _ = seen
    listed = visits["reports"]
    assert listed["title"] == "Reports"
    page = visits["report-user-lifecycle"]
    rows = api(server, "user_lifecycle", period="week")
    assert page["tables"][0]["rows"] == len(rows) > 0
    # A report with a required argument left out asks for it instead of failing.
    form = visits["report-funnel-form"]
    assert form["tables"][0]["rows"] == 0 and any("steps" in e for e in form["empty"]), form
