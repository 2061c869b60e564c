#!/usr/bin/env bash
# Runs every test: Rust unit, integration and sqllogictest files, then the
# Python tests against the real binary (they start an S3-compatible server,
# moto, on 127.0.0.1 and stop it at the end). Installs what they need first.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/python/requirements.txt

cargo build --bins
cargo test
VITALS_BIN="$PWD/target/debug/vitals" python3 -m pytest -q tests/python
