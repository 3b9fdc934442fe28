#!/usr/bin/env bash
# Browser test of the dashboard: headless Chromium (Debian's chromium + chromium-driver) against
# a collector with the dashboard mounted and demo data (the dashboard_demo example), on free
# ports of 127.0.0.1. Writes screenshots to $RUSTMON_SCREENSHOTS (default: docs/screenshots).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "ci: installing chromium and chromium-driver"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

cargo build -q -p rustmon-dashboard --example dashboard_demo
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d)"
pids=""
n=0
cleanup() {
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_demo [flags…]: starts the example, sets $api; its pid is added to $pids
start_demo() {
  n=$((n + 1))
  local out="$work/out.$n"
  "$target/debug/examples/dashboard_demo" "$@" >"$out" 2>"$out.err" &
  local p=$!
  pids="$pids $p"
  api=""
  for _ in $(seq 1 600); do
    api="$(sed -n 's/^listening api=\([^ ]*\).*/\1/p' "$out")"
    [ -n "$api" ] && return 0
    kill -0 "$p" 2>/dev/null || { cat "$out.err" >&2; echo "ci: dashboard_demo exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "ci: dashboard_demo did not start" >&2
  exit 1
}

shots="${RUSTMON_SCREENSHOTS:-docs/screenshots}"
start_demo --data-dir "$work/data"
python3 crates/rustmon-dashboard/tests/browser.py --base "http://$api" --out "$shots"
start_demo --empty --data-dir "$work/empty"
python3 crates/rustmon-dashboard/tests/browser.py --empty --base "http://$api" --out "$shots"
