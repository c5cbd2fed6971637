#!/usr/bin/env bash
# Install everything scripts/build-edge.sh and the workerd test harness need.
# Guarded: every step is skipped when already satisfied, so a second run takes
# about a second.
#
#   - rust target wasm32-unknown-unknown           (rustup)
#   - worker-build 0.8.7                           (cargo install --locked)
#   - wasm-bindgen-cli = Cargo.lock's wasm-bindgen (cargo install)
#   - node_modules from package-lock.json          (npm ci): workerd, wrangler,
#                                                    esbuild, binaryen (wasm-opt)
#
# Prerequisites on a fresh Debian machine: rustup/cargo, Node >= 20.3 with npm,
# a C toolchain (build-essential) for cargo install.
set -euo pipefail

WORKER_BUILD_VERSION="0.8.7"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

log() { echo "install-edge-toolchain: $*" >&2; }
die() { echo "install-edge-toolchain: error: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found (install rustup first)"
command -v node >/dev/null || die "node not found (need Node >= 20.3)"
command -v npm >/dev/null || die "npm not found"

# 1. wasm32 target -------------------------------------------------------------
if command -v rustup >/dev/null; then
  if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "wasm32-unknown-unknown target: present"
  else
    log "adding rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
else
  log "rustup not found; assuming the wasm32-unknown-unknown target is available"
fi

# 2. worker-build ----------------------------------------------------------------
have_wb="$(worker-build --version 2>/dev/null | awk '{print $NF}' || true)"
if [[ "$have_wb" == "$WORKER_BUILD_VERSION" ]]; then
  log "worker-build $have_wb: present"
else
  log "installing worker-build $WORKER_BUILD_VERSION (found: ${have_wb:-none})"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --force
fi

# 3. wasm-bindgen-cli, exactly the library version in Cargo.lock -------------------
want_bindgen="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$ROOT/Cargo.lock")"
[[ -n "$want_bindgen" ]] || die "could not read the wasm-bindgen version from Cargo.lock"
have_bindgen="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [[ "$have_bindgen" == "$want_bindgen" ]]; then
  log "wasm-bindgen-cli $have_bindgen: present"
else
  log "installing wasm-bindgen-cli $want_bindgen (found: ${have_bindgen:-none})"
  # Not --locked: the CLI's own lock file pins crates that no longer build on
  # current toolchains for some releases; the version itself is exact.
  cargo install wasm-bindgen-cli --version "$want_bindgen" --force
fi

# 4. node_modules -------------------------------------------------------------------
# npm ci when node_modules is missing or older than package(-lock).json. npm
# writes node_modules/.package-lock.json on every install, so its mtime tells
# when node_modules was last synced.
stamp="$ROOT/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$ROOT/package-lock.json" -nt "$stamp" || "$ROOT/package.json" -nt "$stamp" ]]; then
  log "npm ci (node_modules missing or stale)"
  (cd "$ROOT" && npm ci --no-audit --no-fund)
else
  log "node_modules: up to date"
fi
for bin in workerd wrangler esbuild wasm-opt; do
  [[ -x "$ROOT/node_modules/.bin/$bin" ]] || die "node_modules/.bin/$bin missing after npm ci"
done

log "done: worker-build $(worker-build --version | awk '{print $NF}'), $(wasm-bindgen --version), workerd $("$ROOT/node_modules/.bin/workerd" --version | awk '{print $2}')"
