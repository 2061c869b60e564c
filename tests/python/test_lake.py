"""The lake as other tools see it: Parquet written by pyarrow, and S3."""

import datetime as dt
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import ROOT, run, sql_json, vitals_bin


def fixture_lake(tmp_path: Path) -> str:
    lake = tmp_path / "lake"
    for table in ("accounts", "users", "events"):
        run("ingest", "--lake", lake, "--table", table, ROOT / "data" / "fixture" / f"{table}.csv")
    return str(lake)


def test_pyarrow_nanosecond_files_are_queryable_without_conversion(tmp_path):
    lake = fixture_lake(tmp_path)
    before = sql_json(lake, "SELECT count(*) AS n FROM events")[0]["n"]
    # Another pipeline lands a file: timestamp[ns] without a zone, int32
    # durations, dictionary-encoded strings, and no optional columns at all.
    t0 = dt.datetime(2024, 1, 20, 9, 30, 0, 123456)
    table = pa.table(
        {
            "event_time": pa.array([t0, t0 + dt.timedelta(minutes=5)], type=pa.timestamp("ns")),
            "org_id": pa.array(["acme", "acme"]).dictionary_encode(),
            "user_id": ["a1", "a2"],
            "event": ["login", "page_view"],
            "duration_ms": pa.array([None, 42000], type=pa.int32()),
        }
    )
    folder = Path(lake) / "events" / "event_date=2024-01-20"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "from-pyarrow.parquet")

    rows = sql_json(
        lake,
        "SELECT user_id, CAST(event_time AS VARCHAR) AS t, duration_ms, event_date, module "
        "FROM events WHERE event_date = '2024-01-20' ORDER BY event_time",
    )
    assert [r["user_id"] for r in rows] == ["a1", "a2"]
    assert rows[0]["t"] == "2024-01-20T09:30:00.123456Z"
    assert rows[1]["duration_ms"] == 42000
    assert all(r["event_date"] == "2024-01-20" for r in rows)
    assert all("module" not in r or r["module"] is None for r in rows)
    assert sql_json(lake, "SELECT count(*) AS n FROM events")[0]["n"] == before + 2
    # A filter on event_time (which also prunes partitions by day) finds them.
    since = sql_json(lake, "SELECT count(*) AS n FROM events WHERE event_time >= TIMESTAMP '2024-01-20T09:30:00Z'")
    assert since[0]["n"] == 2
    # The reports see the new day: a2's page view is 0.7 minutes on 2024-01-20.
    day = sql_json(lake, "SELECT duration_min FROM account_daily WHERE org_id = 'acme' AND day = '2024-01-20'")
    assert abs(day[0]["duration_min"] - 0.7) < 1e-9


def test_a_file_with_a_wrong_column_type_is_named(tmp_path):
    lake = fixture_lake(tmp_path)
    folder = Path(lake) / "events" / "event_date=2024-01-21"
    folder.mkdir(parents=True)
    bad = pa.table({"event_time": ["2024-01-21"], "org_id": ["acme"], "user_id": ["a1"], "event": ["login"]})
    pq.write_table(bad, folder / "text-times.parquet")
    proc = run("sql", "--lake", lake, "SELECT count(*) FROM events", check=False)
    assert proc.returncode == 1
    assert "events/event_date=2024-01-21/text-times.parquet" in proc.stderr
    assert "event_time" in proc.stderr


