"""`vitals serve` tested through real clients against a real process on
127.0.0.1: the ADBC Flight SQL driver, pyarrow.flight and a grpcio client
generated from proto/. Answers are checked against `vitals sql` on the same
lake; scope, auth and limits against exact gRPC status codes."""

import json
import math
import subprocess
import time

import adbc_driver_flightsql.dbapi as flightsql
import grpc
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from conftest import run, sql_json
from server_util import (
    Background,
    Server,
    bearer,
    cancel_action,
    command_descriptor,
    drain,
    flight_error,
    flight_query,
    role_tokens,
    statement_descriptor,
    stubs,
    token_entry,
)

ORG_A = "org-00025"
USER_A = "u-00025-0013"
CSM = "bruno.silva"
# A query that runs for minutes in little memory (until cancelled or timed out).
SLOW = "SELECT sum(value % 7) AS n FROM generate_series(1, 100000000000)"


def start_slow(uri, secret="analyst-secret"):
    """Starts SLOW over Flight SQL in a thread; returns (client, info, job)."""
    client = fl.FlightClient(uri)
    opts = bearer(secret)
    info = client.get_flight_info(statement_descriptor(SLOW), opts)
    job = Background(lambda: drain(client.do_get(info.endpoints[0].ticket, opts)))
    job.start()
    return client, info, job


@pytest.fixture(scope="module")
def lake(demo_lake):
    return demo_lake


