#!/usr/bin/env bash
# Build the Clickstitch edge worker (edge-worker/) for workerd / Cloudflare Workers
# with worker-build, using ONLY locally installed tools (no downloads from GitHub):
#
#   wasm-bindgen  cargo install wasm-bindgen-cli --version <Cargo.lock's wasm-bindgen>
#   worker-build  cargo install worker-build --version 0.8.7 --locked
#   esbuild       node_modules/.bin/esbuild   (npm ci)
#   wasm-opt      node_modules/.bin/wasm-opt  (npm ci, package `binaryen`)
#
# Install everything with scripts/install-edge-toolchain.sh. The build itself is
# `cargo xtask build-edge` (testkit/src/edge.rs, which the tests use too).
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
# stdout: just the bundle directory, for scripts/harnesses.
#
# Idempotent: re-running rebuilds incrementally; worker-build swaps the output
# directory in atomically and serialises concurrent builds with a lock file.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# Make `cargo install`ed binaries visible even in a non-login CI shell.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
exec cargo xtask build-edge "$@"
