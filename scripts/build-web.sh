#!/usr/bin/env bash
# Builds the dashboard, the embedded portal and the invite page from web/ into public/ (served
# as Workers Static Assets): type-check with tsc, bundle + minify with esbuild (both pinned in
# package-lock.json). public/ is generated; never edit it by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
if [ ! -x node_modules/.bin/esbuild ] || [ ! -x node_modules/.bin/tsc ]; then
  npm ci --no-audit --no-fund
fi
tsc --noEmit -p web/tsconfig.json
node web/build.mjs
# The OpenAPI document is a static asset too (kept out of the wasm): GET /api/v1/openapi.json.
mkdir -p public/api/v1
cp openapi/openapi.json public/api/v1/openapi.json
