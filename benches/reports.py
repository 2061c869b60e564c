#!/usr/bin/env python3
"""Report benchmark: every customer-success report over a demo lake of about
ten million events, with the release binary.

    python3 benches/reports.py [--accounts 2600] [--runs 3] [--lake PATH]

For each report: the median wall time of `vitals sql` running it (the whole
process: start-up, planning, reading, computing, printing every row as CSV), and the
process's peak resident memory, so a report that collected the event table
into memory would show.
"""

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REPORTS = [
    ("account_usage", "account_usage(NULL, 7)"),
    ("key_user_usage", "key_user_usage('org-00001', NULL, 7)"),
    ("module_usage_share", "module_usage_share()"),
    ("channel_quality", "channel_quality()"),
    ("funnel", "funnel('signup,create_project,invite_user,upgrade', '7 days')"),
    ("funnel by utm_source", "funnel('signup,create_project,invite_user,upgrade', '7 days', 'utm_source')"),
    ("retention_matrix", "retention_matrix('signup', 'login', 'week', 8)"),
    ("feature_retention", "feature_retention('week')"),
    ("magic_number", "magic_number('week2', 7, 10)"),
    ("health_scores", "health_scores(NULL, 7)"),
    ("declining_accounts", "declining_accounts(5, 10, 14)"),
    ("intervention_effect", "intervention_effect(7)"),
    ("account_lifecycle", "account_lifecycle()"),
    ("user_lifecycle", "user_lifecycle('week')"),
]


def timed(cmd):
    """Runs cmd; returns (wall seconds, peak RSS in MiB of the child, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read()  # drain the pipe before waiting, or a large result blocks the child
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: {err}")
    return wall, usage.ru_maxrss / 1024, out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=int, default=2600, help="demo accounts (2600 give about 10M events)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--lake", help="use (or create) this lake instead of a temporary one")
    a = p.parse_args()
    binary = ROOT / "target" / "release" / "vitals"
    subprocess.run(["cargo", "build", "--release", "--bin", "vitals"], cwd=ROOT, check=True)
    tmp = tempfile.TemporaryDirectory()
    lake = Path(a.lake) if a.lake else Path(tmp.name) / "lake"
    if not (lake / "events").exists():
        timed([binary, "demo", "--lake", lake, "--accounts", str(a.accounts)])
    _, _, out = timed([binary, "sql", "--lake", lake, "--format", "csv", "SELECT count(*) FROM events"])
    events = int(out.split()[-1])
    print(f"lake: {events:,} events, {a.accounts} accounts; {a.runs} runs each, median\n")
    print("| report | rows | seconds | peak RSS MiB |")
    print("|---|---|---|---|")
    for name, call in REPORTS:
        # The whole result, every column, printed: nothing can be pruned away.
        sql = f"SELECT * FROM {call}"
        timed([binary, "sql", "--lake", lake, "--format", "csv", sql])  # warm-up
        samples = [timed([binary, "sql", "--lake", lake, "--format", "csv", sql]) for _ in range(a.runs)]
        rows = len(samples[0][2].splitlines()) - 1
        wall = statistics.median(s[0] for s in samples)
        rss = max(s[1] for s in samples)
        print(f"| {name} | {rows} | {wall:.2f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
