#!/usr/bin/env bash
# Extra CI for the collector (rustmon-server), called from .ci/run after `cargo test --workspace`:
# a short cargo-fuzz run of the OTLP decoding path (gzip, protobuf and JSON decoding, conversion
# to stored spans, the segment codec round trip). It must end without finding a crash.
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Time budget: FUZZ_SECONDS (default 60) of fuzzing, plus building
# cargo-fuzz once (~2-3 min on 2 cores) and the fuzz target (~2 min).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${FUZZ_SECONDS:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "ci.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

cd "$here"
corpus="fuzz/corpus/otlp_decode"
mkdir -p "$corpus"
cp fuzz/seeds/* "$corpus"/
export RUSTC_BOOTSTRAP=1
# A target dir outside the clone when CI gives one, so a warm machine does not rebuild it.
target_dir="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
target_dir="${target_dir:-fuzz/target}"
cargo fuzz build otlp_decode -O --target-dir "$target_dir"
cargo fuzz run otlp_decode -O --target-dir "$target_dir" "$corpus" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
echo "ci.sh: fuzzed otlp_decode for ${seconds}s without a crash"
