#!/usr/bin/env python3
"""vitals against ClickHouse (chdb) and DuckDB on the same Parquet files, on
this machine, in one run.

    python3 benches/compare.py [--sizes 1,10,20] [--runs 3] [--out FILE]

On a fresh machine it first installs chdb, duckdb and pyarrow from PyPI and
builds the release binary (unless VITALS_BIN names one), then makes the lakes.

For each size (millions of events, a `vitals demo` lake of about that many)
and each workload, the engines take turns: one warm-up run each, then `runs`
rounds of one run per engine. Every run is a fresh process (`vitals sql` with
the release binary; a Python process for chdb and for DuckDB), so peak
memory (the process's max RSS) is per run. Times are the query's own time as
each engine reports it (vitals: `--timing`, which covers planning, running
and writing the result; the others: the call around the query), so process
start-up counts for no one; vitals' whole-process time is shown beside it.

Each size is measured on lakes of several layouts (`--layouts`, default all):
`vitals` (the demo lake as `vitals demo` writes it), `pyarrow` (the same
events written by pyarrow as many pipelines write them: one file a UTC day in
`dt=YYYY-MM-DD` folders, sorted by org, user and time, zstd, dictionary
strings, pyarrow's row groups), `duckdb` (the same events written by DuckDB's
`COPY ... (FORMAT parquet, PARTITION_BY (day))`, sorted likewise, DuckDB's
defaults: snappy, its own dictionaries and row groups), and `compacted` (the
pyarrow lake after `vitals compact` and `vitals vacuum --older-than 0s`, so
the other engines read the same files vitals does).

Before any time is reported the answers are compared: funnel levels,
retention counts and sequence matches must equal chdb's exactly, and DuckDB's
formulations (plain SQL) must give the same counts. A workload whose answers
differ gets no time, only the difference.
"""

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("VITALS_BIN", str(ROOT / "target" / "release" / "vitals"))
ACCOUNTS_PER_MILLION = 260  # a demo lake has about 3,850 events per account over 90 days

STEPS = ["signup", "create_project", "invite_user", "upgrade"]
STEP_LIST = ", ".join(f"'{s}'" for s in STEPS)
WEEK_US = 7 * 86_400 * 1_000_000

CHDB_RUNNER = r"""
import sys, time, chdb
sql = sys.argv[1]
start = time.perf_counter()
out = chdb.query(sql, "CSVWithNames")
elapsed = time.perf_counter() - start
sys.stdout.write(str(out))
sys.stderr.write(f"query seconds: {elapsed:.4f}\n")
"""

DUCKDB_RUNNER = r"""
import sys, time, duckdb
sql = sys.argv[1]
con = duckdb.connect()
start = time.perf_counter()
rel = con.sql(sql)
rows = rel.fetchall()
elapsed = time.perf_counter() - start
import csv
w = csv.writer(sys.stdout)
w.writerow(rel.columns)
w.writerows(rows)
sys.stderr.write(f"query seconds: {elapsed:.4f}\n")
"""


def ts(engine, d):
    """A UTC midnight timestamp literal in each engine's dialect."""
    text = f"{d.isoformat()} 00:00:00"
    if engine == "vitals":
        return f"TIMESTAMP '{text}+00:00'"
    if engine == "chdb":
        return f"toDateTime64('{text}', 6, 'UTC')"
    return f"TIMESTAMPTZ '{text}+00'"


