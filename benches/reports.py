#!/usr/bin/env python3
"""Report benchmark: every customer-success report over a demo lake of about
ten million events, with the release binary.

    python3 benches/reports.py [--accounts 2600] [--days 90] [--runs 3] [--lake PATH] [--only NAME,...]
    python3 benches/reports.py --accounts 1300 --days 180 --history 26
    python3 benches/reports.py --growth 10,50,100 [--lakes DIR]
    python3 benches/reports.py --growth 10,100 --before OLD_BINARY --only 'NAME;NAME'

With `--growth`: every report on demo lakes of about that many million events
(260 accounts per million, 90 days; made under `--lakes` when missing), one
run each after a warm-up run, in one table: seconds and peak memory at each
size, the growth from the smallest to the largest size against the growth of
the events, and whether the largest size meets 5 s and 4 GiB. Each process is
given a query memory limit of 8 GiB (VITALS_MEMORY_LIMIT; `--memory-limit ''`
for none), 20 GiB of address space and 10 minutes; a report that fails says
so in its cell.

For each report: the median wall time of `vitals sql` running it (the whole
process: start-up, planning, reading, computing, printing every row as CSV), and the
process's peak resident memory, so a report that collected the event table
into memory would show.

With `--before OLD_BINARY` (and `--growth`): each report run by the old
binary and by this one, alternately (a warm-up run each, then `--runs` runs
each, medians), their whole outputs compared (rows sorted; numbers within a
relative 1e-9), and the time and peak memory of each with the ratio new / old.

With `--history N`: health_history over N weekly points up to the lake's last
day, one process, against N processes of health_scores, one per date (what a
history costs without it), with the answers compared.
"""

import argparse
import datetime as dt
import os
import resource
import statistics
import subprocess
import tempfile
import threading
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
    ("activity_trend", "activity_trend()"),
    ("account_feature_usage", "account_feature_usage('org-00001', NULL, 7)"),
    ("account_timeline", "account_timeline('org-00001')"),
    ("funnel by account", "funnel('signup,create_project,invite_user,upgrade', '7 days', '', '', NULL, NULL, 'account')"),
    ("retention_matrix by account", "retention_matrix('signup', 'login', 'week', 8, 'first_time', NULL, NULL, 'account')"),
    ("paths after signup", "paths('signup', '', 5, '1 day')"),
    ("paths by account", "paths('login', '', 4, '2 hours', 'account', NULL, NULL, 'page_view')"),
    ("path_edges", "path_edges('signup', '', 5, '1 day')"),
    ("funnel_dropoffs", "funnel_dropoffs('signup,create_project,invite_user,upgrade', '7 days', 1)"),
    ("funnel_correlation", "funnel_correlation('signup,upgrade', '14 days')"),
    ("funnel_time_to_convert", "funnel_time_to_convert('signup,create_project,invite_user,upgrade', '7 days')"),
    ("user_events", "user_events('u-00001-0001')"),
    # The aggregate on its own, per user: the event after each user's first sign-up.
    ("sequence_next_node per user", "SELECT next, count(*) AS users FROM (SELECT sequence_next_node('forward', 'first_match', event_time, event, true, event = 'signup') AS next FROM events GROUP BY user_id) GROUP BY next"),
    ("revenue_retention", "revenue_retention('month')"),
    ("revenue_movements", "revenue_movements()"),
    ("health_history, 13 weekly points", "health_history(DATE '{last}' - INTERVAL '84 days', DATE '{last}', '7 days', 7)"),
    ("alerts", "alerts(DATE '{last}')"),
    ("churn_risk, 30-day horizon", "churn_risk(NULL, 30)"),
    ("churn_model, 30-day horizon", "churn_model(NULL, 30)"),
    ("churn_model", "churn_model()"),
]


def timed(cmd, env=None, timeout=None, check=True):
    """Runs cmd; returns (wall seconds, peak RSS in MiB of the child, stdout),
    or with check=False (None, peak, the error's last line) when it fails."""
    start = time.perf_counter()
    # A report past 20 GiB fails alone rather than pushing the machine out of memory.
    cap = lambda: resource.setrlimit(resource.RLIMIT_AS, (20 << 30, 20 << 30))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=cap)
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    out = proc.stdout.read()  # drain the pipe before waiting, or a large result blocks the child
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if timer:
        timer.cancel()
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        if check:
            raise SystemExit(f"{' '.join(map(str, cmd))} failed: {err}")
        lines = err.strip().splitlines() or [f"killed after {timeout} s"]
        return None, usage.ru_maxrss / 1024, lines[-1][:80]
    return wall, usage.ru_maxrss / 1024, out


def only_names(arg):
    if not arg:
        return None
    return {n.strip() for n in arg.split(";" if ";" in arg else ",")}


