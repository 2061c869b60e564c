"""The web side of `vitals serve`, on its one port, through plain HTTP/1.1
(http.client): the JSON API against the same reports over Flight SQL, scopes,
statuses and their JSON bodies, CSV, compression, gRPC-Web, CORS, report
names in any case, and the first run without tokens."""

import datetime as dt
import gzip
import http.client
import json
import math
import re
import struct
import subprocess
import time
import urllib.parse
from pathlib import Path

import grpc
import pyarrow as pa
import pytest

from conftest import sql_json, vitals_bin
from server_util import Server, flight_query, role_tokens, stubs

# One report per file of sql/reports.
REPORTS = len(list((Path(__file__).resolve().parents[2] / "sql" / "reports").glob("*.sql")))
ORG_A = "org-00025"
CSM = "bruno.silva"
ORIGIN = "https://dash.example.com"

# Arguments for the reports that have no default for some of them.
NEEDED = {
    "funnel": {"steps": "signup,create_project,invite_user,upgrade", "breakdown": "utm_source"},
    "retention_matrix": {"cohort_event": "signup", "return_event": "login"},
    "key_user_usage": {"org_id": ORG_A},
    "account_timeline": {"org_id": ORG_A},
    # The demo's 90 days are too few for the default 90-day horizon.
    "churn_risk": {"horizon_days": "30"},
    "churn_model": {"horizon_days": "30"},
    "user_lifecycle": {"period": "week"},
    "intervention_effect": {"days": "7"},
    "funnel_dropoffs": {"steps": "signup,create_project,invite_user,upgrade", "window": "14 days"},
    "funnel_correlation": {"steps": "signup,upgrade", "window": "14 days"},
    "funnel_time_to_convert": {"steps": "signup,create_project,invite_user,upgrade", "window": "14 days"},
    "account_feature_usage": {"org_id": ORG_A},
    "user_events": {"user_id": "u-00025-0013"},
}


@pytest.fixture(scope="module")
def lake(demo_lake):
    return demo_lake


@pytest.fixture(scope="module")
def server(lake, tmp_path_factory):
    config = tmp_path_factory.mktemp("web") / "vitals.toml"
    config.write_text(role_tokens(CSM, ORG_A))
    s = Server(lake, config, "--cors-origin", ORIGIN)
    yield s
    assert s.stop() == 0


