#!/usr/bin/env bash
# wrk against the edge worker under workerd (full stack behind it: aggregator
# + ClickHouse via scripts/dev-up.sh) and, in the same run, against a
# hello-world redirect worker (benches/workers/hello-redirect.js) under the
# same workerd binary. Prints both rates and their ratio.
#
#   scripts/bench-edge.sh [duration_seconds=30] [connections=32]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${1:-30}"
CONNECTIONS="${2:-32}"
THREADS="${WRK_THREADS:-2}"
export CH_HTTP_PORT="${CH_HTTP_PORT:-28123}" CH_TCP_PORT="${CH_TCP_PORT:-29000}"
export AGG_PORT="${AGG_PORT:-28080}" EDGE_PORT="${EDGE_PORT:-28787}"
HELLO_PORT="${HELLO_PORT:-28788}"
OUT="$ROOT/.local/bench-edge"
mkdir -p "$OUT"
log() { echo "bench-edge: $*" >&2; }

bash scripts/dev-up.sh >"$OUT/dev-up.log" 2>&1 &
DEV=$!
HELLO=""
cleanup() {
  [[ -n "$HELLO" ]] && kill "$HELLO" 2>/dev/null && wait "$HELLO" 2>/dev/null
  kill -TERM "$DEV" 2>/dev/null && wait "$DEV" 2>/dev/null
  true
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 600); do
  grep -q "Clickstitch is up" "$OUT/dev-up.log" 2>/dev/null && break
  kill -0 "$DEV" 2>/dev/null || { cat "$OUT/dev-up.log"; exit 1; }
  sleep 1
done
CODE="$(grep -o "127.0.0.1:$EDGE_PORT/[A-Za-z0-9]*?sub1=newsletter" "$OUT/dev-up.log" | head -1 | sed 's|.*/\([A-Za-z0-9]*\)?.*|\1|')"
[[ -n "$CODE" ]] || { log "no demo link in dev-up output"; cat "$OUT/dev-up.log"; exit 1; }

W="$OUT/hello"
mkdir -p "$W"
cp benches/workers/hello-redirect.js "$W/hello.js"
COMPAT_DATE="$(sed -n 's/^compatibility_date *= *"\([0-9-]*\)".*/\1/p' wrangler.toml | head -1)"
cat >"$W/config.capnp" <<CAPNP
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "hello", worker = (modules = [(name = "hello.js", esModule = embed "hello.js")], compatibilityDate = "$COMPAT_DATE")) ],
  sockets = [ (name = "http", address = "127.0.0.1:$HELLO_PORT", service = "hello") ],
);
CAPNP
WORKERD="$ROOT/node_modules/@cloudflare/workerd-linux-64/bin/workerd"
"$WORKERD" serve "$W/config.capnp" >"$OUT/hello-workerd.log" 2>&1 &
HELLO=$!
sleep 1

UA='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36'
EDGE_URL="http://127.0.0.1:$EDGE_PORT/$CODE?sub1=wrk&sub2=bench"
HELLO_URL="http://127.0.0.1:$HELLO_PORT/$CODE?sub1=wrk&sub2=bench"
curl -s -o /dev/null -w "edge warm-up: %{http_code} -> %{redirect_url}\n" -A "$UA" -H 'CF-IPCountry: DE' "$EDGE_URL" >&2
curl -s -o /dev/null -w "hello warm-up: %{http_code}\n" "$HELLO_URL" >&2

run() { # name url
  log "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency $2"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "User-Agent: $UA" -H 'CF-IPCountry: DE' "$2" | tee "$OUT/wrk-$1.txt"
}
run edge "$EDGE_URL"
sleep 5
run hello "$HELLO_URL"

rate() { awk '/Requests\/sec/ {print $2}' "$OUT/wrk-$1.txt"; }
EDGE_RPS="$(rate edge)"; HELLO_RPS="$(rate hello)"
sleep 3
STORED="$(clickhouse-client --port "$CH_TCP_PORT" --query "SELECT count() FROM clickstitch.clicks_unique" 2>/dev/null || echo '?')"
python3 - "$EDGE_RPS" "$HELLO_RPS" "$STORED" <<'PY'
import sys
edge, hello, stored = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
print(f"\nedge worker:      {edge:10.0f} req/s")
print(f"hello redirect:   {hello:10.0f} req/s")
print(f"ratio:            {edge / hello:10.2f}  (target >= 0.80)")
print(f"clicks stored in ClickHouse so far: {stored}")
PY
