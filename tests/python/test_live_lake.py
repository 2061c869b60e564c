"""A lake that real pipelines feed: layouts other tools write, hidden files,
all-or-nothing ingest under kill -9 (local and S3), concurrent ingests, and
what a reader may and may not see while files change under it."""

import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import run, sql_json, vitals_bin

SEED = int(os.environ.get("VITALS_LIVE_SEED", random.SystemRandom().randrange(2**31)))
KILLS = int(os.environ.get("VITALS_KILLS", "50"))


def read_table(folder: Path) -> pa.Table:
    """Every Parquet file under a folder as one table (the partition column dropped)."""
    tables = [pq.read_table(p) for p in sorted(folder.rglob("*.parquet"))]
    return pa.concat_tables([t.select([c for c in t.column_names if c != "event_date"]) for t in tables], promote_options="default")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("layouts") / "demo"
    run("demo", "--lake", path, "--accounts", "30", "--days", "21", "--seed", "11")
    return path


def write_dimensions(src: Path, dst: Path):
    for table in ("accounts", "users", "interventions", "subscriptions"):
        (dst / table).mkdir(parents=True)
        pq.write_table(read_table(src / table), dst / table / "part-0.parquet")


def utc_day(times):
    return pc.cast(times, pa.date32())


@pytest.fixture(scope="module")
def layouts(demo, tmp_path_factory):
    """The demo's events rewritten by pyarrow in three layouts: by UTC day (as
    the contract says), all in one load-date folder in a few unsorted files that
    each span many days, and by the local date of a vendor in UTC+8."""
    rng = random.Random(SEED)
    events = read_table(demo / "events")
    # pyarrow's own choices: nanosecond times without a zone, dictionary strings.
    events = events.set_column(events.column_names.index("event_time"), "event_time", pc.cast(events["event_time"], pa.timestamp("ns")))
    base = tmp_path_factory.mktemp("foreign")
    out = {}

    utc = base / "utc"
    days = utc_day(events["event_time"])
    for d in sorted(set(days.to_pylist())):
        part = events.filter(pc.equal(days, pa.scalar(d, pa.date32())))
        folder = utc / "events" / f"event_date={d.isoformat()}"
        folder.mkdir(parents=True)
        pq.write_table(part, folder / "part-0.parquet", use_dictionary=True, compression="zstd")
    write_dimensions(demo, utc)
    out["utc"] = utc

    load = base / "load_date"
    folder = load / "events" / "load_date=2026-10-01"
    folder.mkdir(parents=True)
    order = list(range(events.num_rows))
    rng.shuffle(order)
    shuffled = events.take(pa.array(order))
    n = shuffled.num_rows
    for i in range(4):
        pq.write_table(shuffled.slice(i * n // 4, (i + 1) * n // 4 - i * n // 4), folder / f"part-{i}.parquet")
    # What Spark and Hive leave beside the data, and a hidden broken file: all ignored.
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-0.parquet.crc").write_bytes(b"\x00\x01")
    (folder / ".x.parquet").write_bytes(b"not parquet at all")
    (folder / "_temporary").mkdir()
    (folder / "_temporary" / "attempt-0.parquet").write_bytes(b"half written")
    write_dimensions(demo, load)
    out["load_date"] = load

    local = base / "utc_plus_8"
    local_days = pc.cast(pc.add(events["event_time"], pa.scalar(dt.timedelta(hours=8), pa.duration("ns"))), pa.date32())
    for d in sorted(set(local_days.to_pylist())):
        part = events.filter(pc.equal(local_days, pa.scalar(d, pa.date32())))
        folder = local / "events" / f"event_date={d.isoformat()}"
        folder.mkdir(parents=True)
        # Small row groups: the reader's batches end inside runs of one
        # user's or one visit's rows (first_of_run must keep each run's first).
        pq.write_table(part, folder / "data.parquet", row_group_size=500)
    write_dimensions(demo, local)
    out["utc_plus_8"] = local
    return out


QUERIES = [
    "SELECT count(*) AS n, count(DISTINCT event_id) AS ids, min(event_date) AS first, max(event_date) AS last FROM events",
    # Bounds that cut days, in UTC and in UTC+8.
    "SELECT count(*) AS n FROM events WHERE event_time >= TIMESTAMP '2026-09-20T16:00:00Z' AND event_time < TIMESTAMP '2026-09-25T03:30:00Z'",
    "SELECT count(*) AS n FROM events WHERE event_time < TIMESTAMP '2026-09-15T00:00:00+08:00'",
    "SELECT event_date, count(*) AS n FROM events WHERE event_date BETWEEN DATE '2026-09-20' AND DATE '2026-09-22' GROUP BY event_date ORDER BY event_date",
    "SELECT level, count(*) AS users FROM (SELECT user_id, window_funnel(INTERVAL '7 days', event_time, event = 'signup', event = 'create_project', "
    "event = 'invite_user', event = 'upgrade') AS level FROM events GROUP BY user_id) GROUP BY level ORDER BY level",
    "SELECT * FROM account_usage('2026-09-25', 7) ORDER BY org_id",
    "SELECT day, module, share_pct FROM module_usage_share('2026-09-20', '2026-09-30') ORDER BY day, module",
    "SELECT org_id, day, visits FROM account_daily WHERE day >= DATE '2026-09-27' ORDER BY org_id, day",
    # A limit over a date filter: the rows kept are counted after the filter, not before.
    "SELECT count(*) AS n, min(event_date) AS lo, max(event_date) AS hi FROM (SELECT event_date FROM events WHERE event_date = DATE '2026-09-21' LIMIT 50)",
    "SELECT count(*) AS n FROM events WHERE CAST(event_date AS VARCHAR) LIKE '%-2_' AND event_time < TIMESTAMP '2026-09-24T07:00:00+08:00'",
    # Reports that read event_date for its day, week or month.
    "SELECT * FROM user_lifecycle('week') ORDER BY period_start",
    "SELECT * FROM user_lifecycle('day', 'account') ORDER BY period_start",
    "SELECT org_id, as_of, health, active_users, visits, minutes, modules_used, key_users_active "
    "FROM health_history('2026-09-24', '2026-09-30', '1 day', 7) ORDER BY org_id, as_of",
    # Distinct counts fed one row per run of sorted rows (first_of_run): the
    # shuffled load-date files have no runs, the UTC+8 ones runs cut by batches.
    "SELECT org_id, health, active_users, visits, modules_used FROM health_scores('2026-09-30', 7) ORDER BY org_id",
    "SELECT org_id, at, visits_per_day_before, visits_per_day_after, matched_accounts FROM intervention_effect(7) ORDER BY org_id, at",
    "SELECT kind, feature, users_with, retention_with_pct, users_without FROM feature_retention('week') ORDER BY kind, feature",
]


def test_any_layout_answers_as_the_correctly_partitioned_lake(demo, layouts):
    print(f"seed {SEED}")
    for q in QUERIES:
        want = sql_json(demo, q)
        assert want, q
        for name, lake in layouts.items():
            assert sql_json(lake, q) == want, f"{name}: {q}"


def test_misplaced_files_are_named_once_in_a_warning(layouts):
    proc = run("sql", "--lake", layouts["utc_plus_8"], "SELECT count(*) FROM events")
    warnings = [l for l in proc.stderr.splitlines() if "outside their folder's UTC day" in l]
    assert len(warnings) == 1, proc.stderr
    assert "events/event_date=2026-09-20/data.parquet" in warnings[0]
    # The correctly partitioned lake warns about nothing.
    assert "outside" not in run("sql", "--lake", layouts["utc"], "SELECT count(*) FROM events").stderr


def test_event_time_filters_skip_files_by_their_own_statistics(demo, layouts):
    """The speed of pruning stays: a one-day filter reads one day's file on the
    correct layout, and on the UTC+8 layout the two files that hold that day."""
    q = "EXPLAIN ANALYZE SELECT count(*) FROM events WHERE event_time >= TIMESTAMP '2026-09-21T00:00:00Z' AND event_time < TIMESTAMP '2026-09-22T00:00:00Z'"

    def files_scanned(lake):
        plan = "\n".join(r["plan"] for r in sql_json(lake, q))
        return sorted(set(re.findall(r"/events/([^\s,\[\]:]+\.parquet)", plan)))

    assert files_scanned(layouts["utc"]) == ["event_date=2026-09-21/part-0.parquet"]
    assert files_scanned(layouts["utc_plus_8"]) == ["event_date=2026-09-21/data.parquet", "event_date=2026-09-22/data.parquet"]
    # Files spanning every day cannot be skipped, and are not.
    assert len(files_scanned(layouts["load_date"])) == 4


# --- compaction ------------------------------------------------------------------


def live_events_files(lake: Path) -> dict:
    """The events files the log says vitals wrote and are live, by relative path."""
    live = {}
    for entry in sorted((lake / "_vitals" / "log").glob("[0-9]*[0-9].json")):
        commit = json.loads(entry.read_text())
        live.update({a["path"]: a for a in commit["add"]})
        for r in commit["remove"]:
            live.pop(r, None)
    return {p: a for p, a in live.items() if p.startswith("events/")}


@pytest.mark.parametrize("layout", ["utc", "load_date", "utc_plus_8", "demo"])
def test_compaction_keeps_every_answer_and_leaves_one_file_a_day(demo, layouts, layout, tmp_path):
    """Foreign files (by UTC day, one load-date folder of files spanning every
    day, by local date) and the demo's own two files a day become one file a
    UTC day in vitals' layout; every query answers as before."""
    lake = tmp_path / "lake"
    shutil.copytree(demo if layout == "demo" else layouts[layout], lake)
    days = {r["d"] for r in sql_json(demo, "SELECT CAST(event_date AS VARCHAR) AS d FROM events GROUP BY 1")}
    rewritten = len(days)
    if layout == "demo":
        # An ingest adds a second file to each of the last three days.
        event_csv(tmp_path / "late.csv", "late", 300)
        run("ingest", "--lake", lake, tmp_path / "late.csv")
        rewritten = 3
    want = [sql_json(lake, q) for q in QUERIES]
    proc = run("compact", "--lake", lake)
    assert f"rewrote {rewritten} days" in proc.stdout, proc.stdout
    for q, before in zip(QUERIES, want):
        assert sql_json(lake, q) == before, f"{layout}: {q}"
    files = live_events_files(lake)
    assert sorted(p.split("/")[1] for p in files) == sorted(f"event_date={d}" for d in days)
    assert sum(a["rows"] for a in files.values()) == sql_json(lake, "SELECT count(*) AS n FROM events")[0]["n"]
    for path in files:
        meta = pq.ParquetFile(lake / path).metadata
        sorting = meta.row_group(0).sorting_columns
        assert [meta.schema.column(c.column_index).name for c in sorting] == ["org_id", "user_id", "event_time"]
    # One day's filter now reads that day's one file, and nothing warns.
    plan = "\n".join(
        r["plan"]
        for r in sql_json(lake, "EXPLAIN ANALYZE SELECT count(*) FROM events WHERE event_time >= TIMESTAMP '2026-09-21T00:00:00Z' AND event_time < TIMESTAMP '2026-09-22T00:00:00Z'")
    )
    assert sorted(set(re.findall(r"/events/([^\s,\[\]:]+\.parquet)", plan))) == [p.removeprefix("events/") for p in files if "2026-09-21" in p]
    assert "outside" not in run("sql", "--lake", lake, "SELECT 1").stderr
    assert "nothing to do" in run("compact", "--lake", lake).stdout
    # Another pipeline's leftovers beside the data are not touched.
    if layout == "load_date":
        assert (lake / "events" / "load_date=2026-10-01" / "_SUCCESS").exists()


def test_compaction_leaves_what_it_cannot_keep_and_a_new_file_at_a_removed_path_counts(layouts, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(layouts["utc"], lake)
    before = sql_json(lake, "SELECT count(*) AS n FROM events")[0]["n"]
    # A file with a column the contract does not declare: a rewrite would drop it.
    t = dt.datetime(2026, 9, 21, 12, tzinfo=dt.timezone.utc)
    extra = pa.table({"event_time": pa.array([t], type=pa.timestamp("us", tz="UTC")), "org_id": ["org-00001"], "user_id": ["x"], "event": ["login"], "app_version": ["4.2.0"]})
    pq.write_table(extra, lake / "events" / "event_date=2026-09-21" / "with-app-version.parquet")
    dry = run("compact", "--lake", lake, "--dry-run").stdout
    assert "left as it is: events/event_date=2026-09-21/with-app-version.parquet" in dry and "app_version" in dry
    assert "would rewrite" in dry and "vitals-" not in "".join(p.name for p in (lake / "events").rglob("*.parquet"))
    # Only the days asked for; the rest stay as they were.
    proc = run("compact", "--lake", lake, "--from", "2026-09-20", "--to", "2026-09-22")
    assert "rewrote 3 days" in proc.stdout, proc.stdout
    assert (lake / "events" / "event_date=2026-09-23" / "part-0.parquet").exists()
    assert sorted(p.split("/")[1] for p in live_events_files(lake)) == [f"event_date=2026-09-2{d}" for d in (0, 1, 2)]
    assert sql_json(lake, "SELECT count(*) AS n FROM events")[0]["n"] == before + 1
    # The day with the file left as it is is done: a second run leaves it alone.
    again = run("compact", "--lake", lake, "--from", "2026-09-20", "--to", "2026-09-22").stdout
    assert "nothing to do" in again and "with-app-version.parquet" in again, again
    # A pipeline exports 2026-09-20 again to the same path, after the compaction: a new file that counts.
    time.sleep(0.05)
    again = pa.table({"event_time": pa.array([t - dt.timedelta(days=1)] * 3, type=pa.timestamp("us", tz="UTC")), "org_id": ["org-00001"] * 3, "user_id": ["y"] * 3, "event": ["login"] * 3})
    pq.write_table(again, lake / "events" / "event_date=2026-09-20" / "part-0.parquet")
    assert sql_json(lake, "SELECT count(*) AS n FROM events")[0]["n"] == before + 4
    # Vacuum deletes the replaced files, not the new one.
    run("vacuum", "--lake", lake, "--older-than", "0s")
    assert not (lake / "events" / "event_date=2026-09-21" / "part-0.parquet").exists()
    assert (lake / "events" / "event_date=2026-09-20" / "part-0.parquet").exists()
    assert sql_json(lake, "SELECT count(*) AS n FROM events")[0]["n"] == before + 4
    bad = run("compact", "--lake", lake, "--from", "2026-09-22", "--to", "2026-09-20", check=False)
    assert bad.returncode != 0 and "--to 2026-09-20 is before --from 2026-09-22" in bad.stderr


def test_a_killed_compaction_leaves_the_lake_as_it_was_or_compacted(demo, layouts, tmp_path):
    rng = random.Random(SEED)
    probe = tmp_path / "probe"
    shutil.copytree(layouts["load_date"], probe)
    started = time.monotonic()
    run("compact", "--lake", probe)
    took = time.monotonic() - started
    want = [sql_json(demo, q) for q in QUERIES[:5]]
    outcomes = {"before": 0, "compacted": 0}
    for r in range(8):
        lake = tmp_path / f"lake-{r}"
        shutil.copytree(layouts["load_date"], lake)
        at = rng.uniform(0.0, 1.05) * took
        proc = subprocess.Popen([vitals_bin(), "compact", "--lake", str(lake)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert [sql_json(lake, q) for q in QUERIES[:5]] == want, f"round {r}, kill at {at:.3f}s of {took:.3f}s"
        outcomes["compacted" if live_events_files(lake) else "before"] += 1
        # Compacting again finishes the work, with the same answers.
        run("compact", "--lake", lake)
        assert [sql_json(lake, q) for q in QUERIES[:5]] == want, f"round {r}: the rerun"
        assert "nothing to do" in run("compact", "--lake", lake).stdout
    print(f"seed {SEED}: compaction killed 8 times, {outcomes}")


def test_two_compactions_at_once_commit_once(layouts, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(layouts["utc_plus_8"], lake)
    want = [sql_json(lake, q) for q in QUERIES[:5]]
    procs = [subprocess.Popen([vitals_bin(), "compact", "--lake", str(lake)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate() + (p.returncode,) for p in procs]
    rewrote = [out for out, _, code in results if code == 0 and "rewrote" in out]
    assert len(rewrote) == 1, results
    # The other found the work done, or lost the race and changed nothing.
    other = [r for r in results if not (r[2] == 0 and "rewrote" in r[0])][0]
    assert "nothing to do" in other[0] or "another writer committed first" in other[1], results
    assert [sql_json(lake, q) for q in QUERIES[:5]] == want
    assert len(live_events_files(lake)) == len({p.split("/")[1] for p in live_events_files(lake)})


def test_compaction_of_an_s3_lake(demo, layouts, tmp_path, s3_server):
    s3 = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"], aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    s3.create_bucket(Bucket="vitals-compact")
    for path in layouts["utc_plus_8"].rglob("*.parquet"):
        s3.upload_file(str(path), "vitals-compact", "lake/" + str(path.relative_to(layouts["utc_plus_8"])))
    lake = "s3://vitals-compact/lake"
    days = len(sql_json(demo, "SELECT event_date FROM events GROUP BY 1"))
    proc = run("compact", "--lake", lake, env=s3_server)
    assert f"rewrote {days} days" in proc.stdout, proc.stdout
    for q in QUERIES[:6]:
        assert sql_json(lake, q, env=s3_server) == sql_json(demo, q), q
    assert "nothing to do" in run("compact", "--lake", lake, env=s3_server).stdout


# --- all-or-nothing ingest -------------------------------------------------------


def event_csv(path: Path, tag: str, n: int, days=("2026-09-28", "2026-09-29", "2026-09-30")):
    """n events with ids tag-0..tag-(n-1), spread over three days."""
    lines = ["event_id,event_time,org_id,user_id,event,session_id,duration_ms"]
    for i in range(n):
        d = days[i % len(days)]
        lines.append(f"{tag}-{i},{d}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z,org-00001,u-00001-0001,page_view,s-{tag},{i}")
    path.write_text("\n".join(lines) + "\n")


def counts(lake, tag, env=None):
    r = sql_json(lake, f"SELECT count(*) AS n, count(DISTINCT event_id) AS ids, sum(CASE WHEN event_id LIKE '{tag}-%' THEN 1 ELSE 0 END) AS mine FROM events", env=env)[0]
    return r["n"], r["ids"], r["mine"] or 0


def kill_rounds(lake, tmp_path, env=None, rounds=KILLS, n=30000):
    """Ingests a fresh three-day file per round and kills the process at a
    random instant (half of them in the last fifth of its run, where the
    commit is); after each, the lake has all of that file or none of it."""
    rng = random.Random(SEED)
    full_env = dict(os.environ, **(env or {}))
    files = tmp_path / "inputs"
    files.mkdir(exist_ok=True)
    # How long an ingest takes here, to spread the kills over it.
    probe = files / "probe.csv"
    event_csv(probe, "probe", n)
    started = time.monotonic()
    run("ingest", "--lake", lake, probe, env=env)
    took = time.monotonic() - started
    outcomes = {"none": 0, "all": 0}
    for r in range(rounds):
        tag = f"k{r}"
        before, ids, _ = counts(lake, "nothing", env)
        assert before == ids
        path = files / f"{tag}.csv"
        event_csv(path, tag, n)
        at = rng.uniform(0.8, 1.05) * took if r % 2 else rng.uniform(0.0, 1.0) * took
        proc = subprocess.Popen([vitals_bin(), "ingest", "--lake", str(lake), str(path)], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        total, distinct, mine = counts(lake, tag, env)
        assert total == distinct, f"round {r} (kill at {at:.3f}s of {took:.3f}s): duplicate event_ids"
        assert mine in (0, n), f"round {r} (kill at {at:.3f}s of {took:.3f}s): {mine} of {n} events visible"
        assert total == before + mine, f"round {r}: {total} events, {before} before and {mine} new"
        outcomes["all" if mine else "none"] += 1
        # Running the same ingest again completes it, once.
        run("ingest", "--lake", lake, path, env=env)
        total, distinct, mine = counts(lake, tag, env)
        assert (total, distinct, mine) == (before + n, before + n, n), f"round {r}: the rerun"
    print(f"seed {SEED}: {rounds} kills, {outcomes}")
    return outcomes


def test_a_killed_ingest_shows_all_or_nothing_on_local_disk(tmp_path):
    lake = tmp_path / "lake"
    run("demo", "--lake", lake, "--accounts", "6", "--days", "14", "--seed", "3")
    kill_rounds(lake, tmp_path)
    # What the killed runs left behind is invisible, and vacuum deletes it:
    # then the files vitals wrote are exactly those the log says are live.
    run("vacuum", "--lake", lake, "--older-than", "0s")
    live = set()
    for entry in sorted((lake / "_vitals" / "log").glob("[0-9]*[0-9].json")):
        commit = json.loads(entry.read_text())
        live |= {a["path"] for a in commit["add"]}
        live -= set(commit["remove"])
    on_disk = {str(p.relative_to(lake)) for p in lake.rglob("vitals-*.parquet")}
    assert on_disk == live


def test_a_killed_ingest_shows_all_or_nothing_on_s3(tmp_path, s3_server):
    s3 = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"], aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    s3.create_bucket(Bucket="vitals-kill")
    lake = "s3://vitals-kill/lake"
    run("demo", "--lake", lake, "--accounts", "6", "--days", "14", "--seed", "3", env=s3_server)
    kill_rounds(lake, tmp_path, env=s3_server)


def test_the_same_file_ingested_twice_at_once_lands_once(tmp_path):
    lake = tmp_path / "lake"
    run("demo", "--lake", lake, "--accounts", "6", "--days", "14", "--seed", "3")
    for r in range(5):
        path = tmp_path / f"twice-{r}.csv"
        event_csv(path, f"t{r}", 20000)
        before, _, _ = counts(lake, "nothing")
        procs = [
            subprocess.Popen([vitals_bin(), "ingest", "--lake", str(lake), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, VITALS_LOG="info"))
            for _ in range(2)
        ]
        results = [p.communicate() + (p.returncode,) for p in procs]
        for out, err, code in results:
            assert code == 0, err
        written = sorted(int(out.split(" written")[0].split()[-1]) for out, _, _ in results)
        assert written == [0, 20000], results
        # The second to commit saw the first's commit on the same days and started again.
        assert sum(err.count("starting again") for _, err, _ in results) >= 1
        total, distinct, mine = counts(lake, f"t{r}")
        assert (total, distinct, mine) == (before + 20000, before + 20000, 20000)


def test_two_accounts_updates_at_once_keep_one_row_per_account(tmp_path):
    lake = tmp_path / "lake"
    run("demo", "--lake", lake, "--accounts", "40", "--days", "14", "--seed", "3")
    orgs = [r["org_id"] for r in sql_json(lake, "SELECT org_id FROM accounts ORDER BY org_id")]
    assert len(orgs) == 40
    files = []
    for who in ("first", "second"):
        path = tmp_path / f"{who}.csv"
        path.write_text("org_id,name,plan\n" + "".join(f"{o},{who} {o},pro\n" for o in orgs))
        files.append(path)
    retries = 0
    env = dict(os.environ, VITALS_LOG="info")
    for _ in range(10):
        procs = [subprocess.Popen([vitals_bin(), "ingest", "--lake", str(lake), "--table", "accounts", str(f)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for f in files]
        for p in procs:
            _, err = p.communicate()
            assert p.returncode == 0, err
            retries += err.count("starting again")
        rows = sql_json(lake, "SELECT count(*) AS n, count(DISTINCT org_id) AS orgs, count(DISTINCT split_part(name, ' ', 1)) AS writers FROM accounts")[0]
        # One row per account, all from whichever update committed last.
        assert rows == {"n": 40, "orgs": 40, "writers": 1}, rows
    # The updates did overlap: one found the other's commit and started again.
    print(f"{retries} retries in 10 rounds")
    assert retries >= 1


# --- a running server and a changing lake ------------------------------------------


def served(tmp_path, lake, *flags):
    from server_util import Server, token_entry

    config = tmp_path / "vitals.toml"
    config.write_text(token_entry("ana", "analyst", "live-secret"))
    return Server(lake, config, *flags)


def ask(server, sql):
    from server_util import flight_query

    return flight_query(server.uri, "live-secret", sql)[1].to_pylist()


def wait_for(what, check, seconds=15):
    """Polls `check` until it is true; returns how long that took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"{what}: not seen after {seconds}s"
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_running_server_sees_ingests_without_a_restart(tmp_path):
    import pyarrow.flight as fl

    lake = tmp_path / "lake"
    run("demo", "--lake", lake, "--accounts", "6", "--days", "14", "--seed", "3")
    server = served(tmp_path, lake, "--refresh-interval", "1s")
    try:
        before = ask(server, "SELECT count(*) AS n FROM events")[0]["n"]
        org = ask(server, "SELECT org_id FROM accounts ORDER BY org_id LIMIT 1")[0]["org_id"]
        # A day after the lake's last one is outside the data until events arrive on it.
        late = f"SELECT count(*) AS n FROM key_user_usage('{org}', '2026-10-02', 7)"
        with pytest.raises(pa.ArrowInvalid, match="outside the data"):
            ask(server, late)
        path = tmp_path / "new.csv"
        event_csv(path, "live", 500, days=("2026-10-01", "2026-10-02"))
        text = path.read_text().replace("org-00001", org).replace("u-00001-0001", f"u-{org[4:]}-0001")
        path.write_text(text)
        run("ingest", "--lake", lake, path)
        took = wait_for("500 new events", lambda: ask(server, "SELECT count(*) AS n FROM events")[0]["n"] == before + 500)
        print(f"events seen {took:.1f}s after the ingest")
        assert ask(server, late)[0]["n"] >= 1
        # An accounts update replaces the accounts file; queries reading it keep working.
        row = ask(server, f"SELECT * FROM accounts WHERE org_id = '{org}'")[0]
        accounts = tmp_path / "accounts.csv"
        cols = ["org_id", "name", "plan", "is_paid", "csm", "seats"]
        row["name"] = "Renamed Ltd"
        accounts.write_text(",".join(cols) + "\n" + ",".join("" if row[c] is None else str(row[c]).lower() if isinstance(row[c], bool) else str(row[c]) for c in cols) + "\n")
        run("ingest", "--lake", lake, "--table", "accounts", accounts)
        wait_for("the new name", lambda: ask(server, f"SELECT name FROM accounts WHERE org_id = '{org}'") == [{"name": "Renamed Ltd"}])
        assert ask(server, "SELECT count(*) AS n FROM accounts")[0]["n"] == 6
        usage = ask(server, "SELECT org_id, name FROM account_usage('2026-10-02', 7) ORDER BY org_id")
        assert {"org_id": org, "name": "Renamed Ltd"} in usage and len(usage) == 6
        # A file that breaks the contract, dropped in while serving: left out and named, the rest served.
        total = ask(server, "SELECT count(*) AS n FROM events")[0]["n"]
        bad = lake / "events" / "event_date=2026-10-02" / "text-times.parquet"
        pq.write_table(pa.table({"event_time": ["2026-10-02"], "org_id": [org], "user_id": ["x"], "event": ["login"]}), bad)
        wait_for("the warning", lambda: "events/event_date=2026-10-02/text-times.parquet" in server.log_path.read_text())
        assert "event_time" in server.log_path.read_text().split("text-times.parquet")[1].splitlines()[0]
        assert ask(server, "SELECT count(*) AS n FROM events")[0]["n"] == total
    finally:
        assert server.stop() == 0


def test_files_changing_under_a_running_server_fail_queries_not_the_server(tmp_path):
    """Another pipeline rewrites and truncates its own files in place while
    queries read them: each query answers or fails with a status, and the
    server lives. (vitals' own files are never changed in place; replaced
    ones are deleted, which a reader survives.)"""
    import pyarrow.flight as fl

    lake = tmp_path / "lake"
    run("demo", "--lake", lake, "--accounts", "6", "--days", "14", "--seed", "3")
    events = read_table(lake / "events")
    foreign = []
    for i, day in enumerate(("2026-09-25", "2026-09-26", "2026-09-27")):
        part = events.filter(pc.equal(utc_day(events["event_time"]), pa.scalar(dt.date.fromisoformat(day), pa.date32())))
        part = part.set_column(0, "event_id", pc.binary_join_element_wise(pa.scalar("f-"), pc.cast(part["event_id"], pa.string()), ""))
        path = lake / "events" / f"event_date={day}" / f"other-tool-{i}.parquet"
        pq.write_table(part, path)
        foreign.append((path, path.read_bytes()))
    server = served(tmp_path, lake, "--refresh-interval", "0s")
    stop = threading.Event()
    rng = random.Random(SEED)

    def churn():
        while not stop.is_set():
            path, good = rng.choice(foreign)
            action = rng.randrange(4)
            with open(path, "r+b") as f:
                if action == 0:
                    f.truncate(rng.randrange(len(good)))
                elif action == 1:
                    f.seek(rng.randrange(len(good)))
                    f.write(os.urandom(rng.randrange(1, 4096)))
                elif action == 2:
                    f.truncate(0)
                else:
                    f.seek(0)
                    f.write(good)
                    f.truncate(len(good))
            time.sleep(rng.uniform(0, 0.05))

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    outcomes = {"ok": 0, "status": 0}
    queries = [
        "SELECT count(*) AS n, sum(duration_ms) AS ms FROM events",
        "SELECT org_id, count(*) AS n FROM events WHERE event_time >= TIMESTAMP '2026-09-24T12:00:00Z' GROUP BY org_id",
        "SELECT * FROM account_usage('2026-09-27', 7)",
    ]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                ask(server, rng.choice(queries))
                outcomes["ok"] += 1
            except pa.ArrowException:  # FlightError and the status-mapped ArrowInvalid alike
                outcomes["status"] += 1
            assert server.alive(), f"the server died; log: {server.log_path.read_text()[-2000:]}"
    finally:
        stop.set()
        churner.join()
    print(f"seed {SEED}: {outcomes}")
    assert outcomes["ok"] + outcomes["status"] > 20
    # Whole again, the files are read as they are.
    for path, good in foreign:
        path.write_bytes(good)
    want = events.num_rows + sum(pq.read_table(p).num_rows for p, _ in foreign)
    wait_for("the restored files", lambda: ask(server, "SELECT count(*) AS n FROM events")[0]["n"] == want)
    assert server.stop() == 0
