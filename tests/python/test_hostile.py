"""`vitals serve` against a client that attacks it: scoped tokens probing
other accounts' values, hostile queries that would exhaust the stack, memory
or the planner, clients that stop reading, and wrong statuses. Every finding
of the probe that motivated these checks is one test here, through a real
client (pyarrow.flight or the ADBC driver)."""

import base64
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from conftest import run, sql_json
from server_util import Server, bearer, drain, flight_error, flight_query, role_tokens, statement_descriptor, token_entry

ORG = "org-00025"


@pytest.fixture(scope="module")
def lake(demo_lake):
    return demo_lake


@pytest.fixture(scope="module")
def own(lake):
    """The scoped token's own account row, and every other account's."""
    # (JSON output leaves NULL values out: read columns with .get.)
    rows = sql_json(lake, "SELECT org_id, seats, plan, csm, industry, region, name FROM accounts ORDER BY org_id")
    mine = next(r for r in rows if r["org_id"] == ORG)
    return mine, [r for r in rows if r["org_id"] != ORG]


def write_config(path, own):
    """The four tokens: admin, analyst, the CSM of the account, the account."""
    mine, _ = own
    path.write_text(role_tokens(mine["csm"], ORG))
    return path


@pytest.fixture(scope="module")
def config(tmp_path_factory, own):
    return write_config(tmp_path_factory.mktemp("hostile-config") / "vitals.toml", own)


@pytest.fixture
def own_config(tmp_path, own):
    """A config file of the test's own, so its server writes a log of its own."""
    return write_config(tmp_path / "vitals.toml", own)


@pytest.fixture(scope="module")
def server(lake, config):
    # A lower depth limit than the default 1,000: planning a chain costs time
    # growing with its square, and far more in a debug build.
    s = Server(lake, config, "--max-expression-depth", "100")
    yield s
    assert s.alive(), "the server died"
    assert s.stop() == 0


def outcome(server, sql, secret="account-secret"):
    """'ok', or the error (its class and text)."""
    return flight_error(server.uri, sql, secret) or "ok"


def test_a_scoped_token_filter_never_runs_on_other_accounts_rows(server, own):
    """The probe recovered other accounts' seat counts by making a filter fail
    on them. Now a filter only ever sees the token's own rows: it fails exactly
    when the token's own values make it fail."""
    mine, others = own
    highest = max(r["seats"] for r in others if r["seats"] is not None)
    assert highest > mine["seats"], "the test needs an account with more seats than the token's"
    for threshold in sorted({mine["seats"], mine["seats"] + 1, highest, highest + 1, 1}):
        sql = f"SELECT count(*) AS n FROM accounts WHERE CASE WHEN seats >= {threshold} THEN 1 / 0 ELSE 1 END = 1"
        got = outcome(server, sql)
        if mine["seats"] >= threshold:
            assert isinstance(got, pa.ArrowInvalid) and "Divide by zero" in str(got), (threshold, got)
        else:
            assert got == "ok", (threshold, got)
    # The same on text columns, on events and through a join: another account's value never trips it.
    foreign = others[0]
    for column in ("plan", "csm", "industry", "region", "name"):
        for table in ("accounts", "accounts JOIN users u ON accounts.org_id = u.org_id"):
            value = foreign.get(column)
            if value is None or value == mine.get(column):
                continue
            sql = f"SELECT count(*) AS n FROM {table} WHERE CASE WHEN accounts.{column} = '{value}' THEN 1 / 0 ELSE 1 END = 1"
            assert outcome(server, sql) == "ok", (column, table)
        if mine.get(column) is not None:
            sql = f"SELECT count(*) AS n FROM accounts WHERE CASE WHEN {column} = '{mine[column]}' THEN 1 / 0 ELSE 1 END = 1"
            assert isinstance(outcome(server, sql), pa.ArrowInvalid), column
    sql = f"SELECT count(*) AS n FROM events WHERE CASE WHEN org_id = '{foreign['org_id']}' THEN 1 / 0 ELSE 1 END = 1"
    assert outcome(server, sql) == "ok"
    # A cast that fails on a name names only the token's own account.
    e = outcome(server, "SELECT count(*) AS n FROM accounts WHERE CAST(name AS INT) > 0")
    assert isinstance(e, pa.ArrowInvalid) and mine["name"] in str(e), e
    # And the server's log holds no other account's values either.
    log = server.log_path.read_text()
    for r in others:
        for column in ("csm", "name"):
            if r.get(column) and r.get(column) != mine.get(column):
                assert r[column] not in log, (column, r[column])


