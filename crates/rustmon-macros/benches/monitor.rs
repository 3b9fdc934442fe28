//! The cost of calling a `#[monitor]` function with 4 fields, against the same function without
//! the attribute, with the global monitor enabled and disabled.
//!
//! Run: `cargo bench -p rustmon-macros --bench monitor`
//!
//! Medians, `--warm-up-time 1 --measurement-time 5`; ratio against `plain` in the same run. The
//! machine was shared with other builds (load average about 3 on 2 cores).
//!
//! | date | machine | bench | median | ratio |
//! |---|---|---|---|---|
//! | 2026-11-28 | AMD EPYC, 2 vCPU, shared | `plain` | 1.4 ns | 1× |
//! | 2026-11-28 | AMD EPYC, 2 vCPU, shared | `monitored` | 275 ns | — (one rustmon event with 4 attributes; see the core's bench) |
//! | 2026-11-28 | AMD EPYC, 2 vCPU, shared | `monitored-disabled` | 6.8 ns | +5.4 ns per call (5.0 ns before the panic guard; within this machine's noise) |
//! | 2026-11-28 17:23 (core with pooled boxed records), load 5 | same | `plain` | 1.7 ns | 1× |
//! | 2026-11-28 17:23 | same | `monitored` | 121 ns | — |
//! | 2026-11-28 17:23 | same | `monitored-disabled` | 8.3 ns | +6.6 ns per call |

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rustmon_core::{Monitor, listener_fn};
use rustmon_macros::monitor;

#[inline(never)]
fn plain(x: u64) -> u64 {
    black_box(x) + 1
}

#[inline(never)]
#[monitor(fields(a = 1_i64, b = "x", c = true, d = 2.5_f64))]
fn monitored(x: u64) -> u64 {
    black_box(x) + 1
}

fn bench(c: &mut Criterion) {
    let monitor = Monitor::builder("bench")
        .listener(listener_fn(|batch| {
            black_box(batch.len());
        }))
        .build()
        .unwrap();
    monitor.install_global();

    let mut g = c.benchmark_group("monitor-fn-4-fields");
    g.bench_function("plain", |b| b.iter(|| plain(black_box(1))));
    g.bench_function("monitored", |b| b.iter(|| monitored(black_box(1))));
    monitor.disable();
    g.bench_function("monitored-disabled", |b| b.iter(|| monitored(black_box(1))));
    g.finish();
    monitor.shutdown(Duration::from_secs(5));
}

criterion_group!(benches, bench);
criterion_main!(benches);