@pytest.fixture(scope="module")
def config(lake, tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "vitals.toml"
    path.write_text(
        role_tokens(CSM, ORG_A)
        + token_entry("old", "analyst", "expired-secret", expires="2020-01-01")
        + token_entry("temp", "analyst", "temp-secret")
    )
    return path


@pytest.fixture(scope="module")
def server(lake, config):
    s = Server(lake, config, env={"VITALS_FAILPOINT": "panic-function"})
    yield s
    code = s.stop()
    assert code == 0, f"vitals serve exited with {code} after SIGTERM"


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return stubs(tmp_path_factory.mktemp("stubs"))


def adbc(server, secret=None, user=None):
    if user:
        return flightsql.connect(server.uri, db_kwargs={"username": user, "password": secret})
    return flightsql.connect(server.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {secret}"})


def rows(conn, sql, params=None):
    cur = conn.cursor()
    cur.execute(sql, parameters=params)
    t = cur.fetch_arrow_table()
    cur.close()
    return t.to_pylist()


def scope_of(lake, who):
    if who == "account":
        return {ORG_A}
    return {r["org_id"] for r in sql_json(lake, f"SELECT org_id FROM accounts WHERE csm = '{CSM}'")}


# ---------------------------------------------------------------- ADBC

def test_adbc_queries_prepared_statement_and_catalog(server, lake):
    with adbc(server, "admin-secret", user="root") as conn:
        got = rows(conn, "SELECT org_id, count(*) AS n FROM events GROUP BY org_id ORDER BY org_id")
        want = sql_json(lake, "SELECT org_id, count(*) AS n FROM events GROUP BY org_id ORDER BY org_id")
        assert got == want and len(got) > 50

        # A prepared statement with a parameter: the same count as a literal query.
        for org in [ORG_A, "org-00001", "no-such-org"]:
            got = rows(conn, "SELECT count(*) AS n FROM events WHERE org_id = ?", params=(org,))
            want = sql_json(lake, f"SELECT count(*) AS n FROM events WHERE org_id = '{org}'")
            assert got == want
        assert rows(conn, "SELECT count(*) AS n FROM events WHERE org_id = ?", params=("no-such-org",)) == [{"n": 0}]

        # A report table function over Flight SQL equals the CLI's.
        got = rows(conn, "SELECT org_id, visits, visits_prev FROM account_usage('2026-09-30', 7) ORDER BY org_id")
        want = sql_json(lake, "SELECT org_id, visits, visits_prev FROM account_usage('2026-09-30', 7) ORDER BY org_id")
        assert got == want

        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        tables = {
            t["table_name"]: t
            for c in objects
            for s in c["catalog_db_schemas"]
            for t in s["db_schema_tables"]
        }
        assert {"events", "accounts", "users", "interventions", "account_daily", "user_daily"} <= set(tables)
        assert tables["events"]["table_type"] == "TABLE" and tables["account_daily"]["table_type"] == "VIEW"
        columns = [c["column_name"] for c in tables["events"]["table_columns"]]
        assert columns[:5] == ["event_id", "event_time", "org_id", "user_id", "event"]
        assert "event_date" in columns


def test_flight_info_schema_is_the_streamed_schema(server):
    """Strict clients reject a FlightInfo schema that differs from the stream's."""
    for sql in [
        "SELECT * FROM events LIMIT 5",
        "SELECT * FROM accounts",
        "SELECT * FROM health_scores()",
        "SELECT * FROM funnel('signup,create_project,invite_user', '7 days')",
        "SELECT * FROM retention_matrix('signup', 'login', 'week', 4)",
        "SELECT org_id, count(*) AS n, min(event_time) AS first FROM events GROUP BY org_id",
        "SELECT 1 AS one WHERE false",
    ]:
        schema, table = flight_query(server.uri, "admin-secret", sql)
        assert schema == table.schema, sql
        assert all(not str(f.type).startswith("string_view") for f in schema), sql


# ---------------------------------------------------------- pyarrow.flight

def test_sql_info_table_types_and_xdbc_type_info(server):
    client = fl.FlightClient(server.uri)
    opts = bearer("analyst-secret")

    def fetch(kind):
        info = client.get_flight_info(command_descriptor(kind), opts)
        table = client.do_get(info.endpoints[0].ticket, opts).read_all()
        assert table.schema == info.schema, kind
        return table.to_pylist()

    info = {r["info_name"]: r["value"] for r in fetch("CommandGetSqlInfo")}
    assert info[0] == "vitals"  # FLIGHT_SQL_SERVER_NAME
    assert info[3] is True  # FLIGHT_SQL_SERVER_READ_ONLY
    assert info[9] is True  # FLIGHT_SQL_SERVER_CANCEL
    assert {r["table_type"] for r in fetch("CommandGetTableTypes")} == {"TABLE", "VIEW", "LOCAL TEMPORARY"}
    types = {r["type_name"] for r in fetch("CommandGetXdbcTypeInfo")}
    assert {"VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP"} <= types
    schemas = fetch("CommandGetDbSchemas")
    assert {"catalog_name": "datafusion", "db_schema_name": "public"} in schemas


def test_pyarrow_handshake_query_and_cancel(server):
    client = fl.FlightClient(server.uri)
    header = client.authenticate_basic_token("ana", "analyst-secret")
    assert header[0] == b"authorization" and header[1].startswith(b"Bearer ")
    opts = fl.FlightCallOptions(headers=[header])
    info = client.get_flight_info(statement_descriptor("SELECT count(*) AS n FROM accounts"), opts)
    table = client.do_get(info.endpoints[0].ticket, opts).read_all()
    assert table.to_pylist() == [{"n": 120}]

    # Cancel a slow query while it runs, with either action.
    for kind in ["CancelFlightInfo", "CancelQuery"]:
        info = client.get_flight_info(statement_descriptor(SLOW), opts)
        job = Background(lambda: drain(client.do_get(info.endpoints[0].ticket, opts)))
        started = time.time()
        job.start()
        time.sleep(1.0)
        result = list(client.do_action(cancel_action(info, kind), opts))
        assert len(result) == 1
        job.join(60)
        assert not job.is_alive()
        assert isinstance(job.error, fl.FlightCancelledError), (kind, job.error)
        assert time.time() - started < 30
    # The server goes on.
    assert client.do_get(client.get_flight_info(statement_descriptor("SELECT 2 AS x"), opts).endpoints[0].ticket, opts).read_all().to_pylist() == [{"x": 2}]


def test_only_the_owner_or_an_admin_cancels_a_query(server):
    client, info, job = start_slow(server.uri)
    time.sleep(1.0)
    with pytest.raises(fl.FlightUnauthorizedError):
        list(client.do_action(cancel_action(info), bearer("csm-secret")))
    assert job.is_alive()
    running = [json.loads(r.body.to_pybytes()) for r in client.do_action(fl.Action("vitals.ListQueries", b""), bearer("admin-secret"))]
    assert any(q["principal"] == "ana" and "generate_series" in q["sql"] for q in running), running
    list(client.do_action(cancel_action(info), bearer("admin-secret")))
    job.join(60)
    assert isinstance(job.error, fl.FlightCancelledError), job.error


# ------------------------------------------------------------------ grpc

def report_calls(pb):
    return [
        ("AccountUsage", pb.AccountUsageRequest(as_of="2026-09-30", days=7)),
        ("KeyUserUsage", pb.KeyUserUsageRequest(org_id=ORG_A, days=14)),
        ("ModuleUsageShare", pb.ModuleUsageShareRequest()),
        ("ChannelQuality", pb.ChannelQualityRequest(**{"from_date": "2026-09-01", "to_date": "2026-09-30"})),
        ("Funnel", pb.FunnelRequest(steps=["signup", "create_project", "invite_user", "upgrade"], window="14 days", breakdown="utm_source")),
        ("RetentionMatrix", pb.RetentionMatrixRequest(cohort_event="signup", return_event="login", period="week", periods=6)),
        ("FeatureRetention", pb.FeatureRetentionRequest()),
        ("MagicNumber", pb.MagicNumberRequest(target="week2", window_days=7, max_n=5)),
        ("HealthScores", pb.HealthScoresRequest(days=14)),
        ("DecliningAccounts", pb.DecliningAccountsRequest(csms=2, per_csm=5, days=14)),
        ("InterventionEffect", pb.InterventionEffectRequest(days=7)),
        ("AccountLifecycle", pb.AccountLifecycleRequest()),
        ("UserLifecycle", pb.UserLifecycleRequest(period="week")),
        ("ActivityTrend", pb.ActivityTrendRequest(**{"from_date": "2026-09-01", "to_date": "2026-09-30", "org_id": ORG_A})),
        ("ModuleUsageShare", pb.ModuleUsageShareRequest(org_id=ORG_A)),
        ("HealthHistory", pb.HealthHistoryRequest(**{"from_date": "2026-09-02", "to_date": "2026-09-30", "every": "14 days", "days": 7})),
        ("Alerts", pb.AlertsRequest(as_of="2026-09-30", lookback="14 days")),
        ("RevenueRetention", pb.RevenueRetentionRequest(**{"period": "month", "from_date": "2026-01-01", "to_date": "2026-09-30"})),
        ("RevenueMovements", pb.RevenueMovementsRequest(**{"from_date": "2026-07-01", "to_date": "2026-09-30", "period": "quarter"})),
        ("AccountTimeline", pb.AccountTimelineRequest(**{"org_id": ORG_A, "from_date": "2026-08-01", "to_date": "2026-09-30", "days": 7})),
        ("ChurnRisk", pb.ChurnRiskRequest(as_of="2026-09-30", horizon_days=30)),
        ("ChurnModel", pb.ChurnModelRequest(as_of="2026-09-30", horizon_days=30)),
        ("Paths", pb.PathsRequest(start_event="signup", steps=4, window="7 days", ignore="page_view", top=5)),
        ("PathEdges", pb.PathEdgesRequest(start_event="login", steps=3, unit="account")),
        ("FunnelDropoffs", pb.FunnelDropoffsRequest(steps=["signup", "create_project", "invite_user", "upgrade"], window="14 days", step=2, limit=50)),
        ("FunnelCorrelation", pb.FunnelCorrelationRequest(steps=["signup", "upgrade"], window="14 days", properties="plan,role")),
        ("AccountFeatureUsage", pb.AccountFeatureUsageRequest(org_id=ORG_A, days=14)),
        ("Funnel", pb.FunnelRequest(steps=["signup", "upgrade"], window="14 days", unit="account")),
        ("FunnelTimeToConvert", pb.FunnelTimeToConvertRequest(steps=["signup", "create_project", "invite_user", "upgrade"], window="14 days", from_step=2, bins=12)),
        ("UserEvents", pb.UserEventsRequest(user_id=USER_A, limit=40)),
    ]


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, str) and isinstance(b, str) and len(a) >= 19 and a[4] == "-" and a[10] in "T ":
        # Timestamps: the CLI writes "2026-09-30T10:00:00", the service ISO 8601 with a zone.
        return a[:10] == b[:10] and a[11:19] == b[11:19]
    return a == b


def test_every_report_rpc_equals_vitals_sql(server, lake, pb):
    reports_pb2, reports_grpc = pb
    channel = grpc.insecure_channel(server.target)
    stub = reports_grpc.ReportsStub(channel)
    md = [("authorization", "Bearer analyst-secret")]
    for rpc, req in report_calls(reports_pb2):
        resp = getattr(stub, rpc)(req, metadata=md, timeout=120)
        assert resp.sql.startswith("SELECT * FROM "), rpc
        want = sql_json(lake, resp.sql)
        assert len(resp.rows) == len(want), (rpc, len(resp.rows), len(want))
        assert len(want) > 0, rpc
        for got_row, want_row in zip(resp.rows, want):
            for col, value in want_row.items():
                if isinstance(getattr(got_row, col), (list, tuple)) or hasattr(getattr(got_row, col), "extend"):  # repeated: a list column, NULL as empty
                    assert list(getattr(got_row, col)) == (value or []), (rpc, col)
                    continue
                has = got_row.HasField(col)
                got = getattr(got_row, col) if has else None
                assert (value is None) == (not has), (rpc, col, value, got)
                if value is not None:
                    assert same(got, value), (rpc, col, got, value)


def test_report_rpc_errors_are_invalid_argument(server, pb):
    reports_pb2, reports_grpc = pb
    stub = reports_grpc.ReportsStub(grpc.insecure_channel(server.target))
    md = [("authorization", "Bearer analyst-secret")]
    for rpc, req, words in [
        ("AccountUsage", reports_pb2.AccountUsageRequest(days=0), "days must be between"),
        ("AccountUsage", reports_pb2.AccountUsageRequest(as_of="1999-01-01"), "outside the data"),
        ("Funnel", reports_pb2.FunnelRequest(steps=["signup", "no_such_event"]), "unknown event"),
        ("Funnel", reports_pb2.FunnelRequest(), "steps"),
        ("RetentionMatrix", reports_pb2.RetentionMatrixRequest(cohort_event="signup", return_event="login", period="fortnight"), "unknown period"),
        ("KeyUserUsage", reports_pb2.KeyUserUsageRequest(org_id="org-99999"), "unknown org_id"),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            getattr(stub, rpc)(req, metadata=md, timeout=60)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (rpc, e.value)
        assert words in e.value.details(), (rpc, e.value.details())


def test_health_and_reflection(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    channel = grpc.insecure_channel(server.target)
    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "vitals.v1.Reports", "arrow.flight.protocol.FlightService"]:
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    db = ProtoReflectionDescriptorDatabase(channel)
    assert "vitals.v1.Reports" in set(db.get_services())


# ------------------------------------------------------------------ auth

AUTH_CASES = [
    (None, "UNAUTHENTICATED"),
    ("Bearer", "UNAUTHENTICATED"),
    ("garbage", "UNAUTHENTICATED"),
    ("Token analyst-secret", "UNAUTHENTICATED"),
    ("Basic !!!notbase64", "UNAUTHENTICATED"),
    ("Bearer not-a-token", "UNAUTHENTICATED"),
    ("Bearer expired-secret", "UNAUTHENTICATED"),
    ("Bearer analyst-secret", "OK"),
]


def grpc_code(stub, pb, header):
    md = [("authorization", header)] if header else []
    try:
        stub.AccountUsage(pb.AccountUsageRequest(), metadata=md, timeout=60)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def flight_code(server, header):
    client = fl.FlightClient(server.uri)
    opts = fl.FlightCallOptions(headers=[(b"authorization", header.encode())] if header else [])
    try:
        info = client.get_flight_info(statement_descriptor("SELECT 1 AS x"), opts)
        client.do_get(info.endpoints[0].ticket, opts).read_all()
        return "OK"
    except fl.FlightUnauthenticatedError:
        return "UNAUTHENTICATED"
    except fl.FlightUnauthorizedError:
        return "PERMISSION_DENIED"


def test_auth_matrix(server, pb):
    reports_pb2, reports_grpc = pb
    stub = reports_grpc.ReportsStub(grpc.insecure_channel(server.target))
    for header, want in AUTH_CASES:
        assert grpc_code(stub, reports_pb2, header) == want, header
        assert flight_code(server, header) == want, header


def test_removed_token_stops_working(server, pb, config):
    reports_pb2, reports_grpc = pb
    stub = reports_grpc.ReportsStub(grpc.insecure_channel(server.target))
    client = fl.FlightClient(server.uri)
    session = client.authenticate_basic_token("temp", "temp-secret")[1].decode()
    assert grpc_code(stub, reports_pb2, "Bearer temp-secret") == "OK"
    assert flight_code(server, session) == "OK"
    text = config.read_text()
    kept = [block for block in text.split("\n\n") if 'name = "temp"' not in block]
    time.sleep(1.1)
    config.write_text("\n\n".join(kept))
    time.sleep(1.5)
    assert grpc_code(stub, reports_pb2, "Bearer temp-secret") == "UNAUTHENTICATED"
    assert flight_code(server, session) == "UNAUTHENTICATED"
    assert grpc_code(stub, reports_pb2, "Bearer analyst-secret") == "OK"


def test_permission_denied_outside_the_role(server, pb):
    reports_pb2, reports_grpc = pb
    stub = reports_grpc.ReportsStub(grpc.insecure_channel(server.target))
    with pytest.raises(grpc.RpcError) as e:
        stub.KeyUserUsage(reports_pb2.KeyUserUsageRequest(org_id="org-00001"), metadata=[("authorization", "Bearer account-secret")], timeout=60)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    ok = stub.KeyUserUsage(reports_pb2.KeyUserUsageRequest(org_id=ORG_A), metadata=[("authorization", "Bearer account-secret")], timeout=60)
    assert len(ok.rows) > 0
    client = fl.FlightClient(server.uri)
    with pytest.raises(fl.FlightUnauthorizedError):
        list(client.do_action(fl.Action("vitals.ListQueries", b""), bearer("analyst-secret")))
    list(client.do_action(fl.Action("vitals.ListQueries", b""), bearer("admin-secret")))


# ----------------------------------------------------------------- scope

SCOPE_QUERIES = [
    "SELECT DISTINCT org_id FROM events",
    "SELECT DISTINCT org_id FROM accounts",
    "SELECT DISTINCT org_id FROM users",
    "SELECT DISTINCT org_id FROM interventions",
    "SELECT DISTINCT a.org_id FROM accounts a JOIN users u ON u.org_id = a.org_id",
    "SELECT DISTINCT u.org_id FROM events e JOIN users u ON e.user_id = u.user_id",
    "SELECT DISTINCT a.org_id FROM events e RIGHT JOIN accounts a ON e.org_id = a.org_id",
    "SELECT DISTINCT org_id FROM account_daily",
    "SELECT DISTINCT org_id FROM user_daily",
    "SELECT DISTINCT org_id FROM account_usage('2026-09-30', 28)",
    "SELECT DISTINCT org_id FROM health_scores()",
    "SELECT DISTINCT org_id FROM declining_accounts(5, 50, 14)",
    "SELECT DISTINCT org_id FROM account_lifecycle()",
    "SELECT DISTINCT org_id FROM intervention_effect(7)",
    "SELECT DISTINCT org_id FROM events WHERE org_id = 'org-00001' OR 1 = 1",
    "SELECT DISTINCT org_id FROM events WHERE org_id IN (SELECT org_id FROM accounts WHERE true)",
    "SELECT org_id FROM events WHERE org_id = 'org-00001' UNION ALL SELECT 'literal' AS org_id",
    "SELECT DISTINCT org_id FROM (SELECT * FROM events) AS sub WHERE org_id <> ''",
    "SELECT DISTINCT org_id FROM (SELECT org_id FROM accounts UNION SELECT org_id FROM users)",
]


@pytest.mark.parametrize("who,secret", [("account", "account-secret"), ("csm", "csm-secret")])
def test_scope_yields_no_foreign_rows(server, lake, pb, who, secret):
    scope = scope_of(lake, who)
    everyone = {r["org_id"] for r in sql_json(lake, "SELECT org_id FROM accounts")}
    assert scope and scope < everyone
    foreign = sorted(everyone - scope)[0]
    allowed = scope | {"literal"}
    with adbc(server, secret) as conn:
        for sql in SCOPE_QUERIES:
            seen = {r["org_id"] for r in rows(conn, sql)}
            assert seen <= allowed, (who, sql, seen - allowed)
        # Counts equal the admin's counts restricted to the scope.
        in_list = ", ".join(f"'{o}'" for o in sorted(scope))
        for table in ["events", "users", "accounts", "account_daily"]:
            got = rows(conn, f"SELECT count(*) AS n FROM {table}")
            want = sql_json(lake, f"SELECT count(*) AS n FROM {table} WHERE org_id IN ({in_list})")
            assert got == want, (who, table)
        # A prepared statement naming a foreign account finds nothing.
        assert rows(conn, "SELECT count(*) AS n FROM events WHERE org_id = ?", params=(foreign,)) == [{"n": 0}]
        # A report that names another account is refused like an unknown one.
        with pytest.raises(Exception) as e:
            rows(conn, f"SELECT * FROM key_user_usage('{foreign}')")
        assert "unknown org_id" in str(e.value)
        # Metadata: the same names, and no values at all from another account.
        objects = json.dumps(conn.adbc_get_objects(depth="all").read_all().to_pylist(), default=str)
        info = json.dumps(rows(conn, "SELECT * FROM information_schema.tables") + rows(conn, "SELECT * FROM information_schema.views"), default=str)
        for foreign in everyone - scope:
            assert foreign not in objects and foreign not in info
    reports_pb2, reports_grpc = pb
    stub = reports_grpc.ReportsStub(grpc.insecure_channel(server.target))
    md = [("authorization", f"Bearer {secret}")]
    for rpc, req in [("AccountUsage", reports_pb2.AccountUsageRequest()), ("HealthScores", reports_pb2.HealthScoresRequest()), ("DecliningAccounts", reports_pb2.DecliningAccountsRequest(csms=5, per_csm=50)), ("AccountLifecycle", reports_pb2.AccountLifecycleRequest())]:
        resp = getattr(stub, rpc)(req, metadata=md, timeout=120)
        assert {r.org_id for r in resp.rows} <= scope, rpc
    resp = stub.AccountUsage(reports_pb2.AccountUsageRequest(), metadata=md, timeout=120)
    assert {r.org_id for r in resp.rows} == scope


# ---------------------------------------------------------------- limits

@pytest.fixture(scope="module")
def tight(lake, config):
    s = Server(
        lake,
        config,
        "--query-memory", "4MiB",
        "--query-timeout", "3s",
        "--max-concurrent-queries", "1",
        "--max-queued-queries", "0",
        "--max-result-rows", "1000",
        "--shutdown-grace", "2s",
        env={"VITALS_FAILPOINT": "panic-function"},
    )
    yield s
    assert s.alive(), "the server died under the limit tests"
    started = time.time()
    assert s.stop() == 0
    assert time.time() - started < 15


def assert_next_query_works(server):
    schema, table = flight_query(server.uri, "analyst-secret", "SELECT count(*) AS n FROM accounts")
    assert table.to_pylist() == [{"n": 120}]


@pytest.mark.parametrize(
    "sql,error,words",
    [
        ("CREATE TABLE t AS SELECT 1", fl.FlightUnauthorizedError, "read-only"),
        ("CREATE VIEW v AS SELECT 1", fl.FlightUnauthorizedError, "read-only"),
        ("DROP VIEW account_daily", fl.FlightUnauthorizedError, "read-only"),
        ("INSERT INTO accounts (org_id) VALUES ('x')", fl.FlightUnauthorizedError, "read-only"),
        ("COPY (SELECT * FROM accounts) TO '/tmp/vitals-copy-test.csv'", fl.FlightUnauthorizedError, "read-only"),
        ("CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc/'", fl.FlightUnauthorizedError, "read-only"),
        ("SET datafusion.execution.batch_size = 1", fl.FlightUnauthorizedError, "read-only"),
        ("SELECT * FROM '/etc/passwd'", pa.ArrowInvalid, "not found"),
        ("SELECT 1; DROP VIEW account_daily", pa.ArrowInvalid, "single SQL statement"),
    ],
)
def test_read_only_sql(tight, sql, error, words):
    e = flight_error(tight.uri, sql)
    assert e is not None, sql
    assert isinstance(e, error), (sql, type(e), e)
    assert words in str(e), (sql, str(e))
    assert_next_query_works(tight)


def test_memory_limit(tight):
    e = flight_error(tight.uri, "SELECT array_length(array_agg(event_id)) AS n FROM events")
    assert e is not None and "resource exhausted error" in str(e) and "memory limit of 4.0 MiB" in str(e), e
    assert_next_query_works(tight)


def test_timeout(tight):
    started = time.time()
    e = flight_error(tight.uri, SLOW)
    assert isinstance(e, fl.FlightTimedOutError), e
    assert "timeout" in str(e)
    assert time.time() - started < 20
    assert_next_query_works(tight)


def test_result_size_limit(tight):
    e = flight_error(tight.uri, "SELECT * FROM events LIMIT 5000")
    assert e is not None and "resource exhausted error" in str(e) and "more than 1000 rows" in str(e), e
    schema, table = flight_query(tight.uri, "analyst-secret", "SELECT * FROM events LIMIT 1000")
    assert table.num_rows == 1000


def test_concurrency_limit(tight):
    client, info, job = start_slow(tight.uri)
    time.sleep(0.8)
    e = flight_error(tight.uri, "SELECT 1 AS x")
    assert e is not None and "resource exhausted error" in str(e) and "busy" in str(e), e
    job.join(30)
    assert isinstance(job.error, fl.FlightTimedOutError)
    assert_next_query_works(tight)


def test_a_panic_is_internal_and_the_server_keeps_serving(server):
    # On the server without tight limits: under a 3 s limit a loaded debug build
    # can time the query out before it reaches the panic.
    e = flight_error(server.uri, "SELECT vitals_panic(count(*)) FROM accounts")
    assert isinstance(e, fl.FlightInternalError), e
    assert "panic" in str(e)
    assert server.alive()
    assert_next_query_works(server)


# --------------------------------------------------- logs, TLS, shutdown

def test_one_log_line_per_request(server):
    flight_query(server.uri, "analyst-secret", "SELECT org_id FROM accounts LIMIT 7")
    time.sleep(0.3)
    lines = [l for l in server.log_path.read_text().splitlines() if "method=\"DoGet/Statement\"" in l and "principal=ana" in l]
    assert any("rows=7" in l and "status=Ok" in l and " ms=" in l and " bytes=" in l for l in lines), lines[-3:]
    refused = [l for l in server.log_path.read_text().splitlines() if "refused a call" in l]
    assert refused, "unauthenticated calls are logged"


def test_tls(lake, config, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    s = Server(lake, config, "--tls-cert", cert, "--tls-key", key, tls_root=cert.read_bytes())
    try:
        client = fl.FlightClient(f"grpc+tls://127.0.0.1:{s.port}", tls_root_certs=cert.read_bytes())
        info = client.get_flight_info(statement_descriptor("SELECT count(*) AS n FROM accounts"), bearer("analyst-secret"))
        assert client.do_get(info.endpoints[0].ticket, bearer("analyst-secret")).read_all().to_pylist() == [{"n": 120}]
        # Plain text to a TLS port does not get through.
        with pytest.raises(fl.FlightError):
            fl.FlightClient(s.uri).get_flight_info(statement_descriptor("SELECT 1"), fl.FlightCallOptions(headers=[(b"authorization", b"Bearer analyst-secret")], timeout=5))
    finally:
        assert s.stop() == 0


def test_sigterm_cancels_running_queries_within_the_grace_period(lake, config):
    s = Server(lake, config, "--shutdown-grace", "2s")
    client, info, job = start_slow(s.uri)
    time.sleep(1.0)
    started = time.time()
    assert s.stop(timeout=30) == 0
    took = time.time() - started
    job.join(10)
    assert 1.5 < took < 15, took
    assert job.error is not None, "the running query was ended, not left to run"
    assert "grace period over" in s.log_path.read_text()
