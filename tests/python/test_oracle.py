"""Differential tests of window_funnel, retention, sequence_match and
sequence_count against ClickHouse (chdb), on random event streams.

Set VITALS_ORACLE_SEED to replay a run and VITALS_ORACLE_GROUPS for its size.
Each function and mode is compared on every group (user); a mismatch prints
the seed and the smallest differing group with its events.
"""

import csv
import datetime as dt
import io
import itertools
import os
import random
from pathlib import Path

import chdb
import pyarrow as pa
import pytest

from conftest import run, write_partitions

SEED = int(os.environ.get("VITALS_ORACLE_SEED", random.SystemRandom().randrange(2**31)))
GROUPS = int(os.environ.get("VITALS_ORACLE_GROUPS", "20000"))
BASE = dt.datetime(2024, 3, 1, 23, 58, 0, tzinfo=dt.timezone.utc)

# Conditions over few event kinds, so repeats and ties are frequent; the third
# overlaps the second, so one row can meet two conditions.
# They read `module`, a nullable column: a NULL condition skips the row, as in ClickHouse.
CONDS = ["module = 'a'", "module = 'b'", "module IN ('b', 'c')", "module = 'c'"]
MODES = ["strict_deduplication", "strict_order", "strict_increase", "strict_once"]


def mode_sets():
    """Every mode combination ClickHouse accepts (allow_reentry needs strict_order)."""
    out = []
    for r in range(len(MODES) + 1):
        for combo in itertools.combinations(MODES, r):
            out.append(list(combo))
            if "strict_order" in combo:
                out.append(list(combo) + ["allow_reentry"])
    return out


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Two populations: 'u' users with many equal timestamps (funnels,
    retention) and 's' users with distinct timestamps (sequences: ClickHouse
    orders equal timestamps there arbitrarily)."""
    rng = random.Random(SEED)
    print(f"oracle seed {SEED}, {GROUPS} groups per population")
    rows = {"event_time": [], "org_id": [], "user_id": [], "module": []}
    kinds = ["a", "b", "c", "d", None]
    weights = [30, 25, 20, 20, 5]
    for pop in ("u", "s"):
        for g in range(GROUPS):
            n = rng.randint(1, 24)
            if pop == "u":
                offsets = [rng.randint(0, 40) for _ in range(n)]
            else:
                offsets = rng.sample(range(0, 400), n)
            for off in offsets:
                rows["event_time"].append(BASE + dt.timedelta(seconds=off))
                rows["org_id"].append("o1")
                rows["user_id"].append(f"{pop}{g:06d}")
                rows["module"].append(rng.choices(kinds, weights)[0])
    order = list(range(len(rows["event_time"])))
    rng.shuffle(order)
    table = pa.table(
        {
            "event_time": pa.array([rows["event_time"][i] for i in order], type=pa.timestamp("us", tz="UTC")),
            "org_id": [rows["org_id"][i] for i in order],
            "user_id": [rows["user_id"][i] for i in order],
            "event": ["e"] * len(order),
            "module": [rows["module"][i] for i in order],
        }
    )
    root = tmp_path_factory.mktemp("oracle") / "lake"
    # Rows go to their day's partition, each day split over three files in
    # an order unrelated to time.
    days = pa.compute.strftime(table["event_time"], format="%Y-%m-%d").to_pylist()
    write_partitions(table, root / "events", "event_date", days, 3)
    return root


def vitals_rows(lake, sql):
    out = run("sql", "--lake", lake, "--format", "csv", sql).stdout
    return list(csv.reader(io.StringIO(out)))[1:]


def ch_rows(lake, sql):
    src = f"file('{lake}/events/*/*.parquet', Parquet)"
    out = chdb.query(sql.replace("{src}", src), "CSV")
    return list(csv.reader(io.StringIO(str(out))))


def norm(v):
    return {"true": "1", "false": "0", "\\N": ""}.get(v, v)


def compare(lake, name, vitals_sql, ch_sql, labels, population):
    """Runs both queries (first column user_id, then one column per label)
    and compares every group."""
    ours = {r[0]: [norm(x) for x in r[1:]] for r in vitals_rows(lake, vitals_sql)}
    theirs = {r[0]: [norm(x) for x in r[1:]] for r in ch_rows(lake, ch_sql)}
    assert len(theirs) >= GROUPS * 0.95, f"{name}: only {len(theirs)} groups"
    assert set(ours) == set(theirs), f"seed {SEED}: {name}: different groups"
    for col, label in enumerate(labels):
        bad = [u for u in theirs if ours[u][col] != theirs[u][col]]
        if bad:
            events = ch_rows(
                lake,
                "SELECT user_id, count() FROM {src} WHERE user_id IN (%s) GROUP BY user_id ORDER BY count(), user_id LIMIT 1"
                % ",".join(f"'{u}'" for u in bad[:2000]),
            )
            smallest = events[0][0]
            detail = ch_rows(lake, f"SELECT toUnixTimestamp(event_time), module FROM {{src}} WHERE user_id = '{smallest}' ORDER BY event_time, module")
            pytest.fail(
                f"seed {SEED}: {name} {label}: {len(bad)} of {len(theirs)} groups differ; smallest is {smallest}: "
                f"vitals {ours[smallest][col]}, ClickHouse {theirs[smallest][col]}; events (unix s, module): {detail}"
            )


def test_window_funnel_matches_clickhouse_in_every_mode(lake):
    cases = []
    for modes in mode_sets():
        for window in (0, 10):
            cases.append((window, ",".join(modes), CONDS))
    cases += [(10, "", CONDS[:1]), (10, "strict_order", CONDS[:1]), (5, "", CONDS[:2]), (30, "strict_increase", CONDS[:3])]
    ours, theirs, labels = [], [], []
    for window, mode, conds in cases:
        m = f"'{mode}', " if mode else ""
        ours.append(f"window_funnel({window}, {m}event_time, {', '.join(conds)})")
        # ClickHouse takes each mode as its own parameter.
        ch_params = ", ".join([str(window)] + [f"'{x}'" for x in mode.split(",") if x])
        theirs.append(f"windowFunnel({ch_params})(toUInt64(toUnixTimestamp(event_time)), {', '.join(conds)})")
        labels.append(f"window={window} mode='{mode}' steps={len(conds)}")
    compare(
        lake,
        "window_funnel",
        f"SELECT user_id, {', '.join(ours)} FROM events WHERE user_id LIKE 'u%' GROUP BY user_id",
        f"SELECT user_id, {', '.join(theirs)} FROM {{src}} WHERE user_id LIKE 'u%' GROUP BY user_id",
        labels,
        "u",
    )


def test_retention_matches_clickhouse(lake):
    sets = [CONDS, CONDS[:2], [CONDS[3], CONDS[0], CONDS[2]]]
    ours = [f"array_to_string(retention({', '.join(c)}), ',')" for c in sets]
    theirs = [f"arrayStringConcat(retention({', '.join(c)}), ',')" for c in sets]
    compare(
        lake,
        "retention",
        f"SELECT user_id, {', '.join(ours)} FROM events WHERE user_id LIKE 'u%' GROUP BY user_id",
        f"SELECT user_id, {', '.join(theirs)} FROM {{src}} WHERE user_id LIKE 'u%' GROUP BY user_id",
        [str(c) for c in sets],
        "u",
    )


def test_integer_conditions_match_clickhouse_and_the_boolean_forms(lake):
    """ClickHouse's own tests write conditions as UInt8 values:
    `retention(1, ...)`, `windowFunnel(10)(t, 1, x = 2)`. 0 is false, anything
    else true, NULL skips the row; vitals' integer form equals its boolean one."""
    contains_b = "toUInt8(position(module, 'b'))"
    cases = [
        ("array_to_string(retention(1, strpos(module, 'b'), module = 'c'), ',')", f"arrayStringConcat(retention(1, {contains_b}, module = 'c'), ',')"),
        ("array_to_string(retention(true, strpos(module, 'b') <> 0, module = 'c'), ',')", f"arrayStringConcat(retention(1, {contains_b}, module = 'c'), ',')"),
        ("window_funnel(10, event_time, 1, strpos(module, 'b'), module = 'c')", f"windowFunnel(10)(toUInt64(toUnixTimestamp(event_time)), 1, {contains_b}, module = 'c')"),
        ("window_funnel(10, event_time, true, strpos(module, 'b') <> 0, module = 'c')", f"windowFunnel(10)(toUInt64(toUnixTimestamp(event_time)), 1, {contains_b}, module = 'c')"),
        ("window_funnel(10, event_time, module = 'a', 0)", "windowFunnel(10)(toUInt64(toUnixTimestamp(event_time)), module = 'a', 0)"),
    ]
    compare(
        lake,
        "integer conditions",
        f"SELECT user_id, {', '.join(o for o, _ in cases)} FROM events WHERE user_id LIKE 'u%' GROUP BY user_id",
        f"SELECT user_id, {', '.join(t for _, t in cases)} FROM {{src}} WHERE user_id LIKE 'u%' GROUP BY user_id",
        [o for o, _ in cases],
        "u",
    )


