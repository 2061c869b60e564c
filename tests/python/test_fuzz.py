"""A grammar-based SQL fuzzer against `vitals serve` over Flight SQL.

Random queries over the lake's tables and views, the report functions and the
behavioural functions, with wrong types, NULLs, extreme literals, deep nesting
and huge sizes, go to one server as a scoped token (an account, or a CSM) and
as admin, and to a second server whose lake holds only that scope's rows,
written by pyarrow. Checked: the server never dies or stops answering, every
failure is a status, a scoped token's answers equal the scope-only lake's, and
nothing a scoped token gets back (rows or error text) carries another
account's id, name or CSM.

VITALS_FUZZ_SEED replays a run, VITALS_FUZZ_QUERIES sets its size (each query
is sent three times: scoped, scope-only, admin).
"""

import collections
import datetime as dt
import math
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as fl
import pyarrow.parquet as pq
import pytest

from conftest import run, sql_json
from server_util import Server, bearer, statement_descriptor, token_entry

SEED = int(os.environ.get("VITALS_FUZZ_SEED", random.SystemRandom().randrange(2**31)))
QUERIES = int(os.environ.get("VITALS_FUZZ_QUERIES", "3400"))

STR = "str"
INT = "int"
FLOAT = "float"
BOOL = "bool"
DATE = "date"
TS = "ts"

TABLES = {
    "events": {
        "event_id": STR, "event_time": TS, "org_id": STR, "user_id": STR, "event": STR, "session_id": STR, "module": STR,
        "page": STR, "duration_ms": INT, "utm_source": STR, "browser": STR, "os": STR, "region": STR, "event_date": DATE,
    },
    "accounts": {
        "org_id": STR, "name": STR, "plan": STR, "is_paid": BOOL, "csm": STR, "seats": INT, "arr": FLOAT, "signup_time": TS,
        "contract_start": DATE, "renewal_date": DATE, "industry": STR, "region": STR,
    },
    "users": {"user_id": STR, "org_id": STR, "name": STR, "role": STR, "is_key_user": BOOL, "signup_time": TS},
    "interventions": {"org_id": STR, "csm": STR, "at": TS, "kind": STR, "note": STR},
    "subscriptions": {"org_id": STR, "subscription_id": STR, "plan": STR, "mrr": FLOAT, "starts_on": DATE, "ends_on": DATE, "seats": INT},
    "account_daily": {"org_id": STR, "day": DATE, "login_users": INT, "active_users": INT, "visits": INT, "page_views": INT, "duration_min": FLOAT},
    "user_daily": {"org_id": STR, "user_id": STR, "day": DATE, "logins": INT, "visits": INT, "page_views": INT, "duration_min": FLOAT, "events": INT},
}
EVENTS = ["signup", "login", "page_view", "create_project", "invite_user", "upgrade", "create_dashboard", "share_dashboard", "no_such_event"]
INTS = ["0", "1", "-1", "7", "1000", "2147483647", "-2147483648", "9223372036854775807", "-9223372036854775807", "NULL"]
STRS = ["''", "'a'", "'it''s'", "'数据'", "'org-00001'", "'login'", "'%'", "NULL", "'" + "x" * 300 + "'"]
DATES = ["DATE '2026-09-01'", "DATE '2026-09-30'", "DATE '1970-01-01'", "DATE '9999-12-31'", "CAST(NULL AS DATE)"]


