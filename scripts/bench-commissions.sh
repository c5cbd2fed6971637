#!/usr/bin/env bash
# Commission job at scale: a full recompute over a generated history and an
# incremental run after a batch of changed players, against a throwaway
# ClickHouse (temp dir, free ports). Everything is stopped on exit.
#
#   scripts/bench-commissions.sh [players=100000] [events=2000000] [dirty=1000]
#
# Runs `cargo xtask bench commissions` (xtask/src/bench.rs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
exec cargo xtask bench commissions "$@"
