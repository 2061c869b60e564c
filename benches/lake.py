#!/usr/bin/env python3
"""Lake benchmarks: demo generation and ingest throughput of the release binary.

    python3 benches/lake.py [--accounts 1000] [--days 90] [--runs 3]

Prints events per second of wall time and per CPU-second (user + system time
of the vitals process, so "per core" does not depend on how many cores ran).
"""

import argparse
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd):
    """Runs cmd; returns (wall seconds, cpu seconds, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: {proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def report(name, events, samples):
    wall = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    print(f"| {name} | {events:,} | {wall:.2f} | {events / wall / 1e6:.2f} | {cpu:.2f} | {events / cpu / 1e6:.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "vitals"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vitals-bench-"))
    try:
        lake = work / "lake"
        samples = []
        for _ in range(args.runs):
            shutil.rmtree(lake, ignore_errors=True)
            samples.append(timed([args.bin, "demo", "--lake", lake, "--accounts", str(args.accounts), "--days", str(args.days)]))
        events = int(samples[-1][2].split(" users, ")[1].split(" events")[0])
        print(f"machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; median of {args.runs} runs")
        print("| step | events | wall s | M events/s (wall) | CPU s | M events/s per core |")
        print("|---|---|---|---|---|---|")
        report("demo generation", events, samples)

        # Inputs for ingest: the demo's events as one CSV file and as Parquet.
        csv = work / "events.csv"
        with open(csv, "w") as f:
            subprocess.run(
                [args.bin, "sql", "--lake", lake, "--format", "csv", "SELECT * EXCLUDE (event_date) FROM events"],
                stdout=f,
                check=True,
            )
        parquet = sorted((lake / "events").rglob("*.parquet"))
        for name, files in (("ingest CSV", [csv]), ("ingest Parquet", parquet)):
            samples = []
            for _ in range(args.runs):
                target = work / "target"
                shutil.rmtree(target, ignore_errors=True)
                samples.append(timed([args.bin, "ingest", "--lake", target, *files]))
            report(name, events, samples)
        # Re-ingest into a full lake: every row is a duplicate to find and drop.
        samples = [timed([args.bin, "ingest", "--lake", work / "target", *parquet]) for _ in range(args.runs)]
        report("re-ingest, all duplicates", events, samples)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