class Gen:
    """Random SQL of one seed."""

    def __init__(self, rng, scope_orgs, all_orgs, days):
        self.r = rng
        self.scope = scope_orgs
        self.orgs = all_orgs
        self.days = days

    def pick(self, xs):
        return self.r.choice(xs)

    def col(self, table, ty):
        cols = [c for c, t in TABLES[table].items() if t == ty]
        return self.pick(cols) if cols else None

    def expr(self, table, ty, depth=0):
        r = self.r
        leaf = depth > 3 or r.random() < 0.35
        c = self.col(table, ty)
        if leaf:
            if c and r.random() < 0.7:
                return c
            return {INT: self.pick(INTS), FLOAT: self.pick(["0.5", "-1e308", "1e308", "NULL", "3.25"]), STR: self.pick(STRS),
                    BOOL: self.pick(["true", "false", "NULL"]), DATE: self.pick(DATES),
                    TS: self.pick(["TIMESTAMP '2026-09-15T12:00:00Z'", "CAST(NULL AS TIMESTAMP)"])}[ty]
        d = depth + 1
        e = lambda t: self.expr(table, t, d)  # noqa: E731
        if ty == INT:
            return self.pick([
                f"({e(INT)} + {e(INT)})", f"({e(INT)} * {e(INT)})", f"({e(INT)} - {e(INT)})", f"abs({e(INT)})", f"length({e(STR)})",
                f"CAST({e(STR)} AS BIGINT)", f"CASE WHEN {e(BOOL)} THEN {e(INT)} ELSE {e(INT)} END", f"coalesce({e(INT)}, {e(INT)})",
                f"({e(INT)} / NULLIF({e(INT)}, 0))", f"strpos({e(STR)}, 'a')", f"CAST(date_part('day', {e(DATE)}) AS BIGINT)",
            ])
        if ty == FLOAT:
            return self.pick([f"({e(FLOAT)} + {e(INT)})", f"round({e(FLOAT)}, 2)", f"CAST({e(INT)} AS DOUBLE) / 3", f"sqrt(abs({e(FLOAT)}))"])
        if ty == STR:
            n = self.pick(["3", "0", "-5", "100000", "2147483647", "1000000000"])
            return self.pick([
                f"lower({e(STR)})", f"upper({e(STR)})", f"concat({e(STR)}, {e(STR)})", f"({e(STR)} || {e(STR)})",
                f"substr({e(STR)}, 1, {n})", f"lpad({e(STR)}, {n}, 'x')", f"repeat({e(STR)}, {n})", f"CAST({e(INT)} AS VARCHAR)",
                f"coalesce({e(STR)}, {e(STR)})", f"replace({e(STR)}, 'a', 'bb')",
            ])
        if ty == BOOL:
            return self.pick([
                f"({e(INT)} < {e(INT)})", f"({e(STR)} = {e(STR)})", f"({e(STR)} LIKE 'a%')", f"({e(INT)} IS NULL)", f"({e(BOOL)} AND {e(BOOL)})",
                f"({e(BOOL)} OR {e(BOOL)})", f"(NOT {e(BOOL)})", f"({e(INT)} IN (1, 2, 3, NULL))", f"({e(INT)} BETWEEN -10 AND 10)",
                f"({e(DATE)} >= DATE '2026-09-10')",
            ])
        if ty == DATE:
            return self.pick([f"CAST({e(TS)} AS DATE)", f"({e(DATE)} + INTERVAL '1 day')", f"CAST('2026-09-20' AS DATE)"])
        return self.pick([f"date_trunc('day', {e(TS)})", f"({e(TS)} + INTERVAL '36 hours')"])

    def select(self):
        r = self.r
        table = self.pick(list(TABLES))
        types = [self.pick([INT, FLOAT, STR, BOOL, DATE, TS]) for _ in range(r.randint(1, 3))]
        items = [f"{self.expr(table, t)} AS c{i}" for i, t in enumerate(types)]
        where = f" WHERE {self.expr(table, BOOL)}" if r.random() < 0.6 else ""
        shape = r.random()
        if shape < 0.45:
            return f"SELECT {', '.join(items)} FROM {table}{where} ORDER BY {', '.join(f'c{i}' for i in range(len(items)))} NULLS FIRST LIMIT 50"
        group = self.col(table, STR) or "1"
        num = self.col(table, INT) or "1"
        aggs = self.pick([f"count(*)", f"sum({num})", f"min({self.expr(table, STR)})", f"max({num})", f"count(DISTINCT {group})",
                          f"avg({num})", f"array_sort(array_agg(DISTINCT {group}))"])
        return f"SELECT {group} AS g, {aggs} AS a FROM {table}{where} GROUP BY {group} ORDER BY g NULLS FIRST"

    def behavioural(self):
        r = self.r
        conds = [self.pick([f"event = '{self.pick(EVENTS)}'", "duration_ms > 60000", "module IS NULL", "1", "0", "strpos(page, 'a')"]) for _ in range(r.randint(1, 4))]
        kind = r.randrange(4)
        if kind == 0:
            window = self.pick(["INTERVAL '7 days'", "0", "3600", "-1", "INTERVAL '2147483647 days'", "9223372036854775807"])
            mode = self.pick(["", "'strict_order', ", "'strict_increase, strict_deduplication', ", "'bogus', "])
            f = f"window_funnel({window}, {mode}event_time, {', '.join(conds)})"
        elif kind == 1:
            f = f"array_to_string(retention({', '.join(conds + ['true'])}), ',')"
        else:
            pattern = self.pick(["(?1)(?2)", "(?1).*(?2)", "(?1)(?t<=3600)(?2)", "(?3)", "((?1)", "(?1)(?t>99999999999999999999)(?2)", ".*"])
            f = f"{'sequence_match' if kind == 2 else 'sequence_count'}('{pattern}', event_time, {', '.join(conds)})"
        return f"SELECT user_id, {f} AS f FROM events GROUP BY user_id ORDER BY user_id"

    def report(self):
        r = self.r
        d = lambda: self.pick(self.days + ["2020-01-01", "NULL"])  # noqa: E731
        n = lambda: self.pick(["7", "14", "1", "0", "NULL", "9223372036854775807"])  # noqa: E731
        org = self.pick(self.scope + self.orgs[:2] + ["no-such-org"])
        steps = ",".join(r.sample(EVENTS, r.randint(1, 4)))
        calls = [
            f"account_usage('{d()}', {n()})", f"key_user_usage('{org}', '{d()}', {n()})", f"module_usage_share('{d()}', '{d()}')",
            f"channel_quality('{d()}', '{d()}')", f"funnel('{steps}', '{self.pick(['7 days', '1 hour', '99999999999999 weeks'])}')",
            f"retention_matrix('signup', 'login', '{self.pick(['week', 'day', 'month', 'fortnight'])}', {self.pick(['4', '0', '1000'])})",
            f"health_scores('{d()}', {n()})", f"declining_accounts(2, 5, {n()})", f"account_lifecycle('{d()}')",
            f"user_lifecycle('{self.pick(['week', 'month', 'year'])}')", "magic_number('week2', 7, 5)", f"intervention_effect({n()})",
            f"health_history('{d()}', '{d()}', '{self.pick(['7 days', '3 days', '0', '36 hours'])}', {n()})",
            f"alerts('{d()}', '{self.pick(['14 days', '1 day', '12 hours'])}')",
            f"revenue_retention('{self.pick(['month', 'quarter', 'day'])}', '{d()}', '{d()}')", f"revenue_movements('{d()}', '{d()}')",
            f"account_timeline('{org}', '{d()}', '{d()}', {n()})",
        ]
        return f"SELECT * FROM {self.pick(calls).replace(chr(39) + 'NULL' + chr(39), 'NULL')}"

    def join(self):
        col = self.pick(["plan", "csm", "industry", "region", "name"])
        where = f" WHERE {self.expr('events', BOOL)}" if self.r.random() < 0.5 else ""
        return f"SELECT a.{col} AS g, count(*) AS n FROM events JOIN accounts a ON events.org_id = a.org_id{where} GROUP BY a.{col} ORDER BY g NULLS FIRST"

    def subquery(self):
        return self.pick([
            f"SELECT count(*) AS n FROM events WHERE org_id IN (SELECT org_id FROM accounts WHERE {self.expr('accounts', BOOL)})",
            "SELECT (SELECT max(seats) FROM accounts) AS m, (SELECT count(*) FROM users) AS u",
            f"SELECT org_id, count(*) AS n FROM users WHERE EXISTS (SELECT 1 FROM events WHERE events.user_id = users.user_id AND {self.expr('events', BOOL)}) GROUP BY org_id ORDER BY org_id",
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
        ])

    def hostile(self):
        n = self.r.choice([50, 400, 3000, 20000])
        return self.pick([
            "SELECT " + " + ".join(["1"] * n) + " AS x",
            "SELECT " + "(" * n + "1" + ")" * n + " AS x",
            f"SELECT count(*) AS n FROM accounts WHERE seats IN ({','.join(str(i) for i in range(n * 5))})",
            "SELECT lpad('x', 2147483647, 'y') AS s", "SELECT cardinality(array_repeat(1, 1000000000)) AS n",
            "SELECT cardinality(range(1, 300000000)) AS n", "SELECT 9223372036854775807 + 1 AS x",
            "SELECT * FROM accounts; DROP VIEW account_daily", "CREATE TABLE t AS SELECT 1", "SELECT * FROM '/etc/passwd'",
        ])

    def query(self):
        x = self.r.random()
        if x < 0.55:
            return self.select()
        if x < 0.70:
            return self.behavioural()
        if x < 0.78:
            return self.report()
        if x < 0.86:
            return self.join()
        if x < 0.95:
            return self.subquery()
        return self.hostile()


