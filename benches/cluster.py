#!/usr/bin/env python3
"""Local against a Ballista cluster of the same binary on this machine: the
funnel, retention and three reports, run by `vitals sql` without and with
--cluster (a scheduler and one, then two executors on 127.0.0.1), medians of
--runs, alternating. Also the bytes the executors' work folders held at their
peak during each query (the shuffle files), sampled every 20 ms.

    cargo build --release && python3 benches/cluster.py --lake data/bench/compare-20.0m --runs 3

Without --lake it makes a demo lake of about 20M events (5,200 accounts x 90
days) in data/bench/cluster-20m. Every answer is compared with the local one
(rows sorted, floats within 1e-9 relative)."""

import argparse
import json
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

QUERIES = [
    ("funnel", "SELECT * FROM funnel('signup,create_project,invite_user,upgrade', '7 days')"),
    ("retention_matrix", "SELECT * FROM retention_matrix('signup', 'login', 'week', 8)"),
    ("account_usage", "SELECT * FROM account_usage(NULL, 7)"),
    ("health_scores", "SELECT * FROM health_scores(NULL, 7)"),
    ("paths", "SELECT * FROM paths('signup', '', 5, '1 day')"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def folder_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def run(binary, lake, sql, cluster=None, work=()):
    """(seconds, rows, peak bytes in the work folders) of one `vitals sql`."""
    args = [binary, "sql", "--lake", str(lake), "--format", "json", "--timing"]
    if cluster:
        args += ["--cluster", cluster]
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], sum(folder_bytes(w) for w in work))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    proc = subprocess.run(args + [sql], capture_output=True, text=True)
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr}")
    seconds = float(re.search(r"query seconds: ([0-9.]+)", proc.stderr).group(1))
    return seconds, json.loads(proc.stdout), peak[0]


def same(a, b):
    key = lambda r: json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}, sort_keys=True)
    if len(a) != len(b):
        return False
    for x, y in zip(sorted(a, key=key), sorted(b, key=key)):
        for k in x:
            u, v = x[k], y.get(k)
            if isinstance(u, float) or isinstance(v, float):
                if u is None or v is None or not math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif u != v:
                return False
    return True


class Cluster:
    def __init__(self, binary, lake, executors, folder):
        self.procs = []
        self.work = []
        port = free_port()
        self.url = f"df://127.0.0.1:{port}"
        env = dict(os.environ, VITALS_LOG="info")
        logs = Path(folder)
        sched_log = open(logs / "scheduler.log", "w")
        self.procs.append(subprocess.Popen([binary, "scheduler", "--lake", str(lake), "--bind-port", str(port)], stdout=sched_log, stderr=subprocess.STDOUT, env=env))
        time.sleep(1)
        for i in range(executors):
            work = logs / f"work{i}"
            self.work.append(work)
            log_path = logs / f"executor{i}.log"
            log = open(log_path, "w")
            self.procs.append(subprocess.Popen(
                [binary, "executor", "--lake", str(lake), "--scheduler-port", str(port), "--port", str(free_port()),
                 "--grpc-port", str(free_port()), "--concurrent-tasks", "2", "--work-dir", str(work)],
                stdout=log, stderr=subprocess.STDOUT, env=env))
            deadline = time.time() + 60
            while "registration succeed" not in log_path.read_text(errors="replace"):
                if time.time() > deadline:
                    self.stop()
                    raise SystemExit(f"executor {i} did not register: {log_path}")
                time.sleep(0.1)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "vitals"))
    ap.add_argument("--lake")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--executors", default="1,2")
    a = ap.parse_args()
    lake = Path(a.lake) if a.lake else ROOT / "data" / "bench" / "cluster-20m"
    if not (lake / "events").exists():
        subprocess.run([a.binary, "demo", "--lake", str(lake), "--accounts", "5200"], check=True)
    _, count, _ = run(a.binary, lake, "SELECT count(*) AS n FROM events")
    events = count[0]["n"]
    results = {}
    for n in [int(x) for x in a.executors.split(",")]:
        with tempfile.TemporaryDirectory() as folder:
            c = Cluster(a.binary, lake, n, folder)
            try:
                for name, sql in QUERIES:
                    local_t, cluster_t, shuffled = [], [], []
                    for _ in range(a.runs):
                        t, expected, _ = run(a.binary, lake, sql)
                        local_t.append(t)
                        t, rows, peak = run(a.binary, lake, sql, c.url, c.work)
                        if not same(expected, rows):
                            raise SystemExit(f"{name}: the cluster's answer differs from the local one")
                        cluster_t.append(t)
                        shuffled.append(peak)
                    results.setdefault(name, {})["local"] = statistics.median(local_t)
                    results[name][n] = (statistics.median(cluster_t), max(shuffled))
                    print(f"{name}: local {statistics.median(local_t):.2f} s, {n} executor(s) {statistics.median(cluster_t):.2f} s, shuffle peak {max(shuffled) / 2**20:.1f} MiB", file=sys.stderr)
            finally:
                c.stop()
    print(f"\n{events:,} events, {lake}; medians of {a.runs} runs; query time as `vitals sql --timing` reports it\n")
    cols = [int(x) for x in a.executors.split(",")]
    print("| query | local | " + " | ".join(f"{n} executor{'s' if n > 1 else ''}" for n in cols) + " | " + " | ".join(f"cluster/local ({n})" for n in cols) + " | shuffle peak (MiB, " + ", ".join(str(n) for n in cols) + ") |")
    print("|---" * (2 + 2 * len(cols) + 1) + "|")
    for name, r in results.items():
        times = " | ".join(f"{r[n][0]:.2f} s" for n in cols)
        ratios = " | ".join(f"{r[n][0] / r['local']:.2f}" for n in cols)
        shuffle = ", ".join(f"{r[n][1] / 2**20:.1f}" for n in cols)
        print(f"| {name} | {r['local']:.2f} s | {times} | {ratios} | {shuffle} |")


if __name__ == "__main__":
    main()
