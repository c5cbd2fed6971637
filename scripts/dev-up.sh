#!/usr/bin/env bash
# Brings up the whole Clickstitch stack locally and prints a short link to curl:
#   - ClickHouse (Debian's clickhouse-server), data under .local/clickhouse
#   - the aggregator on 127.0.0.1:${AGG_PORT:-8080}
#   - the edge worker's wasm under workerd on 127.0.0.1:${EDGE_PORT:-8787}
#     (direct delivery: clicks are batched straight to the aggregator)
#   - a demo brand, affiliate, campaign and link
# Ctrl-C stops everything (the aggregator flushes what it accepted first).
# Installs what is missing first (scripts/install-deps.sh), then runs
# `cargo xtask dev-up`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
export WRANGLER_SEND_METRICS=false

bash scripts/install-deps.sh

# Ports (CH_HTTP_PORT 18123, CH_TCP_PORT 19000, AGG_PORT 8080, EDGE_PORT 8787),
# EDGE_SECRET and OPERATOR_TOKEN come from the environment as before; the stack
# itself is `cargo xtask dev-up` (xtask/src/devup.rs, on the testkit harnesses).
exec cargo xtask dev-up