def workloads(lake, last_day):
    src = {
        "vitals": "events",
        "chdb": f"file('{lake}/events/*/*.parquet', Parquet)",
        "duckdb": f"read_parquet('{lake}/events/*/*.parquet')",
    }
    w = {}

    # funnel: 4 steps, 7-day window, per user, then users per level.
    conds = ", ".join(f"event = '{s}'" for s in STEPS)
    w["funnel"] = {
        "vitals": f"SELECT level, count(*) AS users FROM (SELECT user_id, window_funnel(INTERVAL '7 days', event_time, {conds}) AS level "
        f"FROM events WHERE event IN ({STEP_LIST}) GROUP BY user_id) GROUP BY level ORDER BY level",
        "chdb": f"SELECT level, count() AS users FROM (SELECT user_id, windowFunnel({WEEK_US})(toUInt64(toUnixTimestamp64Micro(event_time)), {conds}) AS level "
        f"FROM {src['chdb']} WHERE event IN ({STEP_LIST}) GROUP BY user_id) GROUP BY level ORDER BY level",
        # Plain SQL: for each sign-up, the earliest next step inside the window, step by step
        # (for a fixed start the earliest next event is the best choice); a user's level is the best start's.
        "duckdb": f"""
WITH e AS (SELECT user_id, event, event_time AS t FROM {src['duckdb']} WHERE event IN ({STEP_LIST})),
s1 AS (SELECT user_id, t AS t1 FROM e WHERE event = 'signup'),
l2 AS (SELECT s1.user_id, s1.t1, min(e.t) AS t2 FROM s1 JOIN e ON e.user_id = s1.user_id AND e.event = 'create_project'
       AND e.t >= s1.t1 AND e.t <= s1.t1 + INTERVAL 7 DAY GROUP BY s1.user_id, s1.t1),
l3 AS (SELECT l2.user_id, l2.t1, min(e.t) AS t3 FROM l2 JOIN e ON e.user_id = l2.user_id AND e.event = 'invite_user'
       AND e.t >= l2.t2 AND e.t <= l2.t1 + INTERVAL 7 DAY GROUP BY l2.user_id, l2.t1),
l4 AS (SELECT DISTINCT l3.user_id FROM l3 JOIN e ON e.user_id = l3.user_id AND e.event = 'upgrade'
       AND e.t >= l3.t3 AND e.t <= l3.t1 + INTERVAL 7 DAY),
lv AS (SELECT user_id, 1 AS level FROM s1 UNION ALL SELECT user_id, 2 FROM l2 UNION ALL SELECT user_id, 3 FROM l3
       UNION ALL SELECT user_id, 4 FROM l4 UNION ALL SELECT user_id, 0 FROM e)
SELECT level, count(*) AS users FROM (SELECT user_id, max(level) AS level FROM lv GROUP BY user_id) GROUP BY level ORDER BY level""",
    }

    # retention: a sign-up cohort (the first of four weeks) and three weekly return windows.
    d0 = last_day - timedelta(days=27)
    bounds = [d0 + timedelta(days=7 * k) for k in range(5)]

    def ret_conds(engine):
        t = [ts(engine, b) for b in bounds]
        return [f"event = 'signup' AND event_time >= {t[0]} AND event_time < {t[1]}"] + [
            f"event_time >= {t[k]} AND event_time < {t[k + 1]}" for k in range(1, 4)
        ]

    def ret(engine, fn):
        c = ret_conds(engine)
        return (
            f"SELECT sum(r[1]) AS cohort, sum(r[2]) AS week2, sum(r[3]) AS week3, sum(r[4]) AS week4 FROM "
            f"(SELECT user_id, {fn}({', '.join(c)}) AS r FROM {src[engine]} WHERE event_time >= {ts(engine, bounds[0])} GROUP BY user_id)"
        )

    c = ret_conds("duckdb")
    w["retention"] = {
        "vitals": ret("vitals", "retention"),
        "chdb": ret("chdb", "retention"),
        "duckdb": "SELECT sum(c1) AS cohort, sum(c1 * c2) AS week2, sum(c1 * c3) AS week3, sum(c1 * c4) AS week4 FROM (SELECT user_id, "
        + ", ".join(f"max(CASE WHEN {x} THEN 1 ELSE 0 END) AS c{i + 1}" for i, x in enumerate(c))
        + f" FROM {src['duckdb']} WHERE event_time >= {ts('duckdb', bounds[0])} GROUP BY user_id)",
    }

    # sequence_match: a dashboard created, then shared within the hour, nothing between.
    # (In ClickHouse a time condition right after `.*` constrains nothing, so the
    # pattern has no `.*`.)
    seq_filter = "event IN ('create_dashboard', 'share_dashboard')"
    w["sequence_match"] = {
        "vitals": f"SELECT count(*) AS users FROM (SELECT user_id FROM events WHERE {seq_filter} GROUP BY user_id "
        "HAVING sequence_match('(?1)(?t<=3600)(?2)', event_time, event = 'create_dashboard', event = 'share_dashboard'))",
        "chdb": f"SELECT count() AS users FROM (SELECT user_id FROM {src['chdb']} WHERE {seq_filter} GROUP BY user_id "
        "HAVING sequenceMatch('(?1)(?t<=3600000000)(?2)')(toUInt64(toUnixTimestamp64Micro(event_time)), event = 'create_dashboard', event = 'share_dashboard'))",
        # Plain SQL: a share whose previous event (of the two kinds; equal times put the create first) is a create at most an hour before.
        "duckdb": f"""
WITH e AS (SELECT user_id, event, event_time AS t,
           lag(event) OVER (PARTITION BY user_id ORDER BY event_time, event = 'share_dashboard') AS prev_event,
           lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time, event = 'share_dashboard') AS prev_t
           FROM {src['duckdb']} WHERE {seq_filter})
SELECT count(DISTINCT user_id) AS users FROM e
WHERE event = 'share_dashboard' AND prev_event = 'create_dashboard' AND t <= prev_t + INTERVAL 1 HOUR""",
    }

    # account_usage: the last 7 days against the 7 before, per account.
    cur, prev, end = last_day - timedelta(days=6), last_day - timedelta(days=13), last_day + timedelta(days=1)
    cols = "login_users, login_users_prev, visits, visits_prev, page_views, page_views_prev"

    def usage(engine):
        s = src[engine]
        return f"""SELECT org_id, {cols} FROM (SELECT org_id,
  count(DISTINCT CASE WHEN cur AND event = 'login' THEN user_id END) AS login_users,
  count(DISTINCT CASE WHEN NOT cur AND event = 'login' THEN user_id END) AS login_users_prev,
  count(DISTINCT CASE WHEN cur THEN session_id END) AS visits,
  count(DISTINCT CASE WHEN NOT cur THEN session_id END) AS visits_prev,
  sum(CASE WHEN cur AND event = 'page_view' THEN 1 ELSE 0 END) AS page_views,
  sum(CASE WHEN NOT cur AND event = 'page_view' THEN 1 ELSE 0 END) AS page_views_prev
FROM (SELECT org_id, user_id, event, session_id, event_time >= {ts(engine, cur)} AS cur FROM {s}
      WHERE event_time >= {ts(engine, prev)} AND event_time < {ts(engine, end)}) AS b
GROUP BY org_id) AS m WHERE login_users + login_users_prev + visits + visits_prev + page_views + page_views_prev > 0 ORDER BY org_id"""

    w["account_usage"] = {
        "vitals": f"SELECT org_id, {cols} FROM account_usage(DATE '{last_day}', 7) "
        "WHERE login_users + login_users_prev + visits + visits_prev + page_views + page_views_prev > 0 ORDER BY org_id",
        "chdb": usage("chdb"),
        "duckdb": usage("duckdb"),
    }

    # The floor: read the funnel's columns with its filter, count distinct users.
    w["floor"] = {
        "vitals": f"SELECT count(DISTINCT user_id) AS users, max(event_time) AS last FROM events WHERE event IN ({STEP_LIST})",
        "chdb": f"SELECT count(DISTINCT user_id) AS users, max(event_time) AS last FROM {src['chdb']} WHERE event IN ({STEP_LIST})",
        "duckdb": f"SELECT count(DISTINCT user_id) AS users, CAST(max(event_time) AS VARCHAR) AS last FROM {src['duckdb']} WHERE event IN ({STEP_LIST})",
    }
    w["health_scores"] = {"vitals": f"SELECT * FROM health_scores(DATE '{last_day}', 7)"}
    w["magic_number"] = {"vitals": "SELECT * FROM magic_number('week2', 7, 10)"}
    return w


