"""Shared fixtures: the vitals binary, a demo lake, and an S3-compatible
server (moto) started on 127.0.0.1 for the session and stopped at the end."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def vitals_bin() -> str:
    return os.environ.get("VITALS_BIN", str(ROOT / "target" / "debug" / "vitals"))


def run(*args, env=None, check=True):
    """Runs the vitals binary; returns the completed process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([vitals_bin(), *map(str, args)], capture_output=True, text=True, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"vitals {' '.join(map(str, args))} failed ({proc.returncode}): {proc.stderr}")
    return proc


def sql_json(lake, query, env=None):
    out = run("sql", "--lake", lake, "--format", "json", query, env=env).stdout
    return json.loads(out)


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory):
    """The default demo lake (120 accounts, 90 days), shared by the server tests that only read it."""
    path = tmp_path_factory.mktemp("demo") / "lake"
    run("demo", "--lake", path)
    return path


def write_partitions(table, folder, key, values, files):
    """Writes an events table as a foreign pipeline would: one hive folder
    `key=value` per distinct value (a list, one per row), each value's rows
    split over `files` Parquet files in the table's (unsorted) order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for value in sorted(set(values)):
        part = table.filter(pa.array([v == value for v in values]))
        sub = folder / f"{key}={value}"
        sub.mkdir(parents=True)
        k = part.num_rows // files + 1
        for i in range(files):
            pq.write_table(part.slice(i * k, k), sub / f"part-{i}.parquet")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on loopback, with the AWS variables vitals reads."""
    port = free_port()
    proc = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.2)
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }
    try:
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
