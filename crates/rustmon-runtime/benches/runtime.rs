//! The tracking allocator's cost on an allocation-heavy workload, and the cost of one sampling
//! tick. One binary can install one global allocator, so every allocator variant runs through the
//! same `TrackingAllocator` switched at run time:
//! - `off`: forwards to the system allocator at once (one relaxed load per call): the baseline;
//! - `counting`: exact per-thread counters (the default mode);
//! - `sampling`: counters plus sampled profiling at the default rate (one sample per 512 KiB).
//!
//! `system` (the `system` bench binary, no global allocator) is the plain system allocator.
//!
//! Workload (`benches/common`): 2 threads, each running `unit()` (small `Vec`/`String`/`Box` allocations, freed at
//! once) `iters` times at once; the time reported is the mean CPU time per thread
//! (`CLOCK_THREAD_CPUTIME_ID`), so other load on the shared machine does not inflate it the way it
//! inflates wall time. The tick benches report CPU time too (user + system, so `/proc` reads count).
//!
//! Run: `cargo bench -p rustmon-runtime` (both binaries)
//!
//! Results (2026-11-28 18:02 UTC, the shared 2-core development machine, `uptime` load average
//! 15.2 / 14.6 / 12.1 at the start; CPU time, so the load inflates it less than wall time would;
//! first of three back-to-back runs, the one with the narrowest intervals; medians):
//!
//! | bench | time | vs `system` | per allocation vs `system` |
//! |---|---|---|---|
//! | `alloc/system` (per unit: 8 allocations, 6 frees) | 169.3 ns | — | — |
//! | `alloc/off` | 174.0 ns | +2.8% | +0.6 ns |
//! | `alloc/counting` | 179.1 ns | +5.8% | +1.2 ns (target ≤ 5 ns) |
//! | `alloc/sampling` (default 512 KiB) | 183.4 ns | +8.4% (+2.4% vs counting) | +1.8 ns (target ≤ 10%) |
//! | `tick/process+tokio` (2 workers) | 10.1 µs | | target ≤ 50 µs |
//! | `tick/all` (+ threads by name, heap counters; 30 metrics) | 38.4 µs | | |
//! | `measure/bare` (10 polls) | 3.2 ns | | |
//! | `measure/measured` (10 polls + one waker allocation) | 339 ns | | ~31 ns per poll |
//!
//! Medians of the three runs (two had bursts of load): system 174.5 ns, off 179.9 ns, counting
//! 185.4 ns (+1.4 ns per allocation), sampling 187.6 ns (+7.5%); ticks 10.1 µs and 38.4 µs.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustmon_runtime::heap::{self, HeapMode};
use rustmon_runtime::{RuntimeConfig, RuntimeSampler, TrackingAllocator};

#[global_allocator]
static GLOBAL: TrackingAllocator = TrackingAllocator::system();

/// Allocator calls per `unit()`, counted exactly.
fn calls_per_unit() -> u64 {
    heap::set_mode(HeapMode::Counting);
    let before = heap::thread_stats();
    for i in 0..1000 {
        common::unit(i);
    }
    let after = heap::thread_stats();
    (after.allocated_objects - before.allocated_objects) / 1000
}

fn alloc(c: &mut Criterion) {
    let per_unit = calls_per_unit();
    assert_eq!(per_unit, common::CALLS_PER_UNIT, "allocator calls per unit");
    let mut g = c.benchmark_group("alloc");
    g.throughput(Throughput::Elements(per_unit));
    g.sample_size(30);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (name, mode) in [
        ("off", HeapMode::Off),
        ("counting", HeapMode::Counting),
        ("sampling", HeapMode::Sampling),
    ] {
        heap::set_sample_bytes(heap::DEFAULT_SAMPLE_BYTES);
        g.bench_function(name, |b| {
            heap::set_mode(mode);
            b.iter_custom(common::two_threads);
        });
    }
    heap::set_mode(HeapMode::Counting);
    g.finish();
    let s = heap::sampler_stats();
    eprintln!(
        "samples taken: {}, sites: {}, tracked: {}",
        s.samples, s.sites, s.tracked
    );
}

fn tick(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    let mut sampler = RuntimeSampler::new();
    sampler.add_tokio_runtime("app", rt.handle().clone());
    let process_and_tokio = RuntimeConfig {
        threads: false,
        heap: false,
        ..RuntimeConfig::default()
    };
    let mut g = c.benchmark_group("tick");
    g.sample_size(50);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("process+tokio", |b| {
        b.iter_custom(|iters| {
            common::cpu_timed(iters, || {
                black_box(sampler.sample(&process_and_tokio));
            })
        })
    });
    g.bench_function("all", |b| {
        b.iter_custom(|iters| {
            common::cpu_timed(iters, || {
                black_box(sampler.sample(&RuntimeConfig::default()));
            })
        })
    });
    g.finish();
    let n = sampler.sample(&RuntimeConfig::default()).len();
    eprintln!("metrics per full tick: {n}");
}

/// The per-request wrapper's cost per poll: a future that is pending 9 times then ready, bare
/// and measured (10 polls each).
fn measure(c: &mut Criterion) {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use rustmon_runtime::MeasureExt;

    struct Countdown(u32);
    impl Future for Countdown {
        type Output = u32;
        fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            if self.0 == 0 {
                Poll::Ready(7)
            } else {
                self.0 = black_box(self.0 - 1);
                Poll::Pending
            }
        }
    }
    fn drive<F: Future>(f: F) -> F::Output {
        let mut cx = Context::from_waker(Waker::noop());
        let mut f = pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
    heap::set_mode(HeapMode::Counting);
    let mut g = c.benchmark_group("measure");
    g.throughput(Throughput::Elements(10));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            common::cpu_timed(iters, || {
                black_box(drive(Countdown(black_box(9))));
            })
        })
    });
    g.bench_function("measured", |b| {
        b.iter_custom(|iters| {
            common::cpu_timed(iters, || {
                black_box(drive(Countdown(black_box(9)).measured()));
            })
        })
    });
    g.finish();
}

criterion_group!(benches, alloc, tick, measure);
criterion_main!(benches);
