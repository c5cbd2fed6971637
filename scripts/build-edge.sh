#!/usr/bin/env bash
# Build the Clickstitch edge worker (edge-worker/) for workerd / Cloudflare Workers
# with worker-build, using ONLY locally installed tools (no downloads from GitHub):
#
#   wasm-bindgen  cargo install wasm-bindgen-cli --version <Cargo.lock's wasm-bindgen>
#   worker-build  cargo install worker-build --version 0.8.7 --locked
#   esbuild       node_modules/.bin/esbuild   (npm ci)
#   wasm-opt      node_modules/.bin/wasm-opt  (npm ci, package `binaryen`)
#
# Install everything with scripts/install-edge-toolchain.sh.
#
# Usage: scripts/build-edge.sh [--dev] [extra worker-build args...]
#   default profile is --release; --dev builds the dev profile (no wasm-opt).
#   EDGE_NO_OPT=1 skips wasm-opt.
#
# Output (worker-build 0.8.7 layout, relative to the repo root):
#   edge-worker/build/index.js          ES module entry (bundled JS glue, imports ./index_bg.wasm)
#   edge-worker/build/index_bg.wasm     the wasm module
#   edge-worker/build/worker/shim.mjs   back-compat alias re-exporting ../index.js
#                                       (what wrangler.toml `main` points at)
#
# Idempotent: re-running rebuilds incrementally; worker-build swaps the output
# directory in atomically and serialises concurrent builds with a lock file.
set -euo pipefail

REQUIRED_WORKER_BUILD="0.8.7"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CRATE_DIR="$ROOT/edge-worker"
OUT_DIR="$CRATE_DIR/build"

die() {
  echo "build-edge: error: $*" >&2
  echo "build-edge: hint: run scripts/install-edge-toolchain.sh" >&2
  exit 1
}

# Make `cargo install`ed binaries visible even in a non-login CI shell.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

profile="--release"
passthrough=()
for arg in "$@"; do
  case "$arg" in
    --dev) profile="--dev" ;;
    --release) profile="--release" ;;
    *) passthrough+=("$arg") ;;
  esac
done

# --- tool checks -------------------------------------------------------------
command -v cargo >/dev/null || die "cargo not found on PATH"
command -v node >/dev/null || die "node not found on PATH (esbuild/wasm-opt from npm need it)"

if command -v rustup >/dev/null; then
  rustup target list --installed | grep -qx wasm32-unknown-unknown \
    || die "rust target wasm32-unknown-unknown is not installed (rustup target add wasm32-unknown-unknown)"
fi

WORKER_BUILD="$(command -v worker-build || true)"
[[ -n "$WORKER_BUILD" ]] || die "worker-build not found (cargo install worker-build --version $REQUIRED_WORKER_BUILD --locked)"
wb_version="$("$WORKER_BUILD" --version 2>/dev/null | awk '{print $NF}')"
[[ "$wb_version" == "$REQUIRED_WORKER_BUILD" ]] \
  || die "worker-build $wb_version found at $WORKER_BUILD, need $REQUIRED_WORKER_BUILD"

# wasm-bindgen CLI must match the wasm-bindgen library version in Cargo.lock exactly.
want_bindgen="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$ROOT/Cargo.lock")"
[[ -n "$want_bindgen" ]] || die "could not read the wasm-bindgen version from $ROOT/Cargo.lock"
WASM_BINDGEN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen || true)}"
[[ -n "$WASM_BINDGEN" && -x "$(command -v "$WASM_BINDGEN" || true)" ]] \
  || die "wasm-bindgen not found (cargo install wasm-bindgen-cli --version $want_bindgen)"
WASM_BINDGEN="$(command -v "$WASM_BINDGEN")"
have_bindgen="$("$WASM_BINDGEN" --version | awk '{print $2}')"
[[ "$have_bindgen" == "$want_bindgen" ]] \
  || die "wasm-bindgen CLI $have_bindgen at $WASM_BINDGEN does not match wasm-bindgen $want_bindgen in Cargo.lock"

ESBUILD="${ESBUILD_BIN:-$ROOT/node_modules/.bin/esbuild}"
[[ -x "$ESBUILD" ]] || die "esbuild not found at $ESBUILD (npm ci)"
WASM_OPT="${WASM_OPT_BIN:-$ROOT/node_modules/.bin/wasm-opt}"
if [[ "$profile" == "--release" && -z "${EDGE_NO_OPT:-}" ]]; then
  [[ -x "$WASM_OPT" ]] || die "wasm-opt not found at $WASM_OPT (npm ci; or set EDGE_NO_OPT=1)"
fi

# worker-build falls back to DOWNLOADING a tool when a *_BIN path does not
# resolve, so only absolute, verified paths are exported.
export WASM_BINDGEN_BIN="$WASM_BINDGEN"
export ESBUILD_BIN="$ESBUILD"
export WASM_OPT_BIN="$WASM_OPT"

args=("$profile")
if [[ -n "${EDGE_NO_OPT:-}" ]]; then
  args+=(--no-opt)
fi
args+=("${passthrough[@]+"${passthrough[@]}"}")

echo "build-edge: worker-build $wb_version, wasm-bindgen $have_bindgen, esbuild $("$ESBUILD" --version), $("$WASM_OPT" --version 2>/dev/null || echo 'wasm-opt n/a')" >&2
echo "build-edge: (cd edge-worker && worker-build ${args[*]})" >&2
(cd "$CRATE_DIR" && "$WORKER_BUILD" "${args[@]}")

for f in index.js index_bg.wasm worker/shim.mjs; do
  [[ -s "$OUT_DIR/$f" ]] || die "worker-build finished but $OUT_DIR/$f is missing"
done

wasm_bytes="$(wc -c <"$OUT_DIR/index_bg.wasm" | tr -d ' ')"
echo "build-edge: bundle dir: $OUT_DIR" >&2
echo "build-edge:   entry  $OUT_DIR/index.js (alias: $OUT_DIR/worker/shim.mjs)" >&2
echo "build-edge:   wasm   $OUT_DIR/index_bg.wasm ($wasm_bytes bytes)" >&2
# stdout: just the bundle directory, for scripts/harnesses.
echo "$OUT_DIR"