def scope_lake(src: Path, dst: Path, orgs):
    """The lake's rows of `orgs` only, written by pyarrow (events by UTC day)."""
    keep = pa.array(orgs)
    for table in ("accounts", "users", "interventions", "subscriptions"):
        t = pa.concat_tables([pq.read_table(p) for p in sorted((src / table).rglob("*.parquet"))])
        (dst / table).mkdir(parents=True)
        pq.write_table(t.filter(pc.is_in(t["org_id"], keep)), dst / table / "part-0.parquet")
    for day in sorted((src / "events").iterdir()):
        t = pa.concat_tables([pq.read_table(p) for p in sorted(day.glob("*.parquet"))])
        t = t.select([c for c in t.column_names if c != "event_date"]).filter(pc.is_in(t["org_id"], keep))
        if t.num_rows:
            (dst / "events" / day.name).mkdir(parents=True)
            pq.write_table(t, dst / "events" / day.name / "part-0.parquet")


def normal(rows):
    """Rows as sorted tuples, floats to 9 significant digits (sums in another order differ in the last bits)."""
    def v(x):
        if isinstance(x, float):
            return "nan" if math.isnan(x) else f"{x:.9g}"
        if isinstance(x, list):
            return tuple(v(i) for i in x)
        return x
    return sorted((tuple(v(x) for x in r.values()) for r in rows), key=repr)


