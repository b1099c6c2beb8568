#!/usr/bin/env bash
# wrangler.toml's build command: worker-build with locally installed wasm-bindgen and wasm-opt
# (worker-build would otherwise download them from outside the package registries).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${REFPORT_SKIP_BUILD:-}" = "1" ] && [ -f build/index.js ]; then
  exit 0  # the test harness builds once, then starts wrangler dev without rebuilding
fi
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
exec worker-build --release
