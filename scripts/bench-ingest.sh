#!/usr/bin/env bash
# Ingest throughput benchmark: aggregator vs. the clickhouse-client ceiling.
#
#   1. starts a throwaway ClickHouse (temp dir, free ports, Debian's 18.16 build),
#   2. builds (--release) and starts the aggregator on a free port against it,
#   3. runs `ingest-load` (benches/src/bin/ingest-load.rs) for DURATION seconds:
#      CONCURRENCY requests in flight, BATCH_SIZE fresh valid clicks each,
#   4. checks that ClickHouse holds exactly the accepted clicks (all unique),
#   5. measures the CEILING on the same rows: exports them (FORMAT Native and
#      RowBinary), creates an identical empty table and times
#      `clickhouse-client --query 'INSERT INTO clicks_copy FORMAT Native' < file`
#      (CEILING_RUNS times; best and median), plus the same rows as one HTTP
#      RowBinary INSERT with curl (the protocol the aggregator speaks),
#   6. prints rows/s for both and the ratio.
# Everything it started is stopped on exit (trap), the temp dir removed.
#
# Usage: scripts/bench-ingest.sh            one run with the settings below
#        scripts/bench-ingest.sh --sweep    one run per SWEEP entry (no ceiling)
#
# Settings (environment):
#   DURATION=60 CONCURRENCY=8 BATCH_SIZE=1000 LOADGEN_THREADS=1 LINKS=4
#   MAX_BATCH_ROWS=100000 MAX_BATCH_DELAY_MS=50 MAX_INSERTS_IN_FLIGHT=2
#   CEILING_RUNS=3        SKIP_CEILING=1 to skip step 5
#   SWEEP="max_rows:in_flight:delay_ms:concurrency:batch ..."  SWEEP_DURATION=20
#   PERF=1                also `perf record` the aggregator and ClickHouse during
#                         the run and print their top symbols
#   SKIP_BUILD=1          use the existing target/release binaries
#   KEEP_DIR=1            keep the temp dir (logs, exported rows)
#   AGG_BIN=path          aggregator binary to run (A/B comparisons; default target/release)
#   AGG_LD_PRELOAD=lib    LD_PRELOAD for the aggregator, e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"

DURATION="${DURATION:-60}"
CONCURRENCY="${CONCURRENCY:-8}"
BATCH_SIZE="${BATCH_SIZE:-1000}"
LOADGEN_THREADS="${LOADGEN_THREADS:-1}"
LINKS="${LINKS:-4}"
MAX_BATCH_ROWS="${MAX_BATCH_ROWS:-100000}"
MAX_BATCH_DELAY_MS="${MAX_BATCH_DELAY_MS:-50}"
MAX_INSERTS_IN_FLIGHT="${MAX_INSERTS_IN_FLIGHT:-2}"
CEILING_RUNS="${CEILING_RUNS:-3}"
SWEEP_DURATION="${SWEEP_DURATION:-20}"
SWEEP="${SWEEP:-100000:2:50:8:1000 100000:1:50:8:1000 100000:4:50:8:1000 50000:2:50:8:1000 200000:2:100:8:1000 100000:2:50:4:1000 100000:2:50:16:1000 100000:2:50:8:500 100000:2:50:8:5000}"
EDGE_SECRET="bench-edge-secret-0123456789"
OPERATOR_TOKEN="bench-operator-token-0123456789"
DB=clickstitch

MODE=single
[[ "${1:-}" == "--sweep" ]] && MODE=sweep

log() { echo "bench-ingest: $*" >&2; }
die() { echo "bench-ingest: error: $*" >&2; exit 1; }

