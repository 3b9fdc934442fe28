//! The cost of a `tracing` span (4 fields, entered once, closed) through the bridge, against the
//! same span on an empty registry and a rustmon event recorded directly.
//!
//! Run: `cargo bench -p rustmon-tracing --bench bridge`
//!
//! Medians, `--warm-up-time 1 --measurement-time 5`; ratio against `empty-registry` in the same run.
//! The machine was shared with other builds (load average about 3 on 2 cores): read ratios, not
//! absolute numbers.
//!
//! | date | machine | bench | median | ratio |
//! |---|---|---|---|---|
//! | 2026-11-28 17:10 | AMD EPYC, 2 vCPU, shared | `empty-registry` | 89 ns | 1.0× |
//! | 2026-11-28 17:10 | AMD EPYC, 2 vCPU, shared | `rustmon-layer` | 652 ns | 7.3× |
//! | 2026-11-28 17:10 | AMD EPYC, 2 vCPU, shared | `rustmon-layer-disabled` | 84 ns | 0.94× |
//! | 2026-11-28 17:10 | AMD EPYC, 2 vCPU, shared | `rustmon-event-direct` | 263 ns | 3.0× |
//! | 2026-11-28 17:23 (core with pooled boxed records) | same, load 5 | `empty-registry` | 140 ns | 1.0× |
//! | 2026-11-28 17:23 | same | `rustmon-layer` | 766 ns | 5.5× |
//! | 2026-11-28 17:23 | same | `rustmon-layer-disabled` | 106 ns | 0.76× |
//! | 2026-11-28 17:23 | same | `rustmon-event-direct` | 200 ns | 1.4× |
//!
//! The disabled layer measuring *below* the bare registry shows the noise: it costs nothing
//! measurable (and allocates nothing, see `tests/disabled_allocations.rs`).
//! The bridge costs the registry's span plus a rustmon event plus ~300 ns of its own (profiled:
//! moving the event record into the span's extensions and out to the queue, the string field's
//! allocation, the extension lock). Disabled, it costs nothing measurable.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rustmon_core::{Kind, Monitor, listener_fn};
use rustmon_tracing::RustmonLayer;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt as _;

fn span_once() {
    tracing::info_span!("op", a = 1_i64, b = "x", c = true, d = 2.5_f64).in_scope(|| black_box(1));
}

fn bench(c: &mut Criterion) {
    let monitor = Monitor::builder("bench")
        .listener(listener_fn(|batch| {
            black_box(batch.len());
        }))
        .build()
        .unwrap();
    let off = Monitor::builder("bench-off")
        .enabled(false)
        .build()
        .unwrap();

    let mut g = c.benchmark_group("span-4-fields");
    let empty = Dispatch::new(tracing_subscriber::registry());
    g.bench_function("empty-registry", |b| {
        tracing::dispatcher::with_default(&empty, || b.iter(span_once))
    });
    let bridge = Dispatch::new(
        tracing_subscriber::registry().with(RustmonLayer::with_monitor(monitor.clone())),
    );
    g.bench_function("rustmon-layer", |b| {
        tracing::dispatcher::with_default(&bridge, || b.iter(span_once))
    });
    let disabled =
        Dispatch::new(tracing_subscriber::registry().with(RustmonLayer::with_monitor(off.clone())));
    g.bench_function("rustmon-layer-disabled", |b| {
        tracing::dispatcher::with_default(&disabled, || b.iter(span_once))
    });
    g.bench_function("rustmon-event-direct", |b| {
        b.iter(|| {
            let mut e = monitor.start_event(Kind::Custom, "op");
            e.set("a", 1_i64)
                .set("b", "x")
                .set("c", true)
                .set("d", 2.5_f64);
            let _g = e.enter();
            black_box(1)
        })
    });
    g.finish();
    monitor.shutdown(Duration::from_secs(5));
}

criterion_group!(benches, bench);
criterion_main!(benches);
