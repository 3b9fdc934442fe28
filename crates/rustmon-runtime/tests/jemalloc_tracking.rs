//! The tracking allocator around jemalloc (feature `jemalloc`):
//! `TrackingAllocator::new(Jemalloc)` as this binary's global allocator. jemalloc is still
//! detected behind the wrapper, the exact counters and jemalloc's statistics both see the same
//! allocation, heap profiles still work, and the plugin exports both sets of heap metrics.
//!
//! Runs without the test harness (`harness = false`) so no other test allocates or frees while
//! the counters are compared. Run:
//! `cargo test -p rustmon-runtime --features jemalloc --test jemalloc_tracking`.

use std::hint::black_box;

use rustmon_core::Monitor;
use rustmon_core::metrics::{MetricData, Number};
use rustmon_runtime::heap::{self, HeapMode};
use rustmon_runtime::jemalloc::{self, Jemalloc, JemallocReader};
use rustmon_runtime::profile::{Symbols, heap_profile};
use rustmon_runtime::{ProfileOrder, RuntimePlugin, RuntimeSampler, TrackingAllocator};
use rustmon_test::{Capture, WAIT};

#[global_allocator]
static GLOBAL: TrackingAllocator<Jemalloc> = TrackingAllocator::new(Jemalloc);

const BIG: u64 = 64 << 20;

fn main() {
    let tests: &[(&str, fn())] = &[
        (
            "jemalloc_is_detected_behind_the_tracking_allocator",
            jemalloc_is_detected_behind_the_tracking_allocator,
        ),
        (
            "counters_and_jemalloc_both_see_a_64_mib_allocation",
            counters_and_jemalloc_both_see_a_64_mib_allocation,
        ),
        (
            "profiles_sample_allocations_served_by_jemalloc",
            profiles_sample_allocations_served_by_jemalloc,
        ),
        (
            "the_plugin_exports_both_sets_of_heap_metrics",
            the_plugin_exports_both_sets_of_heap_metrics,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        print!("test {name} ... ");
        test();
        println!("ok");
    }
}

fn jemalloc_is_detected_behind_the_tracking_allocator() {
    assert!(jemalloc::is_global_allocator());
    assert!(heap::is_installed());
    let missing = RuntimeSampler::new().unavailable();
    assert!(
        !missing
            .iter()
            .any(|(what, _)| what.starts_with("rustmon.heap")),
        "{missing:?}"
    );
}

fn counters_and_jemalloc_both_see_a_64_mib_allocation() {
    heap::set_mode(HeapMode::Counting);
    let reader = JemallocReader::new().unwrap();
    let counted = heap::stats();
    let before = reader.read().unwrap();
    let big = black_box(vec![1_u8; BIG as usize]);
    let counted_with = heap::stats();
    let with = reader.read().unwrap();
    // Exact: nothing else allocates in this binary meanwhile.
    assert_eq!(counted_with.live_bytes() - counted.live_bytes(), BIG);
    assert!(
        with.allocated >= before.allocated + BIG,
        "{before:?} -> {with:?}"
    );
    // Less any free pages jemalloc purged meanwhile (at most those beyond its active pages).
    assert!(
        with.resident >= before.resident + BIG - (before.resident - before.active),
        "{before:?} -> {with:?}"
    );
    drop(big);
    assert_eq!(heap::stats().live_bytes(), counted.live_bytes());
}

#[inline(never)]
fn jemalloc_served_site(keep: &mut Vec<Vec<u8>>) {
    for _ in 0..256 {
        keep.push(black_box(vec![3_u8; 64 * 1024]));
    }
}

fn profiles_sample_allocations_served_by_jemalloc() {
    heap::set_sample_bytes(64 * 1024);
    heap::set_mode(HeapMode::Sampling);
    let mut keep = Vec::with_capacity(256);
    jemalloc_served_site(&mut keep);
    heap::set_mode(HeapMode::Counting);
    heap::set_sample_bytes(heap::DEFAULT_SAMPLE_BYTES);
    let top = heap_profile(&mut Symbols::new(), ProfileOrder::AllocatedBytes, false, 1);
    assert!(
        top[0]
            .frames
            .iter()
            .any(|f| f.function.ends_with("jemalloc_served_site")),
        "{:#?}",
        top[0].frames
    );
    drop(keep);
}

fn the_plugin_exports_both_sets_of_heap_metrics() {
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .plugin_config(
            "runtime",
            serde_json::json!({ "interval_ms": 50, "process": false, "threads": false, "tokio": false }),
        )
        .build()
        .unwrap();
    monitor.register_plugin(RuntimePlugin::new()).unwrap();
    let live = capture.wait_for_metric("rustmon.heap.live");
    // One tick has both: the tracking allocator's live bytes and jemalloc's allocated bytes,
    // which count the same allocations (jemalloc's rounded up to its size classes).
    let at = live[0].time_unix_nanos;
    let point = |name: &str| {
        let m = capture
            .wait_for_metric(name)
            .into_iter()
            .find(|m| m.time_unix_nanos == at)
            .unwrap_or_else(|| panic!("no {name} in the first tick"));
        match m.data {
            MetricData::Gauge(Number::I64(v)) => v,
            other => panic!("{name}: {other:?}"),
        }
    };
    let tracked_live = point("rustmon.heap.live");
    let jemalloc_allocated = point("rustmon.heap.jemalloc.allocated");
    for name in [
        "rustmon.heap.jemalloc.active",
        "rustmon.heap.jemalloc.resident",
        "rustmon.heap.jemalloc.retained",
        "rustmon.heap.jemalloc.mapped",
        "rustmon.heap.jemalloc.metadata",
    ] {
        point(name);
    }
    assert!(tracked_live > 0, "{tracked_live}");
    assert!(jemalloc_allocated > 0, "{jemalloc_allocated}");
    assert!(monitor.shutdown(WAIT));
}
