#!/usr/bin/env bash
# Installs everything Clickstitch's tests and local stack need, skipping what
# is already there (a second run takes seconds):
#   - Debian packages: clickhouse-server + clickhouse-client (18.16), wrk,
#     hyperfine, build-essential
#   - PyPI chdb (embedded current ClickHouse, for the SQL compatibility check)
#   - the edge toolchain: wasm32 target, worker-build, wasm-bindgen-cli and
#     the pinned npm tools (scripts/install-edge-toolchain.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "install-deps: $*" >&2; }

SUDO=""
if [[ $EUID -ne 0 ]]; then SUDO="sudo"; fi

need_apt=()
command -v clickhouse-server >/dev/null 2>&1 || [[ -x /usr/sbin/clickhouse-server ]] || need_apt+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || need_apt+=(clickhouse-client)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v hyperfine >/dev/null 2>&1 || need_apt+=(hyperfine)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
if ((${#need_apt[@]})); then
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # The package starts a system server on the default ports; ours run on
  # free ports in temp dirs, so the system one is not needed.
  $SUDO service clickhouse-server stop >/dev/null 2>&1 || true
else
  log "apt packages: present"
fi

if python3 -c 'import chdb' >/dev/null 2>&1; then
  log "chdb: present"
else
  log "pip install chdb"
  python3 -m pip install --quiet --disable-pip-version-check chdb
fi

bash "$ROOT/scripts/install-edge-toolchain.sh"
