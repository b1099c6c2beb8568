#!/usr/bin/env bash
# Refport benchmark: `make bench` (builds release first, then runs this), or directly:
#   bash bench/run.sh            full run: BENCH_SECONDS (10) per target per round, BENCH_ROUNDS (3)
#   bash bench/run.sh --smoke    2-second single round, 200-partner payout run: checks that all works
# Other knobs: BENCH_WARMUP (2 s per target), BENCH_THREADS (2), BENCH_CONNECTIONS (16),
# BENCH_TARGETS (comma list of L,W,W+assets,J,J+click,redirect,sale,sale-replay), BENCH_D1_PROBE=0 (skip
# the D1 probe), BENCH_PORTS (8900-8999), BENCH_KEEP=1 (keep the work dir under /tmp),
# BENCH_PIN=1:0 (taskset: every `wrangler dev` on CPU 1, wrk on CPU 0; steadier A/B comparisons),
# BENCH_TMP (/tmp: where the work dir, and so every local D1 and KV, lives; /dev/shm keeps them in memory).
# Payout run: BENCH_PAYOUT=0 (skip), BENCH_PAYOUT_PARTNERS (10000; smoke 200),
# BENCH_PAYOUT_MAX_CRONS (96), BENCH_STRIPE_TIMEOUT (2), BENCH_WORKERS_PLAN (free|paid).
# Prints the table and writes it to bench/results/latest.md (a smoke run: smoke.md), + .json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"

SMOKE=()
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=(--smoke) ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --smoke)" >&2; exit 2 ;;
  esac
done

# The load generator: wrk from Debian, installed when missing.
if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk (Debian package)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq wrk >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq wrk >/dev/null; }
fi

# The release build (make bench has just run `make build`; a direct run builds when missing).
if [ ! -f build/index.js ] || [ ! -f build/index_bg.wasm ]; then
  make build
fi
[ -x node_modules/.bin/wrangler ] || make setup
# Baseline W (a constant 302 from Rust/wasm): built with the same toolchain as Refport, when it is
# among the targets (it is by default). Cargo rebuilds only what changed.
if [ -z "${BENCH_TARGETS:-}" ] || [[ ",$BENCH_TARGETS," == *",W"[,+]* ]]; then
  echo "bench: building baseline W (bench/baseline-w)" >&2
  (cd bench/baseline-w && CARGO_TARGET_DIR="$ROOT/target/baseline-w" \
    WASM_BINDGEN_BIN="$(command -v wasm-bindgen)" WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt" \
    worker-build --release >"$ROOT/target/baseline-w.log" 2>&1) \
    || { echo "bench: baseline W failed to build, see target/baseline-w.log" >&2; exit 1; }
fi
[ -f .dev.vars ] || cp .dev.vars.example .dev.vars

PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/refport-bench.XXXXXX")
DRIVER=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  # The driver stops what it started; this catches anything left if it was killed outright.
  if [ -n "$DRIVER" ] && kill -0 "$DRIVER" 2>/dev/null; then
    kill -TERM "$DRIVER" 2>/dev/null || true
    wait "$DRIVER" 2>/dev/null || true
  fi
  if [ -f "$WORK/pgids" ]; then
    while read -r pg; do
      [ -n "$pg" ] && kill -0 -- "-$pg" 2>/dev/null && kill -TERM -- "-$pg" 2>/dev/null || true
    done < "$WORK/pgids"
    sleep 1
    while read -r pg; do
      [ -n "$pg" ] && kill -0 -- "-$pg" 2>/dev/null && kill -KILL -- "-$pg" 2>/dev/null || true
    done < "$WORK/pgids"
  fi
  if [ "$rc" -ne 0 ] || [ "${BENCH_KEEP:-}" = "1" ]; then
    echo "bench: logs and local state kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

"$PY" bench/driver.py --work "$WORK" "${SMOKE[@]}" &
DRIVER=$!
wait "$DRIVER"
