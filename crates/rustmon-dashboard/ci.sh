#!/usr/bin/env bash
# Browser test of the dashboard: headless Chromium (Debian's chromium + chromium-driver) against
# a running `rustmon demo` (the collector with the dashboard plus the sample system: demo-shop and
# demo-inventory, live traffic, agents polling the central configuration), then against
# `rustmon serve` on an empty data dir; all on free ports of 127.0.0.1. Writes screenshots to
# $RUSTMON_SCREENSHOTS (default: docs/screenshots; a temporary dir when CI=true, so that CI does
# not modify tracked files). RUSTMON_DEMO_WARMUP=seconds lets the demo run that long first and
# shows the last 15 minutes, so that the charts have history (how docs/screenshots are taken:
# RUSTMON_DEMO_WARMUP=720).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "ci: installing chromium and chromium-driver"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

cargo build -q -p rustmon-server --bin rustmon
rustmon="${CARGO_TARGET_DIR:-target}/debug/rustmon"
work="$(mktemp -d)"
pids=""
n=0
cleanup() {
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_rustmon demo|serve: starts it on free ports with a data dir of its own, sets $api and
# $otlp_http once it prints `listening api=… otlp_http=… otlp_grpc=…`; its pid is $p (and in $pids)
start_rustmon() {
  n=$((n + 1))
  local out="$work/out.$n"
  "$rustmon" "$1" --listen 127.0.0.1:0 --otlp-http 127.0.0.1:0 --otlp-grpc 127.0.0.1:0 \
    --data-dir "$work/data.$n" >"$out" 2>"$out.err" &
  p=$!
  pids="$pids $p"
  for _ in $(seq 1 600); do
    if grep -q '^listening api=' "$out"; then
      api="$(sed -n 's/^listening api=\([^ ]*\).*/\1/p' "$out")"
      otlp_http="$(sed -n 's/^listening .*otlp_http=\([^ ]*\).*/\1/p' "$out")"
      return 0
    fi
    kill -0 "$p" 2>/dev/null || { cat "$out.err" >&2; echo "ci: rustmon $1 exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "ci: rustmon $1 did not start" >&2
  exit 1
}

if [ -n "${RUSTMON_SCREENSHOTS:-}" ]; then shots="$RUSTMON_SCREENSHOTS"
elif [ "${CI:-}" = true ]; then shots="$work/screenshots"
else shots="docs/screenshots"; fi

start_rustmon demo
# the demo's agents export every few seconds: wait until both services are listed
python3 - "http://$api/api/v1/services" <<'PY'
import json, sys, time, urllib.request
for _ in range(300):
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        names = {s["service"] for s in json.load(r)["services"]}
    if {"demo-shop", "demo-inventory"} <= names:
        sys.exit(0)
    time.sleep(0.2)
sys.exit(f"ci: the demo services did not appear: {sorted(names)}")
PY
range=()
if [ "${RUSTMON_DEMO_WARMUP:-0}" -gt 0 ]; then
  # for the docs screenshots: charts with some history (the last 15 minutes)
  echo "ci: letting the demo run ${RUSTMON_DEMO_WARMUP} s"
  sleep "$RUSTMON_DEMO_WARMUP"
  range=(--range 15m)
fi
python3 crates/rustmon-dashboard/tests/browser.py --base "http://$api" --out "$shots" "${range[@]}"
kill -TERM "$p" && wait "$p" || true

start_rustmon serve
python3 crates/rustmon-dashboard/tests/browser.py --empty --base "http://$api" --otlp "http://$otlp_http" --out "$shots"