def run_measured(engine, lake, sql):
    """Runs one query in a fresh process: (query seconds, process seconds,
    peak RSS MiB of that process, result rows)."""
    if engine == "vitals":
        cmd = [BIN, "sql", "--lake", str(lake), "--format", "csv", "--timing", sql]
    elif engine == "chdb":
        cmd = [sys.executable, "-c", CHDB_RUNNER, sql]
    else:
        cmd = [sys.executable, "-c", DUCKDB_RUNNER, sql]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} failed ({proc.returncode}): {err[-2000:]}\n{sql}")
    seconds = float([l for l in err.splitlines() if l.startswith("query seconds:")][-1].split(":")[1])
    rows = [tuple(r) for r in csv.reader(io.StringIO(out))]
    return seconds, wall, usage.ru_maxrss / 1024, rows


def normal(rows):
    """Rows without the header, numbers as numbers, timestamps to the second."""
    out = []
    for r in rows[1:]:
        vals = []
        for v in r:
            try:
                f = float(v)
                vals.append(round(f, 6))
            except ValueError:
                vals.append(v.replace("T", " ")[:19])
        out.append(tuple(vals))
    return out


LAYOUT_CHECK = r"""
import sys, pyarrow.parquet as pq
rg = pq.ParquetFile(sys.argv[1]).metadata.row_group(0)
cols = [rg.column(i) for i in range(rg.num_columns)]
ok = any(c.path_in_schema == "event_time" and c.compression == "UNCOMPRESSED" and not c.has_dictionary_page and "DELTA_BINARY_PACKED" not in c.encodings for c in cols)
sys.exit(0 if ok else 1)
"""