PATTERNS = [
    "(?1)(?2)",
    "(?1).*(?3)",
    "(?1)(?2)(?4)",
    "(?1).(?4)",
    ".*(?2)(?1)",
    "(?1).*(?1).*(?1)",
    "(?1)(?t<=60)(?2)",
    "(?1)(?t>30)(?4)",
    "(?1).*(?t<100)(?2).*(?t>=20)(?4)",
    "(?3)(?t==1)(?2)",
    "(?1)(?t<=0).*(?2)",
    "(?2).*(?t>=0)(?3)",
]


@pytest.mark.parametrize("fn", ["sequence_match", "sequence_count"])
def test_sequences_match_clickhouse(lake, fn):
    ch_fn = {"sequence_match": "sequenceMatch", "sequence_count": "sequenceCount"}[fn]
    ours = [f"{fn}('{p}', event_time, {', '.join(CONDS)})" for p in PATTERNS]
    theirs = [f"{ch_fn}('{p}')(toDateTime(event_time), {', '.join(CONDS)})" for p in PATTERNS]
    compare(
        lake,
        fn,
        f"SELECT user_id, {', '.join(ours)} FROM events WHERE user_id LIKE 's%' GROUP BY user_id",
        f"SELECT user_id, {', '.join(theirs)} FROM {{src}} WHERE user_id LIKE 's%' GROUP BY user_id",
        PATTERNS,
        "s",
    )


