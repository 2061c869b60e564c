#!/usr/bin/env python3
"""Load bench for `vitals serve`: N concurrent clients call the report RPCs
(grpcio, generated from proto/) and an ad-hoc Flight SQL query (pyarrow.flight)
against a demo lake of about ten million events, for a fixed time, with the
release binary.

    python3 benches/serve_load.py [--accounts 2600] [--clients 8] [--seconds 60]

Prints, per call kind and overall: calls, errors, throughput, p50 and p99
latency; and the server's peak resident memory (VmHWM). Every call's answer is
checked to have rows, so a failing server cannot look fast.
"""

import argparse
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

import grpc  # noqa: E402
import pyarrow.flight as fl  # noqa: E402

from server_util import Server, bearer, statement_descriptor, stubs, token_entry  # noqa: E402

ADHOC = (
    "SELECT org_id, count(*) AS events, count(DISTINCT user_id) AS users FROM events "
    "WHERE event_date > (SELECT max(event_date) - 7 FROM events) GROUP BY org_id ORDER BY events DESC LIMIT 20"
)


def calls(pb, accounts):
    return [
        ("AccountUsage", lambda s, md: s.AccountUsage(pb.AccountUsageRequest(days=7), metadata=md)),
        ("KeyUserUsage", lambda s, md: s.KeyUserUsage(pb.KeyUserUsageRequest(org_id=f"org-{random.randint(1, accounts):05d}", days=14), metadata=md)),
        ("HealthScores", lambda s, md: s.HealthScores(pb.HealthScoresRequest(days=7), metadata=md)),
        ("DecliningAccounts", lambda s, md: s.DecliningAccounts(pb.DecliningAccountsRequest(csms=5, per_csm=10, days=14), metadata=md)),
        ("Funnel", lambda s, md: s.Funnel(pb.FunnelRequest(steps=["signup", "create_project", "invite_user", "upgrade"], window="7 days"), metadata=md)),
        ("RetentionMatrix", lambda s, md: s.RetentionMatrix(pb.RetentionMatrixRequest(cohort_event="signup", return_event="login", periods=8), metadata=md)),
        ("ModuleUsageShare", lambda s, md: s.ModuleUsageShare(pb.ModuleUsageShareRequest(), metadata=md)),
    ]


def status_mib(pid, key="VmHWM"):
    """A memory figure of /proc/PID/status in MiB: VmHWM (peak resident) or VmRSS (now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_lake(args):
    """The demo lake of `args.accounts` accounts (made on first use) and the binary."""
    lake = Path(args.lake or ROOT / "data" / "bench" / f"serve-{args.accounts}")
    binary = os.environ["VITALS_BIN"]
    if not (lake / "events").exists():
        subprocess.run([binary, "demo", "--lake", str(lake), "--accounts", str(args.accounts)], check=True)
    return lake, binary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=2600)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--lake", default=None)
    args = ap.parse_args()
    lake, binary = bench_lake(args)
    events = subprocess.run([binary, "sql", "--lake", str(lake), "--format", "csv", "SELECT count(*) FROM events"], check=True, capture_output=True, text=True).stdout.split()[-1]
    config = lake.parent / f"serve-{args.accounts}.toml"
    config.write_text(token_entry("bench", "analyst", "bench-secret"))
    pb, pb_grpc = stubs(lake.parent / "stubs")
    server = Server(lake, config, "--max-concurrent-queries", "4", "--max-queued-queries", "64", "--queue-timeout", "120s", env={"VITALS_LOG": "warn"})
    md = [("authorization", "Bearer bench-secret")]
    kinds = calls(pb, args.accounts)
    results = []  # (kind, seconds, ok)
    lock = threading.Lock()
    deadline = time.time() + args.seconds

    def client(i):
        rng = random.Random(i)
        stub = pb_grpc.ReportsStub(grpc.insecure_channel(server.target))
        flight = fl.FlightClient(server.uri)
        opts = bearer("bench-secret")
        while time.time() < deadline:
            pick = rng.randrange(len(kinds) + 1)
            start = time.perf_counter()
            ok = True
            try:
                if pick == len(kinds):
                    kind = "ad-hoc SQL"
                    info = flight.get_flight_info(statement_descriptor(ADHOC), opts)
                    ok = flight.do_get(info.endpoints[0].ticket, opts).read_all().num_rows > 0
                else:
                    kind, call = kinds[pick]
                    ok = len(call(stub, md).rows) > 0 or kind == "KeyUserUsage"
            except Exception as e:  # noqa: BLE001 - counted and reported
                ok = False
                print(f"client {i}: {kind}: {str(e)[:200]}", file=sys.stderr)
            with lock:
                results.append((kind, time.perf_counter() - start, ok))

    try:
        # Warm-up: one of each, unmeasured.
        stub = pb_grpc.ReportsStub(grpc.insecure_channel(server.target))
        for _, call in kinds:
            call(stub, md)
        deadline = time.time() + args.seconds
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        began = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - began
        peak = status_mib(server.proc.pid)
    finally:
        code = server.stop()
    assert code == 0, f"vitals serve exited with {code}"

    print(f"\n{events} events, {args.clients} clients, {wall:.0f} s, server peak RSS {peak:.0f} MiB")
    print("| call | calls | errors | calls/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    names = [k for k, _ in kinds] + ["ad-hoc SQL"]
    for name in names + ["all"]:
        rs = [r for r in results if name == "all" or r[0] == name]
        lat = sorted(r[1] * 1000 for r in rs if r[2])
        errors = sum(1 for r in rs if not r[2])
        if not lat:
            print(f"| {name} | {len(rs)} | {errors} | 0 | - | - |")
            continue
        p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
        print(f"| {name} | {len(rs)} | {errors} | {len(rs) / wall:.2f} | {statistics.median(lat):.0f} | {p99:.0f} |")


if __name__ == "__main__":
    main()