def test_a_plan_is_for_admin_and_analyst(server):
    for sql in ("EXPLAIN VERBOSE SELECT * FROM accounts", "EXPLAIN ANALYZE SELECT count(*) FROM accounts", "EXPLAIN SELECT 1"):
        for secret in ("account-secret", "csm-secret"):
            e = outcome(server, sql, secret)
            assert isinstance(e, fl.FlightUnauthorizedError) and "EXPLAIN is for admin and analyst" in str(e), (sql, e)
        assert outcome(server, sql, "analyst-secret") == "ok"


def test_a_session_ends_with_its_credential(lake, tmp_path):
    config = tmp_path / "vitals.toml"
    config.write_text(token_entry("acme", "account", "first-secret", org_id=ORG))
    s = Server(lake, config)
    try:
        client = fl.FlightClient(s.uri)
        token = client.authenticate_basic_token("acme", "first-secret")
        opts = fl.FlightCallOptions(headers=[token])

        def count():
            info = client.get_flight_info(statement_descriptor("SELECT count(DISTINCT org_id) AS n, min(org_id) AS org FROM accounts"), opts)
            return client.do_get(info.endpoints[0].ticket, opts).read_all().to_pylist()

        assert count() == [{"n": 1, "org": ORG}]
        # Rotating the secret ends the session made with the old one.
        config.write_text(token_entry("acme", "account", "second-secret", org_id=ORG))
        time.sleep(1.5)
        with pytest.raises(fl.FlightUnauthenticatedError, match="has changed"):
            count()
        # A new session; then the token's account changes: the session does not follow it.
        token = client.authenticate_basic_token("acme", "second-secret")
        opts = fl.FlightCallOptions(headers=[token])
        assert count() == [{"n": 1, "org": ORG}]
        config.write_text(token_entry("acme", "account", "second-secret", org_id="org-00001"))
        time.sleep(1.5)
        with pytest.raises(fl.FlightUnauthenticatedError):
            count()
    finally:
        assert s.stop() == 0


def test_a_session_outlives_a_restart(lake, tmp_path):
    """A Basic handshake's session token is signed, not remembered: the same
    server restarted (same config, so the same key file beside it) accepts it;
    a server with another key does not."""
    config = tmp_path / "vitals.toml"
    config.write_text(token_entry("acme", "account", "first-secret", org_id=ORG))

    def count(s, token):
        client = fl.FlightClient(s.uri)
        opts = fl.FlightCallOptions(headers=[token])
        info = client.get_flight_info(statement_descriptor("SELECT count(DISTINCT org_id) AS n FROM accounts"), opts)
        return client.do_get(info.endpoints[0].ticket, opts).read_all().to_pylist()

    s = Server(lake, config)
    try:
        token = fl.FlightClient(s.uri).authenticate_basic_token("acme", "first-secret")
        assert token[1].startswith(b"Bearer vs1.")
        assert count(s, token) == [{"n": 1}]
    finally:
        assert s.stop() == 0
    key = tmp_path / "vitals.toml.session-key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    s = Server(lake, config)
    try:
        assert count(s, token) == [{"n": 1}]
    finally:
        assert s.stop() == 0
    s = Server(lake, config, "--session-key-file", tmp_path / "another.key")
    try:
        with pytest.raises(fl.FlightUnauthenticatedError, match="not signed by this server"):
            count(s, token)
        # The secret itself still works there.
        assert count(s, (b"authorization", b"Bearer first-secret")) == [{"n": 1}]
    finally:
        assert s.stop() == 0