def test_without_group_by_the_answer_is_the_same(lake):
    users = [f"u{g:06d}" for g in range(0, GROUPS, max(1, GROUPS // 25))]
    agg = f"window_funnel(10, 'strict_order', event_time, {', '.join(CONDS)}), array_to_string(retention({', '.join(CONDS)}), ',')"
    grouped = {r[0]: r[1:] for r in vitals_rows(lake, f"SELECT user_id, {agg} FROM events WHERE user_id IN ({','.join(repr(u) for u in users)}) GROUP BY user_id")}
    for u in users[:8]:
        single = vitals_rows(lake, f"SELECT {agg} FROM events WHERE user_id = '{u}'")
        assert single[0] == grouped[u], (u, single, grouped[u])


def test_sequence_next_node_matches_clickhouse(lake):
    """Every direction and base ClickHouse accepts, with 0 to 3 events and
    base conditions true, on an event column, and on another condition. The
    'u' streams have many equal timestamps, so ties are ordered by value."""
    bases = [("forward", "head"), ("backward", "tail"), ("forward", "first_match"), ("backward", "first_match"), ("forward", "last_match"), ("backward", "last_match")]
    base_conditions = ["true", "module <> 'd'", "module IN ('a', 'c')"]
    cases = []
    for direction, base in bases:
        for events in range(0 if base in ("head", "tail") else 1, 4):
            for bc in base_conditions:
                cases.append((direction, base, bc, CONDS[:events]))
    ours, theirs, labels = [], [], []
    for direction, base, bc, conds in cases:
        tail = "".join(f", {c}" for c in conds)
        ours.append(f"sequence_next_node('{direction}', '{base}', event_time, module, {bc}{tail})")
        ch_bc = "1" if bc == "true" else bc
        theirs.append(f"sequenceNextNode('{direction}', '{base}')(toDateTime(event_time), module, {ch_bc}{tail})")
        labels.append(f"{direction} {base} base={bc} events={conds}")
    compare(
        lake,
        "sequence_next_node",
        f"SELECT user_id, {', '.join(ours)} FROM events WHERE user_id LIKE 'u%' GROUP BY user_id",
        f"SELECT user_id, {', '.join(theirs)} FROM {{src}} WHERE user_id LIKE 'u%' GROUP BY user_id SETTINGS allow_experimental_funnel_functions = 1",
        labels,
        "u",
    )
