#!/usr/bin/env python3
"""Soak bench for `vitals serve`: many clients mixing report RPCs and ad-hoc
SQL for a long time, and from half-way, a few hostile clients beside them
(deep expressions, huge IN-lists and function results, memory hogs, overflow,
clients that stop reading). Release binary, demo lake of about ten million
events.

    python3 benches/soak.py [--accounts 2600] [--clients 32] [--hostile 2] [--seconds 600]

Prints throughput and p50/p99 latency of the ordinary clients before and
after the hostile ones start, errors by status, what the hostile queries got
back, and the server's resident memory over time.
"""

import argparse
import collections
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("VITALS_BIN", str(ROOT / "target" / "release" / "vitals"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "benches"))

import grpc  # noqa: E402
import pyarrow.flight as fl  # noqa: E402

from serve_load import ADHOC, bench_lake, calls, status_mib  # noqa: E402
from server_util import Server, bearer, statement_descriptor, stubs, token_entry  # noqa: E402

HOSTILE = [
    "SELECT " + " + ".join(["1"] * 9000) + " AS x",
    "SELECT count(*) AS n FROM accounts WHERE seats IN (" + ",".join(str(i) for i in range(1_500_000)) + ")",
    "SELECT lpad('x', 2147483647, 'y') AS s",
    "SELECT cardinality(array_repeat(1, 1000000000)) AS n",
    "SELECT array_length(array_agg(event_id)) AS n FROM events",
    "SELECT 9223372036854775807 + 1 AS x",
    "SELECT count(*) AS n FROM events WHERE duration_ms / 0 > 1",
    "SLOW READER",
]


def status_of(e):
    return type(e).__name__.replace("Flight", "").replace("Error", "") or "error"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=2600)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--hostile", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--lake", default=None)
    args = ap.parse_args()
    lake, binary = bench_lake(args)
    config = lake.parent / f"soak-{args.accounts}.toml"
    config.write_text(token_entry("bench", "analyst", "bench-secret") + token_entry("mallory", "analyst", "mallory-secret"))
    pb, pb_grpc = stubs(lake.parent / "stubs")
    server = Server(lake, config, "--max-concurrent-queries", "4", "--max-queued-queries", "64", "--queue-timeout", "120s", "--query-timeout", "30s", env={"VITALS_LOG": "warn"})
    md = [("authorization", "Bearer bench-secret")]
    kinds = calls(pb, args.accounts)
    results = []  # (phase, seconds, status)
    hostile_results = collections.Counter()
    memory = []  # (seconds since start, MiB)
    lock = threading.Lock()
    start = time.time()
    half = start + args.seconds / 2
    end = start + args.seconds

    def ordinary(i):
        rng = random.Random(i)
        stub = pb_grpc.ReportsStub(grpc.insecure_channel(server.target))
        flight = fl.FlightClient(server.uri)
        opts = bearer("bench-secret")
        while time.time() < end:
            phase = "before" if time.time() < half else "after"
            pick = rng.randrange(len(kinds) + 1)
            t = time.perf_counter()
            try:
                if pick == len(kinds):
                    info = flight.get_flight_info(statement_descriptor(ADHOC), opts)
                    flight.do_get(info.endpoints[0].ticket, opts).read_all()
                else:
                    kinds[pick][1](stub, md)
                status = "OK"
            except grpc.RpcError as e:
                status = e.code().name
            except Exception as e:  # noqa: BLE001 - counted by status
                status = status_of(e)
            with lock:
                results.append((phase, time.perf_counter() - t, status))

    def hostile(i):
        rng = random.Random(1000 + i)
        flight = fl.FlightClient(server.uri)
        opts = bearer("mallory-secret")
        while time.time() < half:
            time.sleep(0.2)
        while time.time() < end:
            sql = rng.choice(HOSTILE)
            try:
                if sql == "SLOW READER":
                    info = flight.get_flight_info(statement_descriptor("SELECT * FROM events"), opts)
                    reader = flight.do_get(info.endpoints[0].ticket, opts)
                    reader.read_chunk()
                    time.sleep(35)  # past the timeout, reading nothing
                    status = "slow reader abandoned"
                else:
                    info = flight.get_flight_info(statement_descriptor(sql), opts)
                    flight.do_get(info.endpoints[0].ticket, opts).read_all()
                    status = "OK"
            except Exception as e:  # noqa: BLE001 - counted by status
                status = status_of(e)
            with lock:
                hostile_results[(sql[:40], status)] += 1

    def sample():
        while time.time() < end and server.alive():
            memory.append((time.time() - start, status_mib(server.proc.pid, "VmRSS")))
            time.sleep(5)

    try:
        stub = pb_grpc.ReportsStub(grpc.insecure_channel(server.target))
        for _, call in kinds:
            call(stub, md)
        threads = [threading.Thread(target=ordinary, args=(i,)) for i in range(args.clients - args.hostile)]
        threads += [threading.Thread(target=hostile, args=(i,)) for i in range(args.hostile)]
        threads.append(threading.Thread(target=sample))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        alive = server.alive()
    finally:
        code = server.stop()
    print(f"\n{args.clients - args.hostile} ordinary clients for {args.seconds:.0f} s; {args.hostile} hostile clients from {args.seconds / 2:.0f} s; server alive at the end: {alive}, exit {code}")
    print("| phase | calls | calls/s | p50 ms | p99 ms | statuses |")
    print("|---|---|---|---|---|---|")
    for phase in ("before", "after"):
        rs = [r for r in results if r[0] == phase]
        ok = sorted(r[1] * 1000 for r in rs if r[2] == "OK")
        statuses = dict(collections.Counter(r[2] for r in rs))
        p99 = ok[min(len(ok) - 1, int(round(0.99 * (len(ok) - 1))))] if ok else float("nan")
        print(f"| {phase} hostile clients | {len(rs)} | {len(rs) / (args.seconds / 2):.2f} | {statistics.median(ok) if ok else float('nan'):.0f} | {p99:.0f} | {statuses} |")
    print("\nhostile queries and what they got:")
    for (sql, status), n in sorted(hostile_results.items()):
        print(f"- `{sql}...`: {status} x{n}")
    print("\nserver RSS MiB over time (every 60 s): " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in memory if int(t) % 60 < 5))


if __name__ == "__main__":
    main()
