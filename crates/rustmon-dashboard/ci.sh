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
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$target/debug/examples/dashboard_demo" --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
api=""
for _ in $(seq 1 600); do
  api="$(sed -n 's/^listening api=\([^ ]*\).*/\1/p' "$work/out")"
  [ -n "$api" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; echo "ci: dashboard_demo exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$api" ] || { echo "ci: dashboard_demo did not start" >&2; exit 1; }

python3 crates/rustmon-dashboard/tests/browser.py --base "http://$api" \
  --out "${RUSTMON_SCREENSHOTS:-docs/screenshots}"