# ---------------------------------------------------------------- hostile queries


def chain(op, n):
    return "SELECT " + f" {op} ".join(["1"] * n) + " AS x"


def test_deep_expressions_are_refused_before_planning(server):
    for op in ("+", "OR", "||"):
        e = outcome(server, chain(op, 9000), "analyst-secret")
        assert isinstance(e, pa.ArrowInvalid) and "nests" in str(e) and "--max-expression-depth" in str(e), (op, e)
    deep = "SELECT " + "(" * 1200 + "1" + ")" * 1200 + " AS x"
    assert isinstance(outcome(server, deep, "analyst-secret"), pa.ArrowInvalid)
    assert isinstance(outcome(server, chain("+", 102), "analyst-secret"), pa.ArrowInvalid)
    # Below the limit it answers: 90 chained additions, an OR of 90 comparisons.
    started = time.monotonic()
    _, table = flight_query(server.uri, "analyst-secret", chain("+", 90))
    assert table.to_pylist() == [{"x": 90}]
    ors = " OR ".join(f"seats = {i}" for i in range(90))
    assert flight_query(server.uri, "analyst-secret", f"SELECT count(*) AS n FROM accounts WHERE {ors}")[1].num_rows == 1
    print(f"90-term chains planned and answered in {time.monotonic() - started:.2f}s")
    assert server.alive()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT lpad('x', 2147483647, 'y') AS s",
        "SELECT cardinality(array_repeat(1, 1000000000)) AS n",
        "SELECT length(repeat('x', 1000000000)) AS n",
        "SELECT cardinality(range(1, 300000000)) AS n",
        "SELECT cardinality(generate_series(TIMESTAMP '2000-01-01', TIMESTAMP '2100-01-01', INTERVAL '1 second')) AS n",
        "SELECT length(rpad(name, 100000000)) AS n FROM accounts",
    ],
)
def test_huge_results_are_refused_before_they_are_made(server, sql):
    e = outcome(server, sql, "analyst-secret")
    assert e != "ok" and "resource exhausted error" in str(e) and "past the limit" in str(e), e
    assert flight_query(server.uri, "analyst-secret", "SELECT count(*) AS n FROM accounts")[1].to_pylist() == [{"n": 120}]


def test_a_query_text_past_the_size_limit_is_refused(server):
    in_list = ",".join(str(i) for i in range(1_500_000))
    started = time.monotonic()
    e = outcome(server, f"SELECT count(*) AS n FROM accounts WHERE seats IN ({in_list})", "analyst-secret")
    assert isinstance(e, pa.ArrowInvalid) and "--max-query-size" in str(e), e
    assert time.monotonic() - started < 5


def test_planning_does_not_hold_up_other_clients(lake, own_config):
    """With the size limits lifted, a 10 MB IN-list takes long to plan: it plans
    on a thread of its own and within the query's timeout, while another
    client's `SELECT 1` is answered at once."""
    s = Server(lake, own_config, "--max-query-size", "64MiB", "--max-query-elements", "100000000", "--max-expression-depth", "100000000", "--query-timeout", "8s")
    try:
        in_list = ",".join(str(i) for i in range(1_500_000))
        hostile = threading.Thread(
            target=lambda: outcome(s, f"SELECT count(*) AS n FROM accounts WHERE seats IN ({in_list})", "analyst-secret"), daemon=True
        )
        hostile.start()
        time.sleep(1.0)
        waits = []
        for _ in range(5):
            started = time.monotonic()
            assert flight_query(s.uri, "admin-secret", "SELECT 1 AS one")[1].to_pylist() == [{"one": 1}]
            waits.append(time.monotonic() - started)
        print(f"SELECT 1 beside a 10 MB IN-list: {[round(w, 3) for w in waits]} s")
        assert max(waits) < 1.0, waits
        hostile.join(60)
        assert s.alive()
    finally:
        s.stop()


