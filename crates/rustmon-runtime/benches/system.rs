//! The baseline for the `runtime` bench: the same workload on the plain system allocator (this
//! binary installs no global allocator). Run both with `cargo bench -p rustmon-runtime`; results
//! are in the `runtime` bench's header and the README.

mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn alloc(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc");
    g.throughput(Throughput::Elements(common::CALLS_PER_UNIT));
    g.sample_size(30);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("system", |b| b.iter_custom(common::two_threads));
    g.finish();
}

criterion_group!(benches, alloc);
criterion_main!(benches);