def current_layout(lake):
    """Whether the lake's event files are in the writer's current layout
    (event_time plain and uncompressed); a lake made by an older build is remade.
    Checked in a child process: a child's peak memory counts its parent's at
    fork, so this process must stay small (no pyarrow, chdb or duckdb here)."""
    files = sorted((lake / "events").glob("*/*.parquet"))
    if not files:
        return False
    return subprocess.run([sys.executable, "-c", LAYOUT_CHECK, str(files[0])]).returncode == 0


def ensure_lake(millions, root, keep):
    lake = root / f"compare-{millions}m"
    if (lake / "events").exists() and not keep and not current_layout(lake):
        print(f"{lake}: written by an older layout, making it again", file=sys.stderr)
        shutil.rmtree(lake)
    if not (lake / "events").exists():
        accounts = max(1, int(millions * ACCOUNTS_PER_MILLION))
        subprocess.run([BIN, "demo", "--lake", str(lake), "--accounts", str(accounts)], check=True)
    return lake


PYARROW_WRITER = r"""
import sys, pathlib, pyarrow.parquet as pq, pyarrow.compute as pc
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for day in sorted((src / "events").iterdir()):
    t = pq.read_table(day)
    t = t.select([c for c in t.column_names if c != "event_date"])
    t = t.take(pc.sort_indices(t, sort_keys=[("org_id", "ascending"), ("user_id", "ascending"), ("event_time", "ascending")]))
    out = dst / "events" / ("dt=" + day.name.split("=")[1])
    out.mkdir(parents=True)
    pq.write_table(t, out / "part-0.parquet", compression="zstd", use_dictionary=True)
"""

DUCKDB_WRITER = r"""
import sys, duckdb
src, dst = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.sql("SET TimeZone = 'UTC'")
con.sql("SET enable_progress_bar = false")
con.sql(f'''COPY (SELECT *, CAST(event_time AS DATE) AS day
    FROM read_parquet('{src}/events/*/*.parquet', hive_partitioning = false)
    ORDER BY org_id, user_id, event_time) TO '{dst}/events' (FORMAT parquet, PARTITION_BY (day))''')
"""


def ensure_layout(demo, layout):
    """The demo lake's events written in another layout, beside it (made once;
    the dimension tables are copied as they are)."""
    if layout == "vitals":
        return demo
    lake = demo.parent / f"{demo.name}-{layout}"
    if (lake / "events").exists() and (lake / ".complete").exists():
        return lake
    if lake.exists():
        shutil.rmtree(lake)
    if layout == "compacted":
        shutil.copytree(ensure_layout(demo, "pyarrow"), lake)
        (lake / ".complete").unlink()
        subprocess.run([BIN, "compact", "--lake", str(lake)], check=True)
        subprocess.run([BIN, "vacuum", "--lake", str(lake), "--older-than", "0s"], check=True)
    else:
        lake.mkdir(parents=True)
        writer = PYARROW_WRITER if layout == "pyarrow" else DUCKDB_WRITER
        subprocess.run([sys.executable, "-c", writer, str(demo), str(lake)], check=True)
        # The other tables under names of the other pipeline's kind (a vitals
        # file name counts only through the lake's commit log, not copied here).
        for table in ("accounts", "users", "interventions", "subscriptions"):
            for i, f in enumerate(sorted((demo / table).glob("*.parquet")) if (demo / table).exists() else []):
                (lake / table).mkdir(exist_ok=True)
                shutil.copyfile(f, lake / table / f"part-{i}.parquet")
    (lake / ".complete").write_text("")
    return lake


def lake_facts(lake):
    out = subprocess.run([BIN, "sql", "--lake", str(lake), "--format", "json", "SELECT count(*) AS n, max(event_date) AS last FROM events"],
                         check=True, capture_output=True, text=True).stdout
    row = json.loads(out)[0]
    return int(row["n"]), date.fromisoformat(row["last"])


