#!/usr/bin/env bash
# Load benchmark: hello-world servers under `wrk -t1 -c32` on 127.0.0.1, in one run.
#
#   crates/rustmon-tower/bench/wrk.sh            # axum: bare, rustmon, rustmon@0.1, rustmon-noexport, otel
#   SUITE=actix crates/rustmon-tower/bench/wrk.sh  # actix-web: bare, rustmon
#   DURATION=15 ROUNDS=3 NO_BUILD=1 ...            # knobs (defaults shown: 15 s, 3 rounds)
#   NICE=-20 ...   # run sink, servers and wrk at this nice level (root), to keep concurrent
#                  # builds on a shared machine from dominating the measurement
#
# Modes: (a) `bare`; (b) `rustmon`: the rustmon layer/middleware with rustmon's OTLP exporter
# listener sending every event to a local OTLP sink (examples/otlp_sink.rs, answers 200);
# `rustmon@0.1`: the same with head sampling at 10% (metrics still count every request);
# `rustmon-noexport`: the layer with a listener that drops batches (recording cost alone);
# (c) `otel`: tower-http TraceLayer + tracing-opentelemetry + the opentelemetry-otlp batch
# exporter sending to the same sink. MODES="bare rustmon" narrows the run.
# Rounds are interleaved (a b c a b c ...) and the median of each mode is reported, with its
# ratio to bare. Needs the Debian package `wrk`.
#
# Results, 2026-11-28T20:17Z, 2-core x86_64 VM, load average 2.5 (no builds running),
# NO_BUILD=1 DURATION=10 ROUNDS=3:
# | axum (wrk -t1 -c32 -d10s, median of 3) | req/s | vs bare | p99 | vs bare |
# |---|---:|---:|---:|---:|
# | bare | 72679 | 100.0% | 1880 us | +0.0% |
# | rustmon | 60128 | 82.7% | 2060 us | +9.6% |
# | rustmon@0.1 | 65592 | 90.2% | 2040 us | +8.5% |
# | rustmon-noexport | 58526 | 80.5% | 1990 us | +5.9% |
# | otel | 36529 | 50.3% | 3770 us | +100.5% |
# actix, SUITE=actix right after (load 2.4):
# | actix (wrk -t1 -c32 -d10s, median of 3) | req/s | vs bare | p99 | vs bare |
# |---|---:|---:|---:|---:|
# | bare | 49501 | 100.0% | 4160 us | +0.0% |
# | rustmon | 45277 | 91.5% | 4030 us | -3.1% |
# Target: rustmon >= 97% of bare with p99 within +10%: p99 met, throughput MISSED (82.7%);
# the peer (otel) reaches 50.3%; actix 91.5%. Rounds of one mode vary by about +-10%.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target-web}
SUITE=${SUITE:-axum}
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18080}
SINK_PORT=${SINK_PORT:-14318}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

case "$SUITE" in
  axum)
    MODES=${MODES:-"bare rustmon rustmon@0.1 rustmon-noexport otel"}
    [ -n "${NO_BUILD:-}" ] || cargo build -q --release -p rustmon-tower --features axum --example wrk_axum --example otlp_sink
    SERVER=$CARGO_TARGET_DIR/release/examples/wrk_axum ;;
  actix)
    MODES=${MODES:-"bare rustmon"}
    [ -n "${NO_BUILD:-}" ] || { cargo build -q --release -p rustmon-tower --example otlp_sink;
                                cargo build -q --release -p rustmon-actix --example wrk_actix; }
    SERVER=$CARGO_TARGET_DIR/release/examples/wrk_actix ;;
  *) echo "SUITE must be axum or actix" >&2; exit 2 ;;
esac
SINK=$CARGO_TARGET_DIR/release/examples/otlp_sink
RUN=(); [ -z "${NICE:-}" ] || RUN=(nice -n "$NICE")

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

"${RUN[@]}" "$SINK" 127.0.0.1:$SINK_PORT 2>/dev/null & PIDS+=($!)
wait_port $SINK_PORT

# to microseconds: 123.45us | 1.23ms | 1.01s
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

TMP=$(mktemp -d)
echo "# $(date -u +%FT%TZ) $(uname -m) $(nproc) cores, nice ${NICE:-0}; load before: $(uptime | sed 's/.*load average: //')"
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    rate=1; run=$mode
    case "$mode" in *@*) run=${mode%@*}; rate=${mode#*@} ;; esac
    SAMPLE_RATE=$rate OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT "${RUN[@]}" "$SERVER" "$run" 127.0.0.1:$PORT 2>/dev/null & pid=$!
    wait_port $PORT
    "${RUN[@]}" wrk -t1 -c32 -d2s http://127.0.0.1:$PORT/ >/dev/null          # warm-up
    out=$("${RUN[@]}" wrk -t1 -c32 -d"${DURATION}"s --latency http://127.0.0.1:$PORT/)
    kill -INT $pid; wait $pid 2>/dev/null || true
    rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
    p99=$(to_us "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    errs=$(awk '/Non-2xx|Socket errors/ { print }' <<<"$out")
    echo "$rps" >>"$TMP/$mode.rps"; echo "$p99" >>"$TMP/$mode.p99"
    printf 'round %s %-8s %10.0f req/s  p99 %8.0f us %s\n' "$round" "$mode" "$rps" "$p99" "$errs"
  done
done
echo "# load after: $(uptime | sed 's/.*load average: //')"
base_rps=$(median <"$TMP/bare.rps"); base_p99=$(median <"$TMP/bare.p99")
echo
echo "| $SUITE (wrk -t1 -c32 -d${DURATION}s, median of $ROUNDS) | req/s | vs bare | p99 | vs bare |"
echo "|---|---:|---:|---:|---:|"
for mode in $MODES; do
  rps=$(median <"$TMP/$mode.rps"); p99=$(median <"$TMP/$mode.p99")
  awk -v m="$mode" -v r="$rps" -v p="$p99" -v br="$base_rps" -v bp="$base_p99" \
    'BEGIN { printf "| %s | %.0f | %.1f%% | %.0f us | %+.1f%% |\n", m, r, 100 * r / br, p, 100 * (p - bp) / bp }'
done
rm -rf "$TMP"
