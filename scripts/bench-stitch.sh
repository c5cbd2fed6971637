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
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
RATE="${1:-1000}"; DURATION="${2:-30}"; CLICKS="${3:-50000}"
MODE="${4:-}"; if [[ -z "$MODE" && "${JOURNAL:-0}" == 1 ]]; then MODE=journal; fi
[[ -z "$MODE" || "$MODE" == journal ]] || { echo "usage: $0 [rate] [secs] [clicks] [journal]" >&2; exit 2; }
source scripts/lib/clickhouse.sh
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DIR="$(mktemp -d /tmp/clickstitch-stitch-XXXXXX)"
CH_PID=""; AGG_PID=""
cleanup() {
  [[ -n "$AGG_PID" ]] && kill -TERM "$AGG_PID" 2>/dev/null && wait "$AGG_PID" 2>/dev/null
  [[ -n "$CH_PID" ]] && kill -TERM "$CH_PID" 2>/dev/null && wait "$CH_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

cargo build -q --release -p clickstitch-aggregator --bin clickstitch-aggregator -p clickstitch-benches --bin stitch-load
CH_HTTP="$(free_port)"; CH_TCP="$(free_port)"; AGG_PORT="$(free_port)"
ch_start "$DIR/ch" "$CH_HTTP" "$CH_TCP"
export CLICKSTITCH_SERVER__PORT="$AGG_PORT" CLICKSTITCH_CLICKHOUSE__URL="http://127.0.0.1:$CH_HTTP"
export CLICKSTITCH_AUTH__EDGE_SECRET="bench-edge-secret-0123456789" CLICKSTITCH_AUTH__OPERATOR_TOKEN="bench-operator-token-0123456789"
export CLICKSTITCH_LOG__FILTER=warn CLICKSTITCH_CLICKHOUSE__COMPRESSION=none
if [[ "$MODE" == journal ]]; then
  export CLICKSTITCH_ATTRIBUTION__JOURNAL_DIR="$DIR/journal"
fi
target/release/clickstitch-aggregator >"$DIR/aggregator.log" 2>&1 &
AGG_PID=$!
wait_http "http://127.0.0.1:$AGG_PORT/health" aggregator
echo "bench-stitch: events ${MODE:-direct}, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
target/release/stitch-load --url "http://127.0.0.1:$AGG_PORT" --rate "$RATE" --duration-secs "$DURATION" --clicks "$CLICKS"