def request(port, path, token=None, method="GET", headers=None, body=None):
    """One HTTP/1.1 request; returns (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    assert r.version == 11
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def get_json(port, path, token="analyst-secret", want=200):
    status, headers, body = request(port, path, token)
    assert status == want, (path, status, body[:500])
    assert headers["content-type"].startswith("application/json"), headers
    return json.loads(body)


def report_path(name, args=None):
    q = urllib.parse.urlencode(args or {})
    return f"/api/v1/reports/{name}" + (f"?{q}" if q else "")


def wire(v):
    """A Flight SQL value as the JSON API writes it (ISO 8601 dates and UTC times)."""
    if isinstance(v, dt.datetime):
        return v.isoformat(timespec="microseconds") if v.tzinfo else v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [wire(x) for x in v]
    return v


def test_the_catalogue_lists_every_report_with_arguments_and_columns(server):
    listed = get_json(server.port, "/api/v1/reports")["reports"]
    names = [r["name"] for r in listed]
    assert len(names) == len(set(names)) == REPORTS >= 14, names
    for r in listed:
        assert r["description"], r["name"]
        assert r["columns"], r["name"]
        assert all(c["type"] in {"VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "DATE", "TIMESTAMP", "BOOLEAN", "VARCHAR[]"} for c in r["columns"]), r
    funnel = next(r for r in listed if r["name"] == "funnel")
    assert [a["name"] for a in funnel["arguments"]] == ["steps", "window", "breakdown", "mode", "from", "to", "unit"]
    assert funnel["arguments"][0] == {"name": "steps", "type": "EVENTS", "default": None}
    assert funnel["arguments"][1]["default"] == "7 days"


def test_every_report_equals_the_same_report_over_flight_sql(server):
    listed = get_json(server.port, "/api/v1/reports")["reports"]
    for r in listed:
        name = r["name"]
        got = get_json(server.port, report_path(name, NEEDED.get(name)))
        assert got["report"] == name
        assert [c["name"] for c in got["columns"]] == [c["name"] for c in r["columns"]], name
        assert got["sql"].startswith(f"SELECT * FROM {name}("), got["sql"]
        _, table = flight_query(server.uri, "analyst-secret", got["sql"])
        want = [{k: wire(v) for k, v in row.items()} for row in table.to_pylist()]
        assert len(want) > 0, name
        # Every column present in every row, NULL as null; int64 as numbers.
        assert all(list(row) == [c["name"] for c in got["columns"]] for row in got["rows"]), name
        assert got["rows"] == want, (name, got["rows"][:2], want[:2])


def test_numbers_are_numbers_and_null_is_null(server):
    got = get_json(server.port, report_path("health_scores"))
    types = {c["name"]: c["type"] for c in got["columns"]}
    ints = [n for n, t in types.items() if t == "BIGINT"]
    assert ints, types
    assert all(isinstance(row[n], int) or row[n] is None for row in got["rows"] for n in ints)
    body = request(server.port, report_path("declining_accounts", {"csms": 3, "per_csm": 4, "days": 14}), "analyst-secret")[2]
    assert b'"csm":' in body and b'"days_to_renewal":' in body


def test_a_csm_sees_only_their_accounts(server, lake):
    theirs = {r["org_id"] for r in sql_json(lake, f"SELECT org_id FROM accounts WHERE csm = '{CSM}'")}
    assert theirs
    for name, key in [("health_scores", "org_id"), ("declining_accounts", "org_id"), ("account_usage", "org_id")]:
        rows = get_json(server.port, report_path(name, {"csms": 50, "per_csm": 50} if name == "declining_accounts" else None), "csm-secret")["rows"]
        seen = {r[key] for r in rows}
        assert seen and seen <= theirs, (name, seen - theirs)
        everyone = {r[key] for r in get_json(server.port, report_path(name, {"csms": 50, "per_csm": 50} if name == "declining_accounts" else None))["rows"]}
        assert everyone - theirs, name


def test_statuses_and_their_bodies(server, pb):
    port = server.port
    # No token, a wrong token: 401.
    for token in (None, "Zq9-not-a-token"):
        status, headers, body = request(port, "/api/v1/reports/health_scores", token)
        assert status == 401 and json.loads(body)["code"] == "unauthenticated", body
        assert headers.get("www-authenticate") == "Bearer"
    # Another account's key users: 403.
    body = get_json(port, report_path("key_user_usage", {"org_id": "org-00026"}), "account-secret", want=403)
    assert body["code"] == "permission_denied" and "org-00026" in body["error"]
    assert get_json(port, report_path("key_user_usage", {"org_id": ORG_A}), "account-secret")["rows"]
    # Unknown report: 404; unknown argument, a word for a number, a bad event: 400 with the reason.
    assert get_json(port, "/api/v1/reports/no_such_report", want=404)["code"] == "not_found"
    assert "it takes" in get_json(port, report_path("health_scores", {"weeks": 2}), want=400)["error"]
    assert "whole number" in get_json(port, report_path("health_scores", {"days": "two"}), want=400)["error"]
    # The same reason text as the gRPC status of the same call.
    reports_pb2, reports_grpc = pb
    stub = reports_grpc.ReportsStub(grpc.insecure_channel(server.target))
    for rpc, req, name, args in [
        ("AccountUsage", reports_pb2.AccountUsageRequest(days=0), "account_usage", {"days": 0}),
        ("Funnel", reports_pb2.FunnelRequest(steps=["signup", "no_such_event"]), "funnel", {"steps": "signup,no_such_event"}),
        ("AccountUsage", reports_pb2.AccountUsageRequest(as_of="1999-01-01"), "account_usage", {"as_of": "1999-01-01"}),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            getattr(stub, rpc)(req, metadata=[("authorization", "Bearer analyst-secret")], timeout=60)
        body = get_json(port, report_path(name, args), want=400)
        assert body == {"error": e.value.details(), "code": "invalid_argument"}, (body, e.value.details())
    # The log has each failed call's status and reason, never a secret.
    log = server.log_path.read_text()
    assert re.search(r"request.*GET /api/v1/reports.*InvalidArgument.*whole number", log), log[-2000:]
    assert re.search(r"refused a web call.*Unauthenticated.*unknown token", log), log[-2000:]
    assert "Zq9-not-a-token" not in log and "analyst-secret" not in log and "account-secret" not in log
    # Anything else: a JSON 404, not a gRPC answer.
    status, _, body = request(port, "/nothing/here", "analyst-secret")
    assert status == 404 and json.loads(body)["code"] == "not_found"


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return stubs(tmp_path_factory.mktemp("stubs"))


def test_csv_and_compression(server):
    status, headers, body = request(server.port, report_path("health_scores"), "analyst-secret", headers={"Accept": "text/csv"})
    assert status == 200 and headers["content-type"].startswith("text/csv")
    lines = body.decode().splitlines()
    columns = [c["name"] for c in get_json(server.port, report_path("health_scores"))["columns"]]
    assert lines[0].split(",") == columns
    assert len(lines) - 1 == len(get_json(server.port, report_path("health_scores"))["rows"])
    status, headers, zipped = request(server.port, report_path("health_scores"), "analyst-secret", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("content-encoding") == "gzip"
    plain = request(server.port, report_path("health_scores"), "analyst-secret")[2]
    assert json.loads(gzip.decompress(zipped)) == json.loads(plain)
    assert len(zipped) < len(plain) / 3


def grpc_web_frame(message):
    payload = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def grpc_web_frames(body):
    """(messages, trailers) of a grpc-web response body."""
    messages, trailers, i = [], {}, 0
    while i < len(body):
        flag, length = body[i], struct.unpack(">I", body[i + 1 : i + 5])[0]
        chunk = body[i + 5 : i + 5 + length]
        i += 5 + length
        if flag & 0x80:
            for line in chunk.decode().split("\r\n"):
                if line:
                    k, v = line.split(":", 1)
                    trailers[k.strip().lower()] = v.strip()
        else:
            messages.append(chunk)
    return messages, trailers


def test_grpc_web_over_http1(server, pb):
    reports_pb2, _ = pb
    req = reports_pb2.DecliningAccountsRequest(csms=2, per_csm=5, days=14)
    headers = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1", "Origin": ORIGIN}
    status, h, body = request(server.port, "/vitals.v1.Reports/DecliningAccounts", "csm-secret", "POST", headers, grpc_web_frame(req))
    assert status == 200 and h["content-type"].startswith("application/grpc-web"), (status, h)
    assert h.get("access-control-allow-origin") == ORIGIN
    messages, trailers = grpc_web_frames(body)
    assert trailers.get("grpc-status") == "0", trailers
    resp = reports_pb2.DecliningAccountsResponse.FromString(messages[0])
    assert 0 < len(resp.rows) <= 5 and all(r.csm == CSM for r in resp.rows)
    # Without a token: the gRPC status, in the grpc-web trailers.
    status, h, body = request(server.port, "/vitals.v1.Reports/DecliningAccounts", None, "POST", headers, grpc_web_frame(req))
    got = h.get("grpc-status") or grpc_web_frames(body)[1].get("grpc-status")
    assert got == str(grpc.StatusCode.UNAUTHENTICATED.value[0]), (h, body)


def preflight(port, origin, path="/vitals.v1.Reports/DecliningAccounts"):
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type,x-grpc-web"}
    return request(port, path, None, "OPTIONS", headers)


def test_cors_only_for_listed_origins(server):
    status, h, _ = preflight(server.port, ORIGIN)
    assert status == 200 and h.get("access-control-allow-origin") == ORIGIN
    assert "authorization" in h.get("access-control-allow-headers", "").lower()
    for path in ("/vitals.v1.Reports/DecliningAccounts", "/api/v1/reports"):
        _, h, _ = preflight(server.port, "https://evil.example.com", path)
        assert "access-control-allow-origin" not in h, h
    _, h, _ = request(server.port, "/api/v1/reports", "analyst-secret", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in h


def test_report_functions_in_any_case(server):
    lower = flight_query(server.uri, "analyst-secret", "SELECT * FROM declining_accounts(2, 5, 14)")[1]
    upper = flight_query(server.uri, "analyst-secret", "SELECT * FROM DECLINING_ACCOUNTS(2, 5, 14)")[1]
    mixed = flight_query(server.uri, "analyst-secret", "select * from Declining_Accounts(2, 5, 14)")[1]
    assert lower.num_rows > 0 and upper.equals(lower) and mixed.equals(lower)
    # A quoted name keeps its case, as a quoted identifier does.
    with pytest.raises(pa.ArrowInvalid, match="not found"):
        flight_query(server.uri, "analyst-secret", 'SELECT * FROM "DECLINING_ACCOUNTS"(2, 5, 14)')


def test_first_run_on_loopback_gets_a_one_off_token(lake):
    proc = subprocess.Popen(
        [vitals_bin(), "serve", "--lake", str(lake), "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        out = [proc.stdout.readline() for _ in range(7)]
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", out[0]).group(1))
        assert f"dashboard at http://127.0.0.1:{port}/ " in out[1], out
        token = out[3].strip()
        assert token.startswith("vf_") and f"Bearer {token}" in out[5], out
        # The URL to open: the dashboard's page, with the token in the fragment (which no server sees).
        url = re.search(r"open the dashboard, signed in: (\S+)", out[4]).group(1)
        assert url == f"http://127.0.0.1:{port}/#token={token}", out
        # The engine opens after the port is bound: the first answers may wait.
        listed = None
        for _ in range(600):
            try:
                listed = get_json(port, "/api/v1/reports", token)
                break
            except (ConnectionError, AssertionError):
                time.sleep(0.2)
        assert listed and len(listed["reports"]) == REPORTS
        status, h, page = request(port, url.split("#")[0])
        assert status == 200 and h["content-type"].startswith("text/html") and b"/assets/app.js" in page
        assert "script-src 'self'" in h["content-security-policy"]
        assert request(port, "/api/v1/reports", "not-the-token")[0] == 401
        # No CORS grant by default (same origin only).
        _, h, _ = preflight(port, ORIGIN)
        assert "access-control-allow-origin" not in h
    finally:
        proc.terminate()
        proc.wait(30)


def test_no_tokens_on_a_public_address_refuses_to_start(lake):
    r = subprocess.run([vitals_bin(), "serve", "--lake", str(lake), "--addr", "0.0.0.0:0"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "[[tokens]]" in r.stderr and "0.0.0.0" in r.stderr, r.stderr


def test_reports_are_browsable_as_views(server, lake):
    listed = flight_query(server.uri, "analyst-secret", "SELECT table_name FROM information_schema.tables WHERE table_schema = 'reports'")[1]
    views = set(listed.column("table_name").to_pylist())
    # Every report that needs no argument, and none that does.
    assert {"health_scores", "account_usage", "declining_accounts", "account_lifecycle", "module_usage_share", "user_lifecycle"} <= views, views
    assert not views & {"funnel", "retention_matrix", "key_user_usage"}, views
    key = lambda r: json.dumps(r, sort_keys=True, default=str)  # noqa: E731
    for name in ("health_scores", "declining_accounts"):
        view = flight_query(server.uri, "analyst-secret", f"SELECT * FROM reports.{name}")[1].to_pylist()
        call = flight_query(server.uri, "analyst-secret", f"SELECT * FROM {name}()")[1].to_pylist()
        assert view and sorted(map(key, view)) == sorted(map(key, call)), name
    # In a CSM's session, the view holds only the CSM's accounts.
    theirs = {r["org_id"] for r in sql_json(lake, f"SELECT org_id FROM accounts WHERE csm = '{CSM}'")}
    seen = set(flight_query(server.uri, "csm-secret", "SELECT org_id FROM reports.health_scores")[1].column("org_id").to_pylist())
    assert seen and seen <= theirs


def test_routines_describe_every_report_and_function(server):
    reports = {r["name"]: r["description"] for r in get_json(server.port, "/api/v1/reports")["reports"]}
    rows = flight_query(server.uri, "analyst-secret", "SELECT routine_name, function_type, description FROM information_schema.routines")[1].to_pylist()
    tables = {r["routine_name"]: r["description"] for r in rows if r["function_type"] == "TABLE"}
    # Each report's own description (DataFusion leaves table functions without one).
    for name, description in reports.items():
        assert tables.get(name) == description, name
    described = {r["routine_name"] for r in rows if r["description"]}
    assert {"window_funnel", "retention", "sequence_match", "sequence_count"} <= described
    # DataFusion's own documentation is kept.
    assert any(r["routine_name"] == "abs" and "absolute" in r["description"] for r in rows)


def test_me_says_who_and_what_the_token_sees(server, lake):
    days = sql_json(lake, "SELECT CAST(min(event_date) AS VARCHAR) AS f, CAST(max(event_date) AS VARCHAR) AS l FROM events")[0]
    csms = [r["csm"] for r in sql_json(lake, "SELECT DISTINCT csm FROM accounts WHERE csm IS NOT NULL ORDER BY csm")]
    me = get_json(server.port, "/api/v1/me")
    assert (me["name"], me["role"], me["sees_all"]) == ("ana", "analyst", True)
    assert (me["first_day"], me["last_day"]) == (days["f"], days["l"])
    assert me["csms"] == csms and len(csms) > 1
    assert me["settings"]["events"]["signup"] == "signup" and me["settings"]["milestones"]
    # A CSM: their own name, and the days of their own accounts' events.
    theirs = sql_json(
        lake,
        f"SELECT CAST(min(event_date) AS VARCHAR) AS f, CAST(max(event_date) AS VARCHAR) AS l FROM events WHERE org_id IN (SELECT org_id FROM accounts WHERE csm = '{CSM}')",
    )[0]
    me = get_json(server.port, "/api/v1/me", token="csm-secret")
    assert (me["role"], me["sees_all"], me["csms"]) == ("csm", False, [CSM])
    assert (me["first_day"], me["last_day"]) == (theirs["f"], theirs["l"])
    me = get_json(server.port, "/api/v1/me", token="account-secret")
    assert (me["role"], me["org_id"], me["csms"]) == ("account", ORG_A, [])
    assert request(server.port, "/api/v1/me")[0] == 401


def test_the_readme_recipes_for_superset_pandas_and_polars(server):
    """The README's connections, as written there: Superset's SQLAlchemy
    dialect (flightsql-dbapi, which Superset loads by its URL), and pandas
    and polars over an ADBC connection."""
    import adbc_driver_flightsql.dbapi as adbc
    import flightsql.sqlalchemy  # noqa: F401  (registers datafusion+flightsql, as Superset's loader does)
    import pandas as pd
    import polars as pl
    from sqlalchemy import create_engine, inspect, text

    want = flight_query(server.uri, "analyst-secret", "SELECT * FROM declining_accounts(2, 5, 14)")[1].to_pylist()
    engine = create_engine(f"datafusion+flightsql://ana:analyst-secret@127.0.0.1:{server.port}?insecure=true")
    with engine.connect() as c:
        got = c.execute(text("SELECT * FROM DECLINING_ACCOUNTS(2, 5, 14)")).mappings().all()
    key = lambda r: r["org_id"]  # noqa: E731
    assert len(want) == 10 and [r["org_id"] for r in sorted(got, key=key)] == [r["org_id"] for r in sorted(want, key=key)]
    # What Superset lists as datasets: the reports schema among the schemas.
    inspector = inspect(engine)
    assert "reports" in inspector.get_schema_names()
    assert {"health_scores", "declining_accounts", "activity_trend"} <= set(inspector.get_table_names(schema="reports"))

    conn = adbc.connect(f"grpc://127.0.0.1:{server.port}", db_kwargs={"username": "ana", "password": "analyst-secret"})
    try:
        df = pd.read_sql("SELECT * FROM health_scores(NULL, 14)", conn)
        assert len(df) == len(get_json(server.port, report_path("health_scores", {"days": "14"}))["rows"]) > 0
        frame = pl.read_database("SELECT * FROM funnel('signup,upgrade', '7 days')", connection=conn)
        assert sorted(frame["event"].to_list()) == ["signup", "upgrade"]
    finally:
        conn.close()