def evaluation_error(outcome):
    """A failure that depends on the file layout, not on the rows a token
    sees: a cast, division, overflow or bad argument failing on a row (whether
    it is reached depends on the order a filter's parts are evaluated in, which
    the two lakes' layouts may change: `x AND NULL` may or may not evaluate x),
    a per-call size guard (it sizes a whole batch, and batches differ), or the
    time limit."""
    kind, text = outcome
    if kind in ("RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"):
        return True
    # "Unsupported data type ... for function": a kernel refusing its input
    # when it runs (abs() of length(event), a dictionary), on whichever side
    # evaluates it on a row.
    runtime = ("Execution error", "Arrow error", "Compute error", "Cast error", "Divide by zero", "DivideByZero", "Overflow", "overflow", "Unsupported data type")
    return kind == "INVALID_ARGUMENT" and any(w in text for w in runtime)


# The gRPC status of a Flight error whose text does not name it.
CODES = {
    fl.FlightUnauthorizedError: "PERMISSION_DENIED",
    fl.FlightUnauthenticatedError: "UNAUTHENTICATED",
    fl.FlightTimedOutError: "DEADLINE_EXCEEDED",
    fl.FlightInternalError: "INTERNAL",
    fl.FlightCancelledError: "CANCELLED",
    fl.FlightUnavailableError: "UNAVAILABLE",
    pa.ArrowInvalid: "INVALID_ARGUMENT",
}


def ask(client, secret, sql):
    """('ok', rows) or (gRPC status code name, message)."""
    try:
        opts = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {secret}".encode())], timeout=120)
        info = client.get_flight_info(statement_descriptor(sql), opts)
        table = client.do_get(info.endpoints[0].ticket, opts).read_all()
        # Dates past Python's year 9999 (DATE '9999-12-31' + INTERVAL '1 day') as text.
        columns = [pc.cast(c, pa.string()) if pa.types.is_temporal(c.type) else c for c in table.columns]
        return "ok", pa.table(columns, names=table.column_names).to_pylist()
    except pa.ArrowException as e:
        code = re.search(r"debug context: ([A-Z_]+):", str(e))
        return (code.group(1) if code else CODES.get(type(e), type(e).__name__)), str(e)