def prepare():
    """What a fresh machine lacks: the Python engines (from PyPI) and, unless
    VITALS_BIN names a binary, an up-to-date release build of vitals."""
    import importlib.util

    # Looked up, not imported (see current_layout).
    missing = [m for m in ("chdb", "duckdb", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)
    if "VITALS_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "--bin", "vitals"], cwd=ROOT, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,20", help="millions of events, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated workloads (default: all)")
    ap.add_argument("--out", default=None, help="also write the report (Markdown) here")
    ap.add_argument("--lakes", default=str(ROOT / "data" / "bench"), help="folder of the lakes (made there when missing)")
    ap.add_argument(
        "--keep-lakes", action="store_true", help="use lakes found as they are, even in an older layout (to time a change to the reader alone)"
    )
    ap.add_argument("--layouts", default="vitals,pyarrow,duckdb,compacted", help="comma-separated: vitals, pyarrow, duckdb, compacted")
    args = ap.parse_args()
    prepare()
    sizes = [float(s) for s in args.sizes.split(",")]
    engines = ["vitals", "chdb", "duckdb"]
    report = []
    medians = {}

    def say(line=""):
        print(line, flush=True)
        report.append(line)

    layouts = args.layouts.split(",")
    cases = [(m, layout) for m in sizes for layout in layouts]
    for millions, layout in cases:
        lake = ensure_layout(ensure_lake(millions, Path(args.lakes), args.keep_lakes), layout)
        n, last_day = lake_facts(lake)
        files = len(list((lake / "events").glob("*/*.parquet")))
        say(f"\n### {n:,} events ({millions:g}M), {layout} layout ({files} files), last day {last_day}\n")
        say("| workload | vitals s | chdb s | duckdb s | vitals/chdb | vitals/duckdb | vitals process s | peak MiB vitals / chdb / duckdb | answers |")
        say("|---|---|---|---|---|---|---|---|---|")
        for name, sqls in workloads(lake, last_day).items():
            if args.only and name not in args.only.split(","):
                continue
            present = [e for e in engines if e in sqls]
            # Warm-up, and the answers.
            answers = {e: normal(run_measured(e, lake, sqls[e])[3]) for e in present}
            verdict = "vitals only"
            if "chdb" in answers:
                same_ch = answers["chdb"] == answers["vitals"]
                same_dd = answers["duckdb"] == answers["vitals"]
                verdict = ("= chdb" if same_ch else "DIFFERS from chdb") + ", " + ("= duckdb" if same_dd else "DIFFERS from duckdb")
                if not (same_ch and same_dd):
                    say(f"| {name} | - | - | - | - | - | - | - | {verdict} |")
                    print(f"  vitals: {answers['vitals'][:8]}\n  chdb:   {answers['chdb'][:8]}\n  duckdb: {answers['duckdb'][:8]}", file=sys.stderr)
                    continue
            times = {e: [] for e in present}
            walls, rss = [], {e: 0.0 for e in present}
            for _ in range(args.runs):
                for e in present:
                    q, wall, peak, _ = run_measured(e, lake, sqls[e])
                    times[e].append(q)
                    rss[e] = max(rss[e], peak)
                    if e == "vitals":
                        walls.append(wall)
            med = {e: statistics.median(times[e]) for e in present}
            medians[(millions, layout, name)] = (med, rss)
            fmt = lambda e: f"{med[e]:.3f}" if e in med else "-"
            ratio = lambda e: f"{med['vitals'] / med[e]:.2f}" if e in med else "-"
            mem = " / ".join(f"{rss[e]:.0f}" if e in rss else "-" for e in engines)
            say(f"| {name} | {fmt('vitals')} | {fmt('chdb')} | {fmt('duckdb')} | {ratio('chdb')} | {ratio('duckdb')} | {statistics.median(walls):.3f} | {mem} | {verdict} |")

    # Targets at the largest size, on every layout (and the growth from the size before).
    big = max(sizes)
    say(f"\n### Targets at {big:g}M events\n")
    checks = []
    for layout in layouts:
        get = lambda m, w: medians.get((m, layout, w))
        for w in ("funnel", "retention", "sequence_match"):
            m = get(big, w)
            if m:
                med, _ = m
                checks.append((f"{layout}: {w}: vitals/chdb <= 0.5", med["vitals"] / med["chdb"], 0.5))
                checks.append((f"{layout}: {w}: vitals/duckdb <= 0.5", med["vitals"] / med["duckdb"], 0.5))
        if get(big, "floor"):
            med, _ = get(big, "floor")
            checks.append((f"{layout}: floor: vitals/duckdb <= 1", med["vitals"] / med["duckdb"], 1.0))
        if get(big, "funnel") and get(big, "floor"):
            checks.append((f"{layout}: funnel / floor (vitals) <= 2", get(big, "funnel")[0]["vitals"] / get(big, "floor")[0]["vitals"], 2.0))
        smaller = [s for s in sizes if s < big]
        if smaller and get(big, "funnel") and get(max(smaller), "funnel"):
            half = max(smaller)
            checks.append((f"{layout}: funnel {big:g}M / {half:g}M <= {big / half:.2f}", get(big, "funnel")[0]["vitals"] / get(half, "funnel")[0]["vitals"], big / half))
    say("| target | measured | met |")
    say("|---|---|---|")
    for label, value, limit in checks:
        say(f"| {label} | {value:.2f} | {'yes' if value <= limit else 'NO'} |")
    if args.out:
        Path(args.out).write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