def test_a_client_that_stops_reading_loses_its_slot_at_the_timeout(lake, own_config):
    s = Server(lake, own_config, "--query-timeout", "3s", "--max-concurrent-queries", "1", "--max-queued-queries", "0")
    try:
        client = fl.FlightClient(s.uri)
        opts = bearer("analyst-secret")
        info = client.get_flight_info(statement_descriptor("SELECT * FROM events"), opts)
        reader = client.do_get(info.endpoints[0].ticket, opts)
        reader.read_chunk()  # one batch, then nothing more is read
        time.sleep(5)
        # The slow reader's query ended at its timeout: the one slot is free.
        assert flight_query(s.uri, "admin-secret", "SELECT count(*) AS n FROM accounts")[1].to_pylist() == [{"n": 120}]
        # Reading on, it gets the timeout, not a silently cut result.
        with pytest.raises(fl.FlightTimedOutError):
            drain(reader)
    finally:
        s.stop()


def test_prepared_statements_are_limited_per_token(lake, own_config):
    s = Server(lake, own_config, "--max-prepared-statements", "5")
    uri = f"grpc://127.0.0.1:{s.port}"
    try:
        conn = flightsql.connect(uri, db_kwargs={"adbc.flight.sql.authorization_header": "Bearer analyst-secret"})
        cursors = []
        for i in range(5):
            c = conn.cursor()
            c.adbc_prepare(f"SELECT {i} AS i")
            cursors.append(c)
        extra = conn.cursor()
        with pytest.raises(Exception, match="--max-prepared-statements"):
            extra.adbc_prepare("SELECT 99 AS i")
        # Another token is not pushed out, nor pushes out this one's statements.
        other = flightsql.connect(uri, db_kwargs={"adbc.flight.sql.authorization_header": "Bearer admin-secret"})
        oc = other.cursor()
        oc.execute("SELECT 7 AS i")
        assert oc.fetchall() == [(7,)]
        cursors[0].execute("SELECT 0 AS i")
        assert cursors[0].fetchall() == [(0,)]
        for c in cursors + [extra, oc]:
            c.close()
        other.close()
        conn.close()
    finally:
        s.stop()


# ---------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    "sql,status,words",
    [
        ("SELECT 9223372036854775807 + 1 AS x", pa.ArrowInvalid, "overflow"),
        ("SELECT max(seats) * 4611686018427387904 AS x FROM accounts", pa.ArrowInvalid, "overflow"),
        ("SELECT count(*) AS n FROM accounts WHERE seats / 0 > 1", pa.ArrowInvalid, "DivideByZero"),
        ("SELECT count(*) AS n FROM accounts WHERE CAST(name AS INT) > 0", pa.ArrowInvalid, "Cannot cast"),
        ("SELECT no_such_column_" + "x" * 30000 + " FROM accounts", pa.ArrowInvalid, "cut at 4096 bytes"),
    ],
)
def test_statuses_say_what_went_wrong(server, sql, status, words):
    e = outcome(server, sql, "analyst-secret")
    assert isinstance(e, status) and words in str(e), e


def test_invalid_utf8_is_invalid_argument(server):
    # A Flight SQL statement whose query bytes are not UTF-8 (a protobuf string must be).
    from server_util import _any, _field_bytes

    client = fl.FlightClient(server.uri)
    bad = fl.FlightDescriptor.for_command(_any("CommandStatementQuery", _field_bytes(1, b"SELECT '\xff\xfe'")))
    with pytest.raises(pa.ArrowInvalid):
        client.get_flight_info(bad, bearer("analyst-secret"))
    assert server.alive()
