#!/usr/bin/env python3
"""The dashboard and the JSON API on a demo lake of about ten million events,
with the release binary, side by side with Flight SQL:

    python3 benches/dashboard.py [--accounts 2600] [--runs 5]

1. Page loads: headless Chromium (tests/browser/dashboard.mjs) opens every
   page as a CSM and as an analyst, `--runs` times each (the first visit may be
   a click inside the page, the others are full loads of the page's URL), and
   the time from navigation to every chart drawn is reported (median, min).
2. Per report: the JSON API's latency (`GET /api/v1/reports/NAME`, the body
   read and parsed) next to the same SQL (the `sql` the API answers with) over
   Flight SQL through ADBC (the Arrow table read), alternating, `--runs` each;
   medians and their ratio. Both check that rows came back.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("VITALS_BIN", str(ROOT / "target" / "release" / "vitals"))
sys.path.insert(0, str(ROOT / "tests" / "python"))

import adbc_driver_flightsql.dbapi as adbc  # noqa: E402

from server_util import Server, token_entry  # noqa: E402

# Arguments for the reports without a default for some of them (and the dashboard's usual ones).
ARGS = {
    "funnel": {"steps": "signup,create_project,invite_user,create_dashboard,upgrade", "breakdown": "utm_source"},
    "retention_matrix": {"cohort_event": "signup", "return_event": "login"},
    "key_user_usage": {"org_id": "org-00001", "days": "14"},
    "user_lifecycle": {"period": "week"},
    "intervention_effect": {"days": "7"},
    "declining_accounts": {"csms": "1000", "per_csm": "50", "days": "14"},
    "health_scores": {"days": "14"},
    "activity_trend": {"org_id": "org-00001"},
}


def get(port, path, token):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status} {body[:300]!r}")
    if r.getheader("content-encoding") == "gzip":
        import gzip

        body = gzip.decompress(body)
    return json.loads(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=2600)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--lake", default=None)
    args = ap.parse_args()
    binary = os.environ["VITALS_BIN"]
    lake = Path(args.lake or ROOT / "data" / "bench" / f"serve-{args.accounts}")
    if not (lake / "events").exists():
        subprocess.run([binary, "demo", "--lake", str(lake), "--accounts", str(args.accounts)], check=True)
    sql = lambda q: subprocess.run([binary, "sql", "--lake", str(lake), "--format", "csv", q], check=True, capture_output=True, text=True).stdout.split("\n")[1:]  # noqa: E731
    events = sql("SELECT count(*) FROM events")[0]
    csm = sql("SELECT csm FROM accounts WHERE csm IS NOT NULL GROUP BY csm ORDER BY count(*) DESC, csm LIMIT 1")[0]
    config = lake.parent / f"dashboard-{args.accounts}.toml"
    config.write_text(token_entry("ana", "analyst", "analyst-secret") + token_entry(csm, "csm", "csm-secret"))
    server = Server(lake, config, env={"VITALS_LOG": "warn"})
    try:
        print(f"lake {lake}: {events} events; binary {binary}; CSM {csm}; {args.runs} runs\n")
        env = dict(os.environ, VITALS_URL=f"http://127.0.0.1:{server.port}", VITALS_CSM_TOKEN="csm-secret", VITALS_ANALYST_TOKEN="analyst-secret",
                   VITALS_SHOTS=str(ROOT / "target" / "bench-screenshots"), VITALS_REPEAT=str(args.runs))
        run = subprocess.run(["node", "dashboard.mjs"], cwd=ROOT / "tests" / "browser", env=env, capture_output=True, text=True, timeout=3600)
        if run.returncode != 0:
            sys.exit(run.stderr[-3000:])
        out = json.loads(run.stdout)
        if out["errors"]:
            sys.exit(f"the pages logged errors: {out['errors']}")
        print("| page (token) | charts | navigation to every chart drawn, median | min |")
        print("|---|---|---|---|")
        for v in out["visits"]:
            t = v["times_ms"]
            print(f"| {v['name']} `{v['hash'][:60]}` | {len(v['charts'])} | {statistics.median(t) / 1000:.2f} s | {min(t) / 1000:.2f} s |")

        print("\n| report | rows | JSON API, median | Flight SQL (ADBC), median | JSON / Flight |")
        print("|---|---|---|---|---|")
        listed = get(server.port, "/api/v1/reports", "analyst-secret")["reports"]
        conn = adbc.connect(server.uri, db_kwargs={"username": "ana", "password": "analyst-secret"})
        cur = conn.cursor()
        for r in listed:
            path = f"/api/v1/reports/{r['name']}?" + urllib.parse.urlencode(ARGS.get(r["name"], {}))
            first = get(server.port, path, "analyst-secret")
            query = first["sql"]
            web, flight = [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                rows = len(get(server.port, path, "analyst-secret")["rows"])
                web.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                cur.execute(query)
                n = cur.fetch_arrow_table().num_rows
                flight.append(time.perf_counter() - t0)
                assert rows == n > 0, (r["name"], rows, n)
            w, f = statistics.median(web), statistics.median(flight)
            print(f"| {r['name']} | {rows} | {w * 1000:.0f} ms | {f * 1000:.0f} ms | {w / f:.2f} |")
        cur.close()
        conn.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
