#!/usr/bin/env bash
# Extra CI for rustmon-runtime, called from .ci/run after `cargo test --workspace`: the opt-in
# `jemalloc` feature, which the workspace build does not enable. Lints the crate with it, then runs
# the crate's tests with it: tests/jemalloc.rs (jemalloc as the global allocator),
# tests/jemalloc_tracking.rs (the tracking allocator around jemalloc), tests/heap.rs (jemalloc
# linked but not the allocator: nothing reported), the unit tests and the doctests.
#
# Time budget: building jemalloc's C sources (tikv-jemalloc-sys) once, ~215 s of CPU (2.5 min on 2
# cores at load 2-3, 7 min at load 5-8; see the crate's README), plus rebuilding this crate's
# targets with the feature.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo clippy -p rustmon-runtime --all-targets --features jemalloc -- -D warnings
cargo test -p rustmon-runtime --features jemalloc
echo "ci.sh: rustmon-runtime with the jemalloc feature passed"