DIR="$(mktemp -d /tmp/clickstitch-bench-XXXXXX)"
CH_PID=""
CH_RUNNER=""
AGG_PID=""
PERF_PIDS=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  if [[ -n "$AGG_PID" ]]; then kill -TERM "$AGG_PID" 2>/dev/null || true; wait "$AGG_PID" 2>/dev/null || true; fi
  if [[ -n "$CH_RUNNER" ]]; then kill -TERM "$CH_RUNNER" 2>/dev/null || true; wait "$CH_RUNNER" 2>/dev/null || true; fi
  if [[ "${KEEP_DIR:-0}" == 1 ]]; then log "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # url, what: polls url (0.5 s apart, 60 s at most) until it answers 2xx
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.5
  done
  die "$2 did not come up ($1)"
}
machine() {
  echo "$(grep -c ^processor /proc/cpuinfo) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# --- build -----------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  log "building (release) the aggregator and ingest-load"
  cargo build --release -q -p clickstitch-aggregator --bin clickstitch-aggregator \
    -p clickstitch-benches --bin ingest-load
fi
AGG_BIN="${AGG_BIN:-$ROOT/target/release/clickstitch-aggregator}"
LOAD_BIN="$ROOT/target/release/ingest-load"
[[ -x "$AGG_BIN" && -x "$LOAD_BIN" ]] || die "missing release binaries (run without SKIP_BUILD)"

# --- ClickHouse --------------------------------------------------------------------
# `cargo xtask clickhouse` runs it on the testkit harness (testkit/src/clickhouse.rs)
# until SIGTERM, and writes CH_HTTP_PORT, CH_TCP_PORT and CH_PID (the server's) once
# it answers.
CH="$DIR/clickhouse"
cargo build -q -p xtask
cargo xtask clickhouse --dir "$CH" --max-memory-usage 8000000000 \
  --env-file "$DIR/clickhouse.env" >"$DIR/clickhouse-runner.log" 2>&1 &
CH_RUNNER=$!
for _ in $(seq 1 240); do
  [[ -s "$DIR/clickhouse.env" ]] && break
  kill -0 "$CH_RUNNER" 2>/dev/null || { cat "$DIR/clickhouse-runner.log" >&2; die "ClickHouse did not start"; }
  sleep 0.25
done
[[ -s "$DIR/clickhouse.env" ]] || die "ClickHouse did not come up in 60 s"
source "$DIR/clickhouse.env"
chq() { clickhouse-client --host 127.0.0.1 --port "$CH_TCP_PORT" "$@"; }
log "ClickHouse $(chq --query 'SELECT version()') pid $CH_PID on :$CH_HTTP_PORT (tcp :$CH_TCP_PORT), data in $CH"

events_snapshot() { # name value, for the counters we report (0 when absent)
  chq --query "SELECT name, value FROM (SELECT arrayJoin(['InsertQuery', 'InsertedRows', 'InsertedBytes', 'MergedRows', 'MergesTimeMilliseconds']) AS name) ANY LEFT JOIN (SELECT event AS name, value FROM system.events) USING name FORMAT TSV"
}

wait_merges() { # let background merges of the previous phase settle (max 120 s)
  for _ in $(seq 1 240); do
    [[ "$(chq --query 'SELECT count() FROM system.merges')" == 0 ]] && return 0
    sleep 0.5
  done
  log "merges still running after 120 s"
}

# --- one aggregator run --------------------------------------------------------------
# run_load max_rows in_flight delay_ms concurrency batch duration -> sets RESULT
run_load() {
  local rows="$1" inflight="$2" delay="$3" conc="$4" batch="$5" duration="$6"
  chq --query "DROP DATABASE IF EXISTS $DB"
  local port; port="$(free_port)"
  CLICKSTITCH_SERVER__PORT="$port" \
  CLICKSTITCH_CLICKHOUSE__URL="http://127.0.0.1:$CH_HTTP_PORT" \
  CLICKSTITCH_CLICKHOUSE__COMPRESSION="${COMPRESSION:-none}" \
  CLICKSTITCH_CLICKHOUSE__DATABASE="$DB" \
  CLICKSTITCH_AUTH__EDGE_SECRET="$EDGE_SECRET" \
  CLICKSTITCH_AUTH__OPERATOR_TOKEN="$OPERATOR_TOKEN" \
  CLICKSTITCH_INGEST__MAX_BATCH_ROWS="$rows" \
  CLICKSTITCH_INGEST__MAX_BATCH_DELAY_MS="$delay" \
  CLICKSTITCH_INGEST__MAX_INSERTS_IN_FLIGHT="$inflight" \
  LD_PRELOAD="${AGG_LD_PRELOAD:-}" \
    "$AGG_BIN" >"$DIR/aggregator.log" 2>&1 &
  AGG_PID=$!
  wait_http "http://127.0.0.1:$port/health" aggregator
  log "run: max_batch_rows=$rows max_inserts_in_flight=$inflight max_batch_delay_ms=$delay concurrency=$conc batch=$batch for ${duration}s"
  log "machine: $(machine)"
  if [[ "${PERF:-0}" == 1 ]] && command -v perf >/dev/null; then
    (sleep 5; exec perf record -q -F 199 --call-graph dwarf,16384 -p "$AGG_PID" -o "$DIR/aggregator.perf.data" -- sleep $((duration - 10))) >/dev/null 2>&1 &
    PERF_PIDS+=($!)
    (sleep 5; exec perf record -q -F 499 -g -p "$CH_PID" -o "$DIR/clickhouse.perf.data" -- sleep $((duration - 10))) >/dev/null 2>&1 &
    PERF_PIDS+=($!)
  fi
  events_snapshot >"$DIR/events.before"
  "$LOAD_BIN" --url "http://127.0.0.1:$port" --edge-secret "$EDGE_SECRET" \
    --operator-token "$OPERATOR_TOKEN" --duration-secs "$duration" \
    --concurrency "$conc" --batch-size "$batch" --threads "$LOADGEN_THREADS" --links "$LINKS" \
    --watch-pid "aggregator=$AGG_PID" --watch-pid "clickhouse=$CH_PID" | tee "$DIR/load.out"
  RESULT="$(grep '^RESULT' "$DIR/load.out" | sed 's/^RESULT //')"
  events_snapshot >"$DIR/events.after"
  # What ClickHouse did meanwhile: INSERTs, parts written, merge amplification.
  RESULT="$RESULT $(awk 'NR == FNR { b[$1] = $2; next } { d[$1] = $2 - b[$1] }
    END {
      printf "inserts=%d rows_per_insert=%.0f merged_rows_per_inserted_row=%.2f merge_ms=%d",
        d["InsertQuery"], d["InsertedRows"] / (d["InsertQuery"] ? d["InsertQuery"] : 1),
        d["MergedRows"] / (d["InsertedRows"] ? d["InsertedRows"] : 1), d["MergesTimeMilliseconds"]
    }' "$DIR/events.before" "$DIR/events.after")"
  log "ClickHouse during the run: $(tr ' ' '\n' <<<"$RESULT" | grep -E '^(inserts|rows_per_insert|merged_rows_per_inserted_row|merge_ms)=' | tr '\n' ' ')"
  for p in "${PERF_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PERF_PIDS=()
  kill -TERM "$AGG_PID"; wait "$AGG_PID" 2>/dev/null || true
  AGG_PID=""
  if grep -qiE '"level":"(WARN|ERROR)"|WARN|ERROR' "$DIR/aggregator.log"; then
    log "aggregator warnings/errors (first 5):"; grep -iE 'WARN|ERROR' "$DIR/aggregator.log" | head -5 >&2
  fi
}
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$RESULT"; }

if [[ "$MODE" == sweep ]]; then
  printf '%-8s %-5s %-5s %-4s %-5s | %8s %8s %7s %7s %5s %5s %5s %5s %7s %7s %6s %5s %8s\n' \
    max_rows in_fl delay conc batch clicks/s min10s/s p50_ms p99_ms agg% ch% gen% oth% agg_us ch_us rows/i merge proj/s >"$DIR/sweep.txt"
  for entry in $SWEEP; do
    IFS=: read -r rows inflight delay conc batch <<<"$entry"
    run_load "$rows" "$inflight" "$delay" "$conc" "$batch" "$SWEEP_DURATION"
    printf '%-8s %-5s %-5s %-4s %-5s | %8s %8s %7s %7s %5s %5s %5s %5s %7s %7s %6s %5s %8s\n' \
      "$rows" "$inflight" "$delay" "$conc" "$batch" "$(field clicks_per_s)" "$(field min_interval_clicks_per_s)" \
      "$(field p50_ms)" "$(field p99_ms)" "$(field cpu_aggregator_pct)" "$(field cpu_clickhouse_pct)" \
      "$(field cpu_loadgen_pct)" "$(field cpu_other_pct)" "$(field cpu_aggregator_us_per_click)" \
      "$(field cpu_clickhouse_us_per_click)" "$(field rows_per_insert)" "$(field merged_rows_per_inserted_row)" \
      "$(field projected_clicks_per_s)" >>"$DIR/sweep.txt"
    cat "$DIR/sweep.txt" >&2
    wait_merges
  done
  echo
  echo "Sweep (${SWEEP_DURATION}s each; CPU % of one core, machine has $(nproc) cores; agg_us/ch_us: CPU µs per"
  echo "accepted click; rows/i: rows per INSERT; merge: rows merged per row inserted during the run;"
  echo "proj/s: 2 cores / (agg_us + ch_us), the rate if nothing else used the CPU):"
  cat "$DIR/sweep.txt"
  exit 0
fi

# --- single run ------------------------------------------------------------------------
run_load "$MAX_BATCH_ROWS" "$MAX_INSERTS_IN_FLIGHT" "$MAX_BATCH_DELAY_MS" "$CONCURRENCY" "$BATCH_SIZE" "$DURATION"
AGG_RATE="$(field clicks_per_s)"
ACCEPTED="$(field accepted)"
read -r STORED UNIQUE <<<"$(chq --query "SELECT count(), uniqExact(click_id) FROM $DB.clicks FORMAT TSV")"
log "stored rows: $STORED (unique click ids: $UNIQUE), accepted by the aggregator: $ACCEPTED"
[[ "$STORED" == "$ACCEPTED" && "$UNIQUE" == "$STORED" ]] || log "WARNING: stored/unique/accepted differ"

if [[ "${PERF:-0}" == 1 ]]; then
  for what in aggregator clickhouse; do
    if [[ -f "$DIR/$what.perf.data" ]]; then
      echo; echo "perf: top symbols of $what (self time)"
      perf report -i "$DIR/$what.perf.data" --no-children --sort dso,symbol --percent-limit 1.5 2>/dev/null \
        | grep -E '^ +[0-9]' | head -25 || true
    fi
  done
fi

if [[ "${SKIP_CEILING:-0}" == 1 ]]; then exit 0; fi

# --- ceiling: the same rows through clickhouse-client -------------------------------------
wait_merges
log "exporting the stored rows"
chq --query "SELECT * FROM $DB.clicks FORMAT Native" >"$DIR/clicks.native"
chq --query "SELECT * FROM $DB.clicks FORMAT RowBinary" >"$DIR/clicks.rowbinary"
log "exported $(du -h "$DIR/clicks.native" | cut -f1) Native, $(du -h "$DIR/clicks.rowbinary" | cut -f1) RowBinary"
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; } # ticks (1/100 s)
native_rates=()
http_rates=()
for i in $(seq 1 "$CEILING_RUNS"); do
  for kind in native http; do
    chq --query "DROP TABLE IF EXISTS $DB.clicks_copy"
    chq --query "CREATE TABLE $DB.clicks_copy AS $DB.clicks"
    wait_merges
    c0="$(cpu_of "$CH_PID")"
    t0="$(date +%s.%N)"
    if [[ "$kind" == native ]]; then
      TIMEFORMAT='%U %S'
      client_cpu="$( { time chq --query "INSERT INTO $DB.clicks_copy FORMAT Native" <"$DIR/clicks.native" ; } 2>&1 )"
    else
      client_cpu="0 0"
      # -T streams the file (--data-binary @file would load it into memory).
      curl -fsS -X POST -T "$DIR/clicks.rowbinary" \
        "http://127.0.0.1:$CH_HTTP_PORT/?query=INSERT%20INTO%20$DB.clicks_copy%20FORMAT%20RowBinary" >/dev/null
    fi
    t1="$(date +%s.%N)"
    c1="$(cpu_of "$CH_PID")"
    copied="$(chq --query "SELECT count() FROM $DB.clicks_copy")"
    [[ "$copied" == "$STORED" ]] || log "WARNING: copy has $copied rows, expected $STORED"
    rate="$(awk -v n="$STORED" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')"
    read -r cu cs <<<"$client_cpu"
    log "ceiling run $i ($kind): $STORED rows in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s = $rate rows/s; ClickHouse CPU $(awk -v c="$((c1 - c0))" 'BEGIN { printf "%.2f", c / 100 }') s, client CPU $(awk -v u="$cu" -v s="$cs" 'BEGIN { printf "%.2f", u + s }') s"
    if [[ "$kind" == native ]]; then native_rates+=("$rate"); else http_rates+=("$rate"); fi
  done
