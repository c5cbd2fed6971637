#!/usr/bin/env bash
# Stitching latency benchmark: registration → attribution readable via the
# API, at a fixed rate, against a release aggregator and a throwaway
# ClickHouse (temp dir, free ports). Everything is stopped on exit.
#
#   scripts/bench-stitch.sh [rate=1000] [duration_secs=30] [clicks=50000] [journal]
#
# A 4th argument `journal` (or JOURNAL=1) runs the aggregator with the
# brand-event write-ahead journal (attribution.journal_dir) in a directory
# under the run's temp dir: events are acknowledged once fsynced there.
#
# Runs `cargo xtask bench stitch` (xtask/src/bench.rs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
exec cargo xtask bench stitch "$@"
