//! The cost of reading jemalloc's statistics (feature `jemalloc`), with jemalloc as this binary's
//! global allocator (the `runtime` bench keeps the tracking allocator around the system one, so
//! this is a binary of its own):
//! - `jemalloc/read, 1 arena`: `JemallocReader::read()` (advance the epoch, which merges the
//!   statistics of every arena in use, then six `mallctlbymib` reads) while only the main
//!   thread's arena is in use;
//! - `jemalloc/read, 8 arenas`: the same once 8 threads have allocated, so every automatic arena
//!   (4 per CPU, 8 on this 2-CPU machine) is in use: the cost grows with the arenas in use;
//! - `tick/heap`: one plugin tick with only `heap` on (the read plus the six gauges built).
//!
//! Times are CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), as in the `runtime`
//! bench, so other load on the shared machine inflates them less than wall time.
//!
//! Run: `cargo bench -p rustmon-runtime --features jemalloc --bench jemalloc`
//!
//! Results (2026-11-28 20:07 UTC, the shared 2-core development machine, `uptime` load average
//! 1.7-2.2; criterion medians of two runs; also in the crate's README, "jemalloc statistics"):
//!
//! | bench | time |
//! |---|---|
//! | `jemalloc/read, 1 arena` | 9.5-9.7 µs |
//! | `jemalloc/read, 8 arenas` | 66.8-70.0 µs |
//! | `tick/heap (jemalloc, 8 arenas)` | 70.5-71.6 µs |

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rustmon_runtime::jemalloc::{Jemalloc, JemallocReader};
use rustmon_runtime::{RuntimeConfig, RuntimeSampler};

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

/// Makes `n` threads allocate (and keep alive while the bench runs) so that jemalloc hands them
/// its arenas, one each, round robin.
fn threads_using_arenas(
    n: usize,
) -> (
    std::sync::mpsc::Sender<()>,
    Vec<std::thread::JoinHandle<()>>,
) {
    let (stop, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let handles = (0..n)
        .map(|t| {
            let rx = rx.clone();
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                let keep: Vec<Vec<u8>> = (0..1000).map(|i| vec![t as u8; 16 + i % 2048]).collect();
                ready_tx.send(()).expect("the bench waits");
                let _ = rx.lock().map(|rx| rx.recv());
                black_box(keep);
            })
        })
        .collect();
    for _ in 0..n {
        ready.recv().expect("a thread allocated");
    }
    (stop, handles)
}

fn read(c: &mut Criterion) {
    let reader = JemallocReader::new().expect("jemalloc statistics");
    let mut g = c.benchmark_group("jemalloc");
    g.sample_size(50);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("read, 1 arena", |b| {
        b.iter_custom(|iters| {
            common::cpu_timed(iters, || {
                black_box(reader.read().expect("a reading"));
            })
        })
    });
    let (stop, handles) = threads_using_arenas(8);
    g.bench_function("read, 8 arenas", |b| {
        b.iter_custom(|iters| {
            common::cpu_timed(iters, || {
                black_box(reader.read().expect("a reading"));
            })
        })
    });
    g.finish();

    let mut sampler = RuntimeSampler::new();
    let heap_only = RuntimeConfig {
        process: false,
        threads: false,
        tokio: false,
        ..RuntimeConfig::default()
    };
    let metrics = sampler.sample(&heap_only).len();
    assert_eq!(metrics, 6, "six jemalloc gauges");
    let mut g = c.benchmark_group("tick");
    g.sample_size(50);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("heap (jemalloc, 8 arenas)", |b| {
        b.iter_custom(|iters| {
            common::cpu_timed(iters, || {
                black_box(sampler.sample(&heap_only));
            })
        })
    });
    g.finish();
    drop(stop);
    for h in handles {
        let _ = h.join();
    }
}

criterion_group!(benches, read);
criterion_main!(benches);