done
best() { printf '%s\n' "$@" | sort -n | tail -1; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
NATIVE_BEST="$(best "${native_rates[@]}")"
HTTP_BEST="$(best "${http_rates[@]}")"
echo
echo "== ingest benchmark ($(machine)) =="
echo "aggregator (HTTP JSON -> validate -> RowBinary INSERT), ${DURATION}s, concurrency $CONCURRENCY x $BATCH_SIZE clicks,"
echo "  max_batch_rows=$MAX_BATCH_ROWS max_inserts_in_flight=$MAX_INSERTS_IN_FLIGHT max_batch_delay_ms=$MAX_BATCH_DELAY_MS:"
echo "  $AGG_RATE clicks/s sustained (slowest 10s: $(field min_interval_clicks_per_s)), p50 $(field p50_ms) ms, p99 $(field p99_ms) ms;"
echo "  CPU (% of one core): aggregator $(field cpu_aggregator_pct), ClickHouse $(field cpu_clickhouse_pct), load generator $(field cpu_loadgen_pct), other processes $(field cpu_other_pct)"
echo "  CPU per click: aggregator $(field cpu_aggregator_us_per_click) µs, ClickHouse $(field cpu_clickhouse_us_per_click) µs;"
echo "  $(field inserts) INSERTs of $(field rows_per_insert) rows on average; rows merged per row inserted: $(field merged_rows_per_inserted_row)"
echo "  projected with both cores for aggregator + ClickHouse only: $(field projected_clicks_per_s) clicks/s"
echo "ceiling, same $STORED rows:"
echo "  clickhouse-client INSERT FORMAT Native: best $NATIVE_BEST rows/s, median $(median "${native_rates[@]}") rows/s"
echo "  curl HTTP INSERT FORMAT RowBinary:      best $HTTP_BEST rows/s, median $(median "${http_rates[@]}") rows/s"
awk -v a="$AGG_RATE" -v n="$NATIVE_BEST" -v h="$HTTP_BEST" 'BEGIN {
  printf "ratio aggregator / clickhouse-client ceiling: %.2f (target >= 0.5: %s)\n", a / n, (a / n >= 0.5 ? "MET" : "NOT MET")
  printf "ratio aggregator / HTTP RowBinary ceiling:    %.2f\n", a / h
  printf "target >= 150000 clicks/s sustained: %s\n", (a >= 150000 ? "MET" : "NOT MET")
}'
