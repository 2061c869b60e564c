#!/usr/bin/env python3
"""Two vitals binaries side by side on the same lake and the same inputs:
query times (as `vitals sql --timing` reports them) and ingest wall times,
the binaries taking turns run after run, medians and the ratio after/before.

    python3 benches/before_after.py --before OLD_BIN --after NEW_BIN [--accounts 5200] [--days 90] [--runs 7]

The lake is a demo lake made by the `after` binary (both read it); the ingest
inputs are that lake's own Parquet files for `--ingest-days` days, loaded into
an empty lake (every row written) and then again (every row a duplicate).
"""

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

QUERIES = {
    # A recent window: retention over the last 28 days (event_time filters).
    "retention, 28 days": "SELECT sum(r[1]), sum(r[2]), sum(r[3]), sum(r[4]) FROM (SELECT retention("
    "event = 'signup' AND event_time < TIMESTAMP '2026-09-10T00:00:00Z', "
    "event_time >= TIMESTAMP '2026-09-10T00:00:00Z' AND event_time < TIMESTAMP '2026-09-17T00:00:00Z', "
    "event_time >= TIMESTAMP '2026-09-17T00:00:00Z' AND event_time < TIMESTAMP '2026-09-24T00:00:00Z', "
    "event_time >= TIMESTAMP '2026-09-24T00:00:00Z') AS r FROM events "
    "WHERE event_time >= TIMESTAMP '2026-09-03T00:00:00Z' GROUP BY user_id)",
    "one day by event_time": "SELECT count(*), count(DISTINCT user_id) FROM events "
    "WHERE event_time >= TIMESTAMP '2026-09-21T00:00:00Z' AND event_time < TIMESTAMP '2026-09-22T00:00:00Z'",
    "account_usage(last day, 7)": "SELECT count(*), sum(visits) FROM account_usage(NULL, 7)",
    "health_scores(last day, 7)": "SELECT count(*), sum(health) FROM health_scores(NULL, 7)",
    # Integer + - * on every row: the worst case for checked arithmetic.
    "integer arithmetic, every row": "SELECT sum(duration_ms * 3 + 1 - duration_ms) FROM events",
    # Every day: nothing to skip (a regression check for the scan itself).
    "funnel, all days": "SELECT level, count(*) FROM (SELECT user_id, window_funnel(INTERVAL '7 days', event_time, "
    "event = 'signup', event = 'create_project', event = 'invite_user', event = 'upgrade') AS level "
    "FROM events GROUP BY user_id) GROUP BY level ORDER BY level",
}


def query_seconds(binary, lake, sql):
    proc = subprocess.run([binary, "sql", "--lake", str(lake), "--format", "csv", "--timing", sql], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{binary}: {sql}: {proc.stderr}")
    line = next(l for l in proc.stderr.splitlines() if l.startswith("query seconds:"))
    return float(line.split(":")[1]), proc.stdout


def ingest_seconds(binary, lake, files):
    start = time.perf_counter()
    proc = subprocess.run([binary, "ingest", "--lake", str(lake), *map(str, files)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{binary} ingest: {proc.stderr}")
    return wall, proc.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--accounts", type=int, default=5200)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--ingest-days", type=int, default=10)
    ap.add_argument("--work", default=None, help="folder for the lakes (default: a temporary one)")
    args = ap.parse_args()
    bins = {"before": args.before, "after": args.after}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vitals-ab-"))
    lake = work / "lake"
    if not (lake / "events").is_dir():
        out = subprocess.run([args.after, "demo", "--lake", str(lake), "--accounts", str(args.accounts), "--days", str(args.days)], capture_output=True, text=True, check=True)
        print(out.stdout.splitlines()[0])
    print(f"runs: {args.runs}, alternating; medians in seconds\n")
    print("| workload | before | after | after / before | answers |")
    print("|---|---|---|---|---|")
    for name, sql in QUERIES.items():
        times = {k: [] for k in bins}
        answers = {}
        for _ in range(args.runs + 1):  # the first round warms the page cache
            for k, b in bins.items():
                t, out = query_seconds(b, lake, sql)
                times[k].append(t)
                answers[k] = out
        b, a = (statistics.median(times[k][1:]) for k in ("before", "after"))
        same = "same" if answers["before"] == answers["after"] else "DIFFER"
        print(f"| {name} | {b:.3f} | {a:.3f} | {a / b:.2f} | {same} |")

    days = sorted((lake / "events").iterdir())[-args.ingest_days :]
    files = [f for d in days for f in sorted(d.glob("*.parquet"))]
    rows = {k: [] for k in bins}
    for k in bins:
        rows[k] = {"load": [], "again": []}
    for _ in range(max(3, args.runs // 2)):
        for k, b in bins.items():
            target = work / f"ingest-{k}"
            shutil.rmtree(target, ignore_errors=True)
            t, out = ingest_seconds(b, target, files)
            rows[k]["load"].append(t)
            t2, out2 = ingest_seconds(b, target, files)
            rows[k]["again"].append(t2)
    print(f"\n{len(files)} files of {args.ingest_days} days ingested into an empty lake, then again; medians of wall seconds\n")
    print("| ingest | before | after | after / before |")
    print("|---|---|---|---|")
    for what in ("load", "again"):
        b, a = (statistics.median(rows[k][what]) for k in ("before", "after"))
        print(f"| {what} | {b:.2f} | {a:.2f} | {a / b:.2f} |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
