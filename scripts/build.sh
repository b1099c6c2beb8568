#!/usr/bin/env bash
# wrangler.toml's build command: worker-build with locally installed wasm-bindgen and wasm-opt
# (worker-build would otherwise download them from outside the package registries).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${REFPORT_SKIP_BUILD:-}" = "1" ] && [ -f build/index.js ]; then
  exit 0  # the test harness builds once, then starts wrangler dev without rebuilding
fi
# cargo, and node from the npm `node` package (scripts/wasm-order.mjs) when no other is on PATH.
export PATH="$HOME/.cargo/bin:$PATH:$PWD/node_modules/.bin"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
worker-build --release
# Size/speed pass on the wasm-bindgen output: the same feature set worker-build enables, minus
# the names section it keeps (panic messages still carry their text via console_error_panic_hook).
# -Os compresses better than -Oz here (the shipped size is gzip's; ~0.3% smaller) and runs faster;
# --generate-global-effects first lets it use each function's computed side effects.
# --low-memory-unused lets wasm-opt fold constant offsets into loads and stores (~1.7 KB of gzip):
# it assumes nothing lives below address 1024, true of Rust's layout (data from 1 MiB, the 1 MiB
# stack below it growing down, so only a stack about to overflow reaches those bytes).
# --one-caller-inline-max-function-size=20: a function with one caller is inlined only when small
# (any limit from ~8 to ~30 gives the same gzip within 0.1%), not at any size (the default). The
# raw wasm grows ~2%, but its gzip shrinks ~9% (~35 KB): merging every single-caller function
# into its caller made huge functions, which gzip compresses much worse than the separate pieces
# (likely because merged code gets high, caller-specific local indices, so alike code no longer
# looks alike). --converge repeats the passes while the module still shrinks (~0.3 KB of gzip).
FEATURES=(--enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory
  --enable-multivalue --enable-reference-types --enable-exception-handling)
"$WASM_OPT_BIN" build/index_bg.wasm -o build/index_bg.wasm --generate-global-effects -Os --low-memory-unused \
  --one-caller-inline-max-function-size=20 --converge \
  --strip-debug --strip-producers "${FEATURES[@]}"
# Layout for gzip: alike functions next to each other (scripts/wasm-order.mjs names them in that
# order, wasm-opt lays them out by name, then drops the names): ~5% smaller gzip, same code.
node scripts/wasm-order.mjs build/index_bg.wasm build/index_bg.ordered.wasm
"$WASM_OPT_BIN" build/index_bg.ordered.wasm -o build/index_bg.wasm --reorder-functions-by-name \
  --strip-debug --strip-producers "${FEATURES[@]}"
rm -f build/index_bg.ordered.wasm
