#!/usr/bin/env bash
# Brings up the whole Clickstitch stack locally and prints a short link to curl:
#   - ClickHouse (Debian's clickhouse-server), data under .local/clickhouse
#   - the aggregator on 127.0.0.1:${AGG_PORT:-8080}
#   - the edge worker's wasm under workerd on 127.0.0.1:${EDGE_PORT:-8787}
#     (direct delivery: clicks are batched straight to the aggregator)
#   - a demo brand, affiliate, campaign and link
# Ctrl-C stops everything (the aggregator flushes what it accepted first).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
export WRANGLER_SEND_METRICS=false

CH_HTTP_PORT="${CH_HTTP_PORT:-18123}"
CH_TCP_PORT="${CH_TCP_PORT:-19000}"
AGG_PORT="${AGG_PORT:-8080}"
EDGE_PORT="${EDGE_PORT:-8787}"
EDGE_SECRET="${EDGE_SECRET:-dev-edge-secret-$(hostname)-local}"
OPERATOR_TOKEN="${OPERATOR_TOKEN:-dev-operator-token-$(hostname)-local}"
LOCAL="$ROOT/.local"
log() { echo "dev-up: $*" >&2; }
die() { echo "dev-up: error: $*" >&2; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$CH_HTTP_PORT" "$CH_TCP_PORT" "$AGG_PORT" "$EDGE_PORT"; do
  port_free "$p" || die "port $p is in use (set CH_HTTP_PORT / CH_TCP_PORT / AGG_PORT / EDGE_PORT)"
done

bash scripts/install-deps.sh

pids=()
cleanup() {
  trap - EXIT INT TERM
  log "stopping…"
  # Reverse order: edge first, then the aggregator (flushes), then ClickHouse.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  log "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

source "$ROOT/scripts/lib/clickhouse.sh"

# --- ClickHouse ------------------------------------------------------------------
CH="$LOCAL/clickhouse"
log "starting ClickHouse on :$CH_HTTP_PORT, data in $CH/data"
ch_start "$CH" "$CH_HTTP_PORT" "$CH_TCP_PORT"
pids+=("$CH_PID")

# --- aggregator ------------------------------------------------------------------
log "building the aggregator"
cargo build -q -p clickstitch-aggregator --bin clickstitch-aggregator
export CLICKSTITCH_SERVER__PORT="$AGG_PORT"
export CLICKSTITCH_CLICKHOUSE__URL="http://127.0.0.1:$CH_HTTP_PORT"
export CLICKSTITCH_AUTH__EDGE_SECRET="$EDGE_SECRET"
export CLICKSTITCH_AUTH__OPERATOR_TOKEN="$OPERATOR_TOKEN"
export CLICKSTITCH_LOG__FORMAT="${CLICKSTITCH_LOG__FORMAT:-pretty}"
mkdir -p "$LOCAL/logs"
"$ROOT/target/debug/clickstitch-aggregator" >"$LOCAL/logs/aggregator.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$AGG_PORT/health" aggregator
log "aggregator on http://127.0.0.1:$AGG_PORT (log: .local/logs/aggregator.log)"

# --- edge worker under workerd ------------------------------------------------------
log "building the edge worker (wasm)"
BUNDLE="$(bash scripts/build-edge.sh 2>"$LOCAL/logs/build-edge.log" | tail -1)" || die "edge build failed, see .local/logs/build-edge.log"
W="$LOCAL/workerd"
rm -rf "$W" && mkdir -p "$W/modules"
cp "$BUNDLE/index.js" "$BUNDLE/index_bg.wasm" "$W/modules/"
COMPAT_DATE="$(sed -n 's/^compatibility_date *= *"\([0-9-]*\)".*/\1/p' wrangler.toml | head -1)"
cat >"$W/config.capnp" <<CAPNP
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .edge),
    (name = "outbound", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:$EDGE_PORT", service = "main") ],
);
const edge :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "modules/index.js"),
    (name = "index_bg.wasm", wasm = embed "modules/index_bg.wasm"),
  ],
  compatibilityDate = "$COMPAT_DATE",
  bindings = [
    (name = "AGGREGATOR_URL", text = "http://127.0.0.1:$AGG_PORT"),
    (name = "CLICK_DELIVERY", text = "direct"),
    (name = "FLUSH_MAX_CLICKS", text = "500"),
    (name = "FLUSH_MAX_MS", text = "0"),
    (name = "LINK_CACHE_TTL_SECONDS", text = "60"),
    (name = "EDGE_SECRET", text = "$EDGE_SECRET"),
    (name = "IDENTITY_SALT", text = "dev-identity-salt"),
  ],
  globalOutbound = "outbound",
);
CAPNP
WORKERD="$ROOT/node_modules/@cloudflare/workerd-linux-64/bin/workerd"
[[ -x "$WORKERD" ]] || WORKERD="$ROOT/node_modules/.bin/workerd"
"$WORKERD" serve "$W/config.capnp" >"$LOCAL/logs/workerd.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$EDGE_PORT/health" "edge worker (workerd)"
log "edge worker on http://127.0.0.1:$EDGE_PORT (log: .local/logs/workerd.log)"

# --- demo data ---------------------------------------------------------------------
CODE="$(python3 - "$AGG_PORT" "$OPERATOR_TOKEN" <<'PY'
import json, sys, urllib.request
port, token = sys.argv[1], sys.argv[2]
def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/v1/{path}", data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"}, method="POST")
    return json.load(urllib.request.urlopen(req))
brand = post("brands", {"name": "Demo Casino", "jurisdiction": {"name": "MGA", "restricted_countries": ["US", "FR"]}})
aff = post("affiliates", {"name": "Demo Affiliate"})
camp = post("campaigns", {"brand_id": brand["brand_id"], "name": "Welcome bonus"})
link = post("links", {"brand_id": brand["brand_id"], "affiliate_id": aff["affiliate_id"], "campaign_id": camp["campaign_id"],
    "destination_template": "https://demo-casino.example/welcome?cid={click_id}&aff={affiliate_id}&s1={sub1}&geo={country}"})
print(link["code"])
PY
)"

UA='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36'
cat <<TXT

  Clickstitch is up.

  A player's click (302 to the brand, with a click id):
    curl -i -A '$UA' -H 'CF-IPCountry: DE' 'http://127.0.0.1:$EDGE_PORT/$CODE?sub1=newsletter'

  From a restricted country (451):
    curl -i -A '$UA' -H 'CF-IPCountry: US' 'http://127.0.0.1:$EDGE_PORT/$CODE'

  As a bot (curl's own user agent: 302 without a click id):
    curl -i -H 'CF-IPCountry: DE' 'http://127.0.0.1:$EDGE_PORT/$CODE'

  Without a country (unknown countries fail closed: 451):
    curl -i -A '$UA' 'http://127.0.0.1:$EDGE_PORT/$CODE'

  The stored clicks (about a second later):
    clickhouse-client --port $CH_TCP_PORT --query "SELECT click_id, country, sub1, is_bot, bot_reason FROM clickstitch.clicks_unique ORDER BY clicked_at_ms"

  Admin API: http://127.0.0.1:$AGG_PORT/admin/v1/...  (Authorization: Bearer $OPERATOR_TOKEN)
  Ctrl-C stops everything.
TXT
wait -n "${pids[@]}" || true
log "a component exited; see .local/logs"