def test_a_file_with_times_outside_its_partition_day_is_read_by_its_times(tmp_path):
    lake = fixture_lake(tmp_path)
    folder = Path(lake) / "events" / "event_date=2024-01-21"
    folder.mkdir(parents=True)
    # 00:30 on the 22nd, UTC, in the 21st's folder (a pipeline partitioning by
    # load date or local date does this): read, counted, dated by its time.
    t = dt.datetime(2024, 1, 22, 0, 30, tzinfo=dt.timezone.utc)
    odd = pa.table({"event_time": pa.array([t], type=pa.timestamp("us", tz="UTC")), "org_id": ["acme"], "user_id": ["a1"], "event": ["login"]})
    pq.write_table(odd, folder / "next-day.parquet")
    proc = run("sql", "--lake", lake, "--format", "json", "SELECT event_date, count(*) AS n FROM events WHERE event_time >= TIMESTAMP '2024-01-22T00:00:00Z' GROUP BY event_date")
    assert proc.stdout.strip() == '[{"event_date":"2024-01-22","n":1}]'
    assert "events/event_date=2024-01-21/next-day.parquet" in proc.stderr and "outside their folder's UTC day" in proc.stderr
    assert sql_json(lake, "SELECT count(*) AS n FROM events WHERE event_date = '2024-01-21'")[0]["n"] == 0
    # The last microsecond of the day is inside it.
    (folder / "next-day.parquet").unlink()
    edge = dt.datetime(2024, 1, 21, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    good = pa.table({"event_time": pa.array([edge], type=pa.timestamp("us", tz="UTC")), "org_id": ["acme"], "user_id": ["a1"], "event": ["login"]})
    pq.write_table(good, folder / "last-moment.parquet")
    proc = run("sql", "--lake", lake, "--format", "json", "SELECT count(*) AS n FROM events WHERE event_time > TIMESTAMP '2024-01-21T23:59:59Z' AND event_date = '2024-01-21'")
    assert proc.stdout.strip() == '[{"n":1}]' and "outside" not in proc.stderr


def test_an_s3_lake_answers_like_a_local_one(tmp_path, s3_server):
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["AWS_ENDPOINT_URL"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="vitals-test")
    local = str(tmp_path / "local")
    remote = "s3://vitals-test/lakes/demo"
    for lake, env in ((local, None), (remote, s3_server)):
        run("demo", "--lake", lake, "--accounts", "8", "--days", "21", "--seed", "5", env=env)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="vitals-test", Prefix="lakes/demo/events/")["Contents"]]
    assert len(keys) == 21 and all(k.endswith(".parquet") for k in keys)

    query = (
        "SELECT org_id, login_users, visits, page_views, duration_min, login_users_change_pct "
        "FROM account_usage('2026-09-30', 7) ORDER BY org_id"
    )
    assert sql_json(remote, query, env=s3_server) == sql_json(local, query)

    # Ingest into S3: a bad file leaves the bucket as it was, a good one lands once.
    before = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="vitals-test")["Contents"])
    bad = tmp_path / "bad.csv"
    bad.write_text("event_time,org_id,user_id,event\n2026-09-30T10:00:00Z,org-00001,u1,login\nnever,org-00001,u1,login\n")
    proc = run("ingest", "--lake", remote, bad, env=s3_server, check=False)
    assert proc.returncode == 1 and "line 3" in proc.stderr and "event_time" in proc.stderr
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="vitals-test")["Contents"]) == before
    good = tmp_path / "good.csv"
    good.write_text("event_id,event_time,org_id,user_id,event\nz1,2026-09-30T10:00:00Z,org-00001,u-00001-0001,login\n")
    for _ in range(2):
        run("ingest", "--lake", remote, good, env=s3_server)
    n = sql_json(remote, "SELECT count(*) AS n FROM events WHERE event_id = 'z1'", env=s3_server)[0]["n"]
    assert n == 1


def test_the_tour_generates_the_demo_and_shows_reports(tmp_path):
    lake = tmp_path / "tour"
    out = run("tour", "--lake", lake).stdout
    assert "generating the demo lake" in out
    assert "whose activity fell fastest" in out
    # The answers came over Arrow Flight SQL from a server the tour started.
    assert re.search(r"Serving .* on 127\.0\.0\.1:\d+ \(Arrow Flight SQL\)", out), out[:500]
    # The planted declining accounts named by `vitals demo` lead the first table.
    planted_line = next(l for l in out.splitlines() if l.startswith("planted:"))
    declining = planted_line.split("declining in the last 14 days: ")[1].split(";")[0].split(", ")
    first_table = out.split("== Paying accounts")[1].split("\n==")[0]
    top = re.findall(r"org-\d{5}", first_table)[: len(declining)]
    assert sorted(top) == sorted(declining), (top, declining)
    # The magic number step names the planted event first.
    magic = out.split("(the magic number)")[1].split("\n==")[0]
    body = magic.split("╞")[1]  # the rows below the header
    assert re.findall(r"│ (\w+)\s+┆", body)[0] == "create_dashboard"
    # Not in a terminal: the dashboard's URL is printed, and the tour ends.
    assert re.search(r"dashboard was at http://127\.0\.0\.1:\d+/#token=tour-[0-9a-f]{64} ", out), out[-600:]
    # A second tour reuses the lake.
    assert "generating" not in run("tour", "--lake", lake).stdout
    shutil.rmtree(lake)


def test_the_tour_in_a_terminal_keeps_the_dashboard_up_until_ctrl_c(demo_lake):
    import http.client
    import os
    import pty
    import select
    import signal
    import subprocess

    master, slave = pty.openpty()
    proc = subprocess.Popen([vitals_bin(), "tour", "--lake", str(demo_lake)], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.time() + 300
        while b"Serving until Ctrl-C" not in out and time.time() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
        text = out.decode(errors="replace")
        m = re.search(r"signed in: http://127\.0\.0\.1:(\d+)/#token=(tour-[0-9a-f]{64})", text)
        assert m and "Serving until Ctrl-C" in text, text[-800:]
        port, token = int(m.group(1)), m.group(2)
        # The tour is done asking, and the dashboard still answers, with the printed token.
        time.sleep(1)
        assert proc.poll() is None
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/")
        page = conn.getresponse()
        assert page.status == 200 and b"/assets/app.js" in page.read()
        conn.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        me = conn.getresponse()
        assert me.status == 200 and json.loads(me.read())["role"] == "analyst"
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_output_into_a_pipe_that_closes_early_ends_quietly(tmp_path):
    # `true` reads nothing and exits at once: every line vitals prints meets a closed pipe.
    # Also when the parent left SIGPIPE blocked (some CI runners do).
    cmd = f"'{vitals_bin()}' demo --lake '{tmp_path / 'lake'}' --accounts 20 --days 20 | true"
    import signal
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    try:
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert "panicked" not in p.stderr and p.stderr.strip() == "", p.stderr
    # The demo was written all the same (the output comes after the commit).
    assert sql_json(tmp_path / "lake", "SELECT count(DISTINCT org_id) AS n FROM accounts")[0]["n"] == 20
