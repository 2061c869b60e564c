#!/usr/bin/env bash
# Runs every test: Rust unit, integration and sqllogictest files, then the
# Python tests against the real binary (they start an S3-compatible server,
# moto, and `vitals serve` on 127.0.0.1 and stop them at the end) and the
# dashboard in a headless Chromium. Installs what they need first.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/python/requirements.txt

# The dashboard test: Debian's Chromium (and a font with Chinese glyphs for its
# screenshots), driven by playwright-core pinned in tests/browser/package-lock.json.
if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi "zenhei"; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends chromium fonts-wqy-zenhei >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium fonts-wqy-zenhei >/dev/null; }
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# `cargo test` builds the binary the Python tests run (target/debug/vitals)
# with the same dependency features as the tests: a separate `cargo build`
# would build the dependency tree a second time.
cargo test
# Screenshots of each dashboard page land in target/screenshots.
VITALS_SHOTS="$PWD/target/screenshots" VITALS_BIN="$PWD/target/debug/vitals" python3 -m pytest -q tests/python
