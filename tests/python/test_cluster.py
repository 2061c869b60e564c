"""The same SQL and reports on a Ballista cluster: a scheduler and two
executors of the built binary on 127.0.0.1, started here and stopped at the
end whatever happens. Every report and a fixed set of queries are run locally
and with --cluster; the answers must be equal (rows sorted; floats within a
relative 1e-9, since a distributed sum adds in another order)."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port, run, vitals_bin

sys.path.insert(0, str(ROOT / "benches"))
from reports import REPORTS, report_sql  # noqa: E402  (every report, with arguments for a demo lake)

# Queries beyond the reports: joins, aggregates, the behavioural functions, a window function.
QUERIES = [
    "SELECT count(*) AS n, count(DISTINCT user_id) AS users, min(event_time) AS first, max(event_time) AS last FROM events",
    "SELECT e.org_id, a.name, a.plan, count(*) AS n FROM events e JOIN accounts a ON a.org_id = e.org_id GROUP BY 1, 2, 3",
    "SELECT u.role, count(DISTINCT e.user_id) AS users, sum(e.duration_ms) AS ms FROM events e LEFT JOIN users u ON u.user_id = e.user_id GROUP BY 1",
    "SELECT event_date, event, count(*) AS n FROM events WHERE event_date >= (SELECT max(event_date) FROM events) - 6 GROUP BY 1, 2",
    "SELECT level, count(*) AS users FROM (SELECT user_id, window_funnel(INTERVAL '7 days', event_time, event = 'signup', event = 'create_project', event = 'invite_user', event = 'upgrade') AS level FROM events GROUP BY user_id) GROUP BY level",
    "SELECT r, count(*) AS users FROM (SELECT user_id, retention(event = 'signup', event = 'login', event = 'create_project') AS r FROM events GROUP BY user_id) GROUP BY r",
    "SELECT sequence_match('(?1).*(?2)', event_time, event = 'signup', event = 'upgrade') AS m, count(*) AS users FROM events GROUP BY user_id HAVING true",
    "SELECT org_id, event_date, n, sum(n) OVER (PARTITION BY org_id ORDER BY event_date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS week FROM (SELECT org_id, event_date, count(*) AS n FROM events GROUP BY 1, 2)",
    "SELECT org_id, rank() OVER (ORDER BY count(*) DESC, org_id) AS rk FROM events GROUP BY org_id",
    "SELECT * FROM account_daily WHERE org_id = 'org-00002'",
    "SELECT * FROM reports.health_scores",
]


def rows_equal(a, b):
    """Two results as JSON rows, equal up to row order and float rounding."""
    if len(a) != len(b):
        return False
    key = lambda r: json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}, sort_keys=True, default=str)
    for x, y in zip(sorted(a, key=key), sorted(b, key=key)):
        if x.keys() != y.keys():
            return False
        for k in x:
            u, v = x[k], y[k]
            if isinstance(u, float) or isinstance(v, float):
                if u is None or v is None or not math.isclose(float(u), float(v), rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif u != v:
                return False
    return True


class Cluster:
    """A scheduler and executors on 127.0.0.1, each a process of the binary, with logs."""

    def __init__(self, lake, folder, executors=2, env=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, VITALS_LOG="info", **(env or {}))
        self.procs = {}
        self.port = free_port()
        self.url = f"df://127.0.0.1:{self.port}"
        try:
            self.start("scheduler", ["scheduler", "--lake", lake, "--bind-port", self.port])
            self.wait_log("scheduler", r"listening on")
            for i in range(executors):
                self.start_executor(lake, i)
        except BaseException:
            self.stop()
            raise

    def start(self, name, args):
        log = open(self.folder / f"{name}.log", "w")
        proc = subprocess.Popen([vitals_bin(), *map(str, args)], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs[name] = (proc, log)

    def start_executor(self, lake, i):
        name = f"executor{i}"
        self.start(name, [
            "executor", "--lake", lake, "--port", free_port(), "--grpc-port", free_port(),
            "--scheduler-port", self.port, "--concurrent-tasks", 2, "--work-dir", self.folder / f"work{i}",
        ])
        self.wait_log(name, r"Executor registration succeed")
        return name

    def log(self, name):
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def wait_log(self, name, pattern, timeout=60):
        deadline = time.time() + timeout
        while not re.search(pattern, self.log(name)):
            proc = self.procs[name][0]
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"vitals {name} did not start: {self.log(name)[-3000:]}")
            time.sleep(0.2)

    def alive(self, name):
        return self.procs[name][0].poll() is None

    def kill(self, name):
        self.procs[name][0].send_signal(signal.SIGKILL)
        self.procs[name][0].wait()

    def stop(self):
        for proc, log in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc, log in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def sql(lake, query, cluster=None, env=None):
    """(rows, None) or (None, the error) of one query, locally or on the cluster."""
    args = ["sql", "--lake", lake, "--format", "json"]
    if cluster:
        args += ["--cluster", cluster.url]
    proc = run(*args, query, env=env, check=False)
    if proc.returncode != 0:
        # The message from its `error:` line on (log lines before it are not part of it).
        text = proc.stderr
        start = text.find("error:")
        return None, (text[start:] if start >= 0 else text).strip() or f"exit {proc.returncode}"
    return json.loads(proc.stdout), None


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """A demo lake long enough for every report's defaults (churn_model's needs 125 days)."""
    path = tmp_path_factory.mktemp("cluster") / "lake"
    run("demo", "--lake", path, "--accounts", "24", "--days", "130", "--seed", "11")
    return path


@pytest.fixture(scope="module")
def cluster(lake, tmp_path_factory):
    c = Cluster(lake, tmp_path_factory.mktemp("cluster-procs"))
    try:
        yield c
    finally:
        c.stop()


def last_day(lake):
    return sql(lake, "SELECT max(event_date) AS d FROM events")[0][0]["d"]


def test_the_report_list_covers_every_report():
    files = {p.stem for p in (ROOT / "sql" / "reports").glob("*.sql")}
    called = {re.match(r"(\w+)\(", call).group(1) for _, call in REPORTS if not call.startswith("SELECT")}
    assert files <= called, files - called


@pytest.mark.parametrize("name,call", REPORTS, ids=[n for n, _ in REPORTS])
def test_every_report_answers_the_same_on_the_cluster(lake, cluster, name, call):
    query = report_sql(call, last_day(lake))
    local, local_error = sql(lake, query)
    remote, remote_error = sql(lake, query, cluster)
    if local_error:
        # A report that cannot run here says the same on the cluster.
        assert remote_error == local_error, (local_error, remote_error)
        return
    assert remote_error is None, remote_error
    assert local, f"{name} gave no rows: the comparison would prove nothing"
    assert rows_equal(local, remote), (name, local[:3], remote[:3])


@pytest.mark.parametrize("query", QUERIES)
def test_queries_answer_the_same_on_the_cluster(lake, cluster, query):
    local, local_error = sql(lake, query)
    assert local_error is None, local_error
    remote, remote_error = sql(lake, query, cluster)
    assert remote_error is None, remote_error
    assert local and rows_equal(local, remote), (local[:3], remote[:3])


def test_both_executors_ran_tasks(lake, cluster):
    # After the tests above: each executor's log names tasks it ran.
    for name in ("executor0", "executor1"):
        assert re.search(r"Execute task", cluster.log(name)), cluster.log(name)[-2000:]


def test_a_bad_query_fails_clearly_and_the_cluster_stays_up(lake, cluster):
    _, error = sql(lake, "SELECT no_such_column FROM events", cluster)
    assert error and "no_such_column" in error, error
    _, error = sql(lake, "SELECT * FROM funnel('signup,no_such_event', '7 days')", cluster)
    assert error and "no_such_event" in error, error
    assert all(cluster.alive(n) for n in cluster.procs)
    rows, error = sql(lake, QUERIES[0], cluster)
    assert error is None and rows[0]["n"] > 0


def test_an_account_token_sees_only_its_account_on_the_cluster(lake, cluster, tmp_path):
    from server_util import Server, flight_query, role_tokens

    org = "org-00003"
    config = tmp_path / "vitals.toml"
    config.write_text(role_tokens("csm-1", org))
    query = "SELECT org_id, count(*) AS n, count(DISTINCT user_id) AS users FROM events GROUP BY org_id"
    report = "SELECT * FROM health_scores(NULL, 7)"
    answers = {}
    for mode, flags in (("local", []), ("cluster", ["--cluster", cluster.url])):
        server = Server(lake, config, *flags)
        try:
            answers[mode] = [flight_query(server.uri, "account-secret", q)[1].to_pylist() for q in (query, report)]
        finally:
            server.stop()
    local, remote = answers["local"], answers["cluster"]
    assert [r["org_id"] for r in local[0]] == [org]
    assert rows_equal(local[0], remote[0])
    assert {r["org_id"] for r in remote[1]} == {org}
    assert rows_equal(local[1], remote[1])


def test_a_killed_executor_fails_or_retries_the_query_and_the_next_one_runs(lake, tmp_path):
    c = Cluster(lake, tmp_path / "procs")
    try:
        heavy = report_sql("paths('login', '', 5, '2 hours', 'account', NULL, NULL, 'page_view')", None)
        expected, error = sql(lake, heavy)
        assert error is None
        result = {}
        job = threading.Thread(target=lambda: result.update(zip(("rows", "error"), sql(lake, heavy, c))))
        job.start()
        # Kill one executor once it has been given a task of this query.
        deadline = time.time() + 60
        while not re.search(r"Execute task", c.log("executor1")) and time.time() < deadline and job.is_alive():
            time.sleep(0.05)
        c.kill("executor1")
        job.join(300)
        assert not job.is_alive(), "the query hung after an executor was killed"
        if result["error"] is None:
            assert rows_equal(expected, result["rows"])
        else:
            assert result["error"].strip(), "an empty error"
        assert c.alive("scheduler") and c.alive("executor0")
        rows, error = sql(lake, QUERIES[0], c)
        assert error is None, error
        assert rows_equal(rows, sql(lake, QUERIES[0])[0])
    finally:
        c.stop()


def test_an_s3_lake_answers_the_same_on_the_cluster(tmp_path, s3_server, lake):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"], aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    s3.create_bucket(Bucket="vitals-cluster")
    remote = "s3://vitals-cluster/lake"
    run("demo", "--lake", remote, "--accounts", "24", "--days", "130", "--seed", "11", env=s3_server)
    c = Cluster(remote, tmp_path / "procs", env=s3_server)
    try:
        # The same demo on S3 and on disk: every report and query, answered by the cluster from S3, equals the local answer from disk.
        checks = QUERIES + [report_sql(call, last_day(lake)) for _, call in REPORTS]
        for q in checks:
            local, local_error = sql(lake, q)
            on_s3, error = sql(remote, q, c, env=s3_server)
            if local_error:
                assert error == local_error, (q, local_error, error)
                continue
            assert error is None, (q, error)
            assert rows_equal(local, on_s3), q
    finally:
        c.stop()
