#!/usr/bin/env bash
# Commission job at scale: a full recompute over a generated history and an
# incremental run after a batch of changed players, against a throwaway
# ClickHouse (temp dir, free ports). Everything is stopped on exit.
#
#   scripts/bench-commissions.sh [players=100000] [events=2000000] [dirty=1000]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
PLAYERS="${1:-100000}"; EVENTS="${2:-2000000}"; DIRTY="${3:-1000}"
source scripts/lib/clickhouse.sh
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DIR="$(mktemp -d /tmp/clickstitch-commissions-XXXXXX)"
CH_PID=""
cleanup() {
  [[ -n "$CH_PID" ]] && kill -TERM "$CH_PID" 2>/dev/null && wait "$CH_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

cargo build -q --release -p clickstitch-benches --bin commission-load
CH_HTTP="$(free_port)"; CH_TCP="$(free_port)"
ch_start "$DIR/ch" "$CH_HTTP" "$CH_TCP"
echo "bench-commissions: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
target/release/commission-load --clickhouse-url "http://127.0.0.1:$CH_HTTP" \
  --players "$PLAYERS" --events "$EVENTS" --dirty "$DIRTY"