def test_fuzz(tmp_path):
    rng = random.Random(SEED)
    print(f"fuzz seed {SEED}, {QUERIES} queries x 3")
    lake = tmp_path / "lake"
    run("demo", "--lake", lake, "--accounts", "12", "--days", "30", "--seed", str(SEED % 1000))
    accounts = sql_json(lake, "SELECT org_id, name, csm FROM accounts ORDER BY org_id")
    orgs = [a["org_id"] for a in accounts]
    csm = next(a["csm"] for a in accounts if a.get("csm"))
    scopes = {
        "account": [orgs[3]],
        "csm": [a["org_id"] for a in accounts if a.get("csm") == csm],
    }
    days = [r["d"] for r in sql_json(lake, "SELECT DISTINCT CAST(event_date AS VARCHAR) AS d FROM events ORDER BY d")][-10:]
    config = tmp_path / "vitals.toml"
    config.write_text(token_entry("root", "admin", "admin") + token_entry(csm, "csm", "csm") + token_entry("acme", "account", "account", org_id=scopes["account"][0]))
    limits = ["--query-timeout", "10s", "--max-expression-depth", "300", "--refresh-interval", "1h"]
    main = Server(lake, config, *limits)
    refs = {}
    try:
        for who, members in scopes.items():
            ref_lake = tmp_path / f"only-{who}"
            scope_lake(lake, ref_lake, members)
            ref_config = tmp_path / f"only-{who}.toml"
            ref_config.write_text(token_entry("root", "admin", "admin"))
            refs[who] = Server(ref_lake, ref_config, *limits)
        clients = {"main": fl.FlightClient(main.uri), **{w: fl.FlightClient(s.uri) for w, s in refs.items()}}
        # Values no scoped answer or message may carry: other accounts' ids, names and CSMs.
        def values(rows):
            return {v for a in rows for v in (a["org_id"], a.get("name"), a.get("csm")) if v}

        # (Names may repeat between accounts: a value one of the scope's accounts has too is not foreign.)
        foreign = {who: values(a for a in accounts if a["org_id"] not in m) - values(a for a in accounts if a["org_id"] in m) for who, m in scopes.items()}
        gens = {who: Gen(random.Random(rng.random()), members, orgs, days) for who, members in scopes.items()}
        statuses = collections.Counter()
        mismatches = []
        order_dependent = 0
        sent = 0
        started = time.monotonic()
        pool = ThreadPoolExecutor(3)
        for i in range(QUERIES):
            who = "account" if i % 2 else "csm"
            sql = gens[who].query()
            # The three at once: two cores serve them.
            scoped, ref, admin = pool.map(lambda c: ask(*c, sql), [(clients["main"], who), (clients[who], "admin"), (clients["main"], "admin")])
            sent += 3
            for kind, _ in (scoped, ref, admin):
                statuses[kind] += 1
            text = repr(scoped[1])
            # (A value the query itself wrote is not a leak.)
            leaked = sorted(v for v in foreign[who] if v in text and v not in sql)
            assert not leaked, f"seed {SEED}, query {i} as {who}: {sql}\n{leaked} in {text[:500]}"
            if scoped[0] == "ok" and ref[0] == "ok":
                if normal(scoped[1]) != normal(ref[1]):
                    mismatches.append((who, sql, str(scoped[1])[:300], str(ref[1])[:300]))
            elif (scoped[0] == "ok") != (ref[0] == "ok"):
                failed = scoped if scoped[0] != "ok" else ref
                if evaluation_error(failed):
                    order_dependent += 1
                else:
                    mismatches.append((who, sql, str(scoped)[:300], str(ref)[:300]))
            if i % 200 == 0:
                for name, s in [("main", main), *refs.items()]:
                    assert s.alive(), f"seed {SEED}: the {name} server died after query {i}: {sql}\n{s.log_path.read_text()[-3000:]}"
        elapsed = time.monotonic() - started
        print(
            f"{sent} queries in {elapsed:.0f}s; outcomes {dict(statuses)}; scoped vs scope-only mismatches {len(mismatches)}; "
            f"a runtime error on one side only (order of evaluation) {order_dependent}"
        )
        for m in mismatches[:10]:
            print("MISMATCH", m)
        assert main.alive() and all(s.alive() for s in refs.values())
        assert sent >= 10_000 or QUERIES < 3400
        assert not mismatches, f"seed {SEED}: {len(mismatches)} answers differ from the scope-only lake; first: {mismatches[0]}"
    finally:
        assert main.stop() == 0, "the main server did not stop cleanly"
        for s in refs.values():
            s.stop()
