#!/usr/bin/env bash
# Runs every Clickstitch test, installing what the tests need first.
#
#   scripts/test-all.sh            # everything
#
# Steps: install dependencies (guarded, here in shell), then `cargo xtask test`:
# formatting and lints (native and wasm32), build the edge worker's wasm
# bundle, then `cargo test --workspace`:
# unit and property tests, aggregator integration tests against a real
# ClickHouse 18.16 server (started by the tests on free ports, or the one
# CLICKHOUSE_URL points at), the SQL compatibility check on ClickHouse 18.16
# and current ClickHouse (chdb), and the end-to-end tests with the wasm under
# workerd.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
export WRANGLER_SEND_METRICS=false
step() { echo; echo "==> $*"; }

step "installing dependencies"
bash scripts/install-deps.sh

# The rest (fmt, clippy native and wasm32, the wasm build, cargo test) is
# `cargo xtask test` (xtask/src/main.rs).
exec cargo xtask test