def lake_size(binary, lake):
    """The lake's event count and last day (as text)."""
    _, _, out = timed([binary, "sql", "--lake", lake, "--format", "csv", "SELECT count(*), max(event_date) FROM events"])
    count, last = out.splitlines()[-1].split(",")
    return int(count), last


def report_sql(call, last):
    # The whole result, every column, printed: nothing can be pruned away.
    return call if call.startswith("SELECT") else f"SELECT * FROM {call.format(last=last)}"


def growth(binary, sizes, lakes, only, memory_limit):
    """Every report at each size, in one table."""
    env = dict(os.environ)
    if memory_limit:
        env["VITALS_MEMORY_LIMIT"] = memory_limit
    results, events = {}, {}
    for m in sizes:
        lake = Path(lakes) / f"growth-{m:g}m"
        if not (lake / "events").exists():
            timed([binary, "demo", "--lake", lake, "--accounts", str(int(m * 260))])
        count, last = lake_size(binary, lake)
        events[m] = count
        print(f"{m:g}M: {count:,} events to {last}", flush=True)
        for name, call in REPORTS:
            if only and name not in only:
                continue
            cmd = [binary, "sql", "--lake", lake, "--format", "csv", report_sql(call, last)]
            timed(cmd, env=env, timeout=600, check=False)  # warm-up
            results[(m, name)] = timed(cmd, env=env, timeout=600, check=False)
            wall, rss, _ = results[(m, name)]
            print(f"  {name}: {'failed' if wall is None else f'{wall:.2f} s'}, {rss:.0f} MiB", flush=True)
    lo, hi = min(sizes), max(sizes)
    head = " | ".join(f"{m:g}M s / MiB" for m in sizes)
    print(f"\n| report | {head} | time {hi:g}M / {lo:g}M (events x{events[hi] / events[lo]:.1f}) | {hi:g}M within 5 s and 4 GiB |")
    print("|---|" + "---|" * len(sizes) + "---|---|")
    for name, _ in REPORTS:
        if (lo, name) not in results:
            continue
        cells = []
        for m in sizes:
            wall, rss, err = results[(m, name)]
            cells.append(f"failed: {err.replace('|', '/')}" if wall is None else f"{wall:.2f} / {rss:.0f}")
        a, b = results[(lo, name)], results[(hi, name)]
        ratio = f"{b[0] / a[0]:.1f}" if a[0] and b[0] else "-"
        ok = "yes" if b[0] is not None and b[0] <= 5 and b[1] <= 4096 else "NO"
        print(f"| {name} | {' | '.join(cells)} | {ratio} | {ok} |", flush=True)


def same_rows(a, b):
    """Whether two CSV outputs hold the same rows (in any order; numbers within a relative 1e-9)."""
    import csv
    import io
    import math

    ra, rb = list(csv.reader(io.StringIO(a))), list(csv.reader(io.StringIO(b)))
    if not ra or not rb or ra[0] != rb[0] or len(ra) != len(rb):
        return False
    for x, y in zip(sorted(ra[1:]), sorted(rb[1:])):
        for u, v in zip(x, y):
            if u == v:
                continue
            try:
                if math.isclose(float(u), float(v), rel_tol=1e-9, abs_tol=1e-12):
                    continue
            except ValueError:
                pass
            return False
    return True


def versus(before, binary, sizes, lakes, only, memory_limit, runs):
    """Each report by the old and the new binary, alternately, on each lake: answers compared, times as ratios."""
    env = dict(os.environ)
    if memory_limit:
        env["VITALS_MEMORY_LIMIT"] = memory_limit
    print("| report | events | before s / MiB | after s / MiB | time after / before | same answer |")
    print("|---|---|---|---|---|---|")
    for m in sizes:
        lake = Path(lakes) / f"growth-{m:g}m"
        count, last = lake_size(binary, lake)
        for name, call in REPORTS:
            if only and name not in only:
                continue
            cmds = [[b, "sql", "--lake", lake, "--format", "csv", report_sql(call, last)] for b in (before, binary)]
            for cmd in cmds:
                timed(cmd, env=env, timeout=900, check=False)  # warm-up
            samples = ([], [])
            for _ in range(runs):
                for i, cmd in enumerate(cmds):
                    samples[i].append(timed(cmd, env=env, timeout=900, check=False))
            cells = []
            for s in samples:
                walls = [w for w, _, _ in s if w is not None]
                cells.append((statistics.median(walls) if len(walls) == len(s) else None, max(r for _, r, _ in s), s[0][2]))
            (wa, ra, oa), (wb, rb, ob) = cells
            same = "yes" if wa is not None and wb is not None and same_rows(oa, ob) else "NO"
            fmt = lambda w, r, o: f"failed: {o.replace('|', '/')}" if w is None else f"{w:.2f} / {r:.0f}"
            ratio = f"{wb / wa:.2f}" if wa and wb else "-"
            print(f"| {name} | {count:,} | {fmt(wa, ra, oa)} | {fmt(wb, rb, ob)} | {ratio} | {same} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=int, default=2600, help="demo accounts (2600 give about 10M events)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--days", type=int, default=90, help="demo days")
    p.add_argument("--lake", help="use (or create) this lake instead of a temporary one")
    p.add_argument("--only", help="report names (as in the table) to run, separated by commas, or by semicolons when a name has a comma")
    p.add_argument("--history", type=int, help="compare health_history over this many weekly points with as many health_scores runs")
    p.add_argument("--growth", help="comma-separated sizes in millions of events: every report at each size, in one table")
    p.add_argument("--memory-limit", default="8GiB", help="with --growth: VITALS_MEMORY_LIMIT of each report's process ('' for none; the address space is capped at 20 GiB either way)")
    p.add_argument("--lakes", default=str(ROOT / "data" / "bench"), help="with --growth: the folder of the lakes (made there when missing)")
    p.add_argument("--before", help="with --growth: an older vitals binary to run side by side with this one (the lakes must exist)")
    a = p.parse_args()
    binary = Path(os.environ.get("VITALS_BIN", ROOT / "target" / "release" / "vitals"))
    if "VITALS_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "--bin", "vitals"], cwd=ROOT, check=True)
    if a.growth and a.before:
        versus(Path(a.before), binary, [float(x) for x in a.growth.split(",")], a.lakes, only_names(a.only), a.memory_limit, a.runs)
        return
    if a.growth:
        growth(binary, [float(x) for x in a.growth.split(",")], a.lakes, only_names(a.only), a.memory_limit)
        return
    tmp = tempfile.TemporaryDirectory()
    lake = Path(a.lake) if a.lake else Path(tmp.name) / "lake"
    if not (lake / "events").exists():
        timed([binary, "demo", "--lake", lake, "--accounts", str(a.accounts), "--days", str(a.days)])
    count, last = lake_size(binary, lake)
    print(f"lake: {count:,} events, {a.accounts} accounts, {a.days} days to {last}; {a.runs} runs each, median\n")
    if a.history:
        history(binary, lake, dt.date.fromisoformat(last), a.history)
        return
    only = only_names(a.only)
    print("| report | rows | seconds | peak RSS MiB |")
    print("|---|---|---|---|")
    for name, call in REPORTS:
        if only and name not in only:
            continue
        sql = report_sql(call, last)
        timed([binary, "sql", "--lake", lake, "--format", "csv", sql])  # warm-up
        samples = [timed([binary, "sql", "--lake", lake, "--format", "csv", sql]) for _ in range(a.runs)]
        rows = len(samples[0][2].splitlines()) - 1
        wall = statistics.median(s[0] for s in samples)
        rss = max(s[1] for s in samples)
        print(f"| {name} | {rows} | {wall:.2f} | {rss:.0f} |", flush=True)


def history(binary, lake, last, points):
    """health_history over `points` weekly dates in one process against one
    health_scores process per date; the answers must be the same rows."""
    dates = [last - dt.timedelta(days=7 * k) for k in reversed(range(points))]
    cols = "org_id, health, band, quadrant"
    sql = f"SELECT CAST(as_of AS VARCHAR) AS as_of, {cols} FROM health_history(DATE '{dates[0]}', DATE '{last}', '7 days', 7) ORDER BY as_of, org_id"
    timed([binary, "sql", "--lake", lake, "--format", "csv", sql])  # warm-up
    wall, rss, out = timed([binary, "sql", "--lake", lake, "--format", "csv", sql])
    one = out.splitlines()[1:]
    total, peak, many = 0.0, 0.0, []
    for d in dates:
        w, r, o = timed([binary, "sql", "--lake", lake, "--format", "csv", f"SELECT '{d}' AS as_of, {cols} FROM health_scores(DATE '{d}', 7) ORDER BY org_id"])
        total, peak = total + w, max(peak, r)
        many += o.splitlines()[1:]
    same = sorted(one) == sorted(many)
    print("| command | rows | seconds | peak RSS MiB |")
    print("|---|---|---|---|")
    print(f"| health_history, {points} weekly points to {last}, one process | {len(one)} | {wall:.2f} | {rss:.0f} |")
    print(f"| health_scores, {points} processes (one per date) | {len(many)} | {total:.2f} ({total / points:.2f} each) | {peak:.0f} each at most |")
    print(f"\nratio history / per-date runs: {wall / total:.2f}; same rows: {same}")
    if not same:
        raise SystemExit("health_history and health_scores disagree")


if __name__ == "__main__":
    main()
