//! jemalloc's statistics (feature `jemalloc`) with jemalloc as this binary's global allocator:
//! detection, the reader, and the gauges the plugin exports, under the live `heap` setting.
//!
//! Runs without the test harness (`harness = false`) so no other test allocates or frees while
//! the statistics are compared. Run: `cargo test -p rustmon-runtime --features jemalloc --test jemalloc`.

use std::hint::black_box;

use rustmon_core::Monitor;
use rustmon_core::metrics::{Metric, MetricData, Number};
use rustmon_runtime::jemalloc::{self, Jemalloc, JemallocReader};
use rustmon_runtime::{RuntimeConfig, RuntimePlugin, RuntimeSampler};
use rustmon_test::{Capture, WAIT};

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

/// What the tests keep alive: 64 MiB.
const BIG: u64 = 64 << 20;

const GAUGES: [&str; 6] = [
    "rustmon.heap.jemalloc.allocated",
    "rustmon.heap.jemalloc.active",
    "rustmon.heap.jemalloc.resident",
    "rustmon.heap.jemalloc.retained",
    "rustmon.heap.jemalloc.mapped",
    "rustmon.heap.jemalloc.metadata",
];

fn main() {
    let tests: &[(&str, fn())] = &[
        (
            "jemalloc_is_detected_as_the_global_allocator",
            jemalloc_is_detected_as_the_global_allocator,
        ),
        (
            "the_statistics_grow_by_a_64_mib_allocation_and_shrink_when_it_is_freed",
            the_statistics_grow_by_a_64_mib_allocation_and_shrink_when_it_is_freed,
        ),
        (
            "the_sampler_reports_six_gauges_only_with_heap_on",
            the_sampler_reports_six_gauges_only_with_heap_on,
        ),
        (
            "the_plugin_exports_the_gauges_and_they_follow_a_64_mib_allocation",
            the_plugin_exports_the_gauges_and_they_follow_a_64_mib_allocation,
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

/// 64 MiB with every page written, so it is resident, not only allocated.
fn big_allocation() -> Vec<u8> {
    black_box(vec![1_u8; BIG as usize])
}

fn jemalloc_is_detected_as_the_global_allocator() {
    assert!(jemalloc::is_global_allocator());
    let missing = RuntimeSampler::new().unavailable();
    assert!(
        !missing.iter().any(|(what, _)| what.contains("jemalloc")),
        "{missing:?}"
    );
    // No tracking allocator here: its metrics are named missing, jemalloc's are not.
    let (what, why) = missing
        .iter()
        .find(|(_, why)| why.contains("TrackingAllocator"))
        .expect("the tracking allocator's metrics are listed as missing");
    assert_ne!(*what, "rustmon.heap.*", "{why}");
    assert!(what.contains("live_objects"), "{what}");
}

fn the_statistics_grow_by_a_64_mib_allocation_and_shrink_when_it_is_freed() {
    let reader = JemallocReader::new().unwrap();
    let before = reader.read().unwrap();
    let big = big_allocation();
    let with = reader.read().unwrap();
    assert!(
        with.allocated >= before.allocated + BIG,
        "{before:?} -> {with:?}"
    );
    assert!(with.active >= before.active + BIG, "{before:?} -> {with:?}");
    // Resident grows by the 64 MiB, less any free pages jemalloc returned to the system
    // meanwhile (its decay may purge some at any allocation; at most what it held beyond the
    // active pages).
    assert!(
        with.resident >= before.resident + BIG - (before.resident - before.active),
        "{before:?} -> {with:?}"
    );
    assert!(with.mapped >= before.mapped + BIG, "{before:?} -> {with:?}");
    // jemalloc's documented orderings.
    assert!(with.allocated <= with.active, "{with:?}");
    assert!(with.active <= with.resident, "{with:?}");
    assert!(with.active <= with.mapped, "{with:?}");
    assert!(with.metadata > 0, "{with:?}");
    drop(big);
    let after = reader.read().unwrap();
    assert!(
        after.allocated + BIG <= with.allocated,
        "{with:?} -> {after:?}"
    );
    assert!(after.active + BIG <= with.active, "{with:?} -> {after:?}");
}

fn value(m: &Metric) -> i64 {
    match m.data {
        MetricData::Gauge(Number::I64(v)) => v,
        ref other => panic!("{}: {other:?}", m.name),
    }
}

fn the_sampler_reports_six_gauges_only_with_heap_on() {
    let mut sampler = RuntimeSampler::new();
    let on = RuntimeConfig {
        process: false,
        threads: false,
        tokio: false,
        ..RuntimeConfig::default()
    };
    let metrics = sampler.sample(&on);
    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_ref()).collect();
    assert_eq!(names, GAUGES, "only jemalloc's gauges, in this order");
    for m in &metrics {
        assert_eq!(m.unit, "By");
        assert!(m.attributes.is_empty());
        assert!(!m.description.is_empty());
        assert!(value(m) >= 0);
    }
    let off = RuntimeConfig { heap: false, ..on };
    assert!(sampler.sample(&off).is_empty());
}

/// Waits until a point of `name` satisfies `pred` (panics after `WAIT`); returns it.
fn wait_for_point(capture: &Capture, name: &str, pred: impl Fn(&Metric) -> bool) -> Metric {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(m) = capture
            .metrics()
            .into_iter()
            .find(|m| m.name == name && pred(m))
        {
            return m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no point of {name} as expected: {:?}",
            capture
                .metrics()
                .iter()
                .filter(|m| m.name == name)
                .map(|m| (m.time_unix_nanos, value(m)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn the_plugin_exports_the_gauges_and_they_follow_a_64_mib_allocation() {
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .plugin_config(
            "runtime",
            serde_json::json!({ "interval_ms": 50, "threads": false, "tokio": false }),
        )
        .build()
        .unwrap();
    monitor.register_plugin(RuntimePlugin::new()).unwrap();
    for name in GAUGES {
        let points = capture.wait_for_metric(name);
        assert!(matches!(points[0].data, MetricData::Gauge(Number::I64(_))));
        assert_eq!(points[0].unit, "By");
    }
    let allocated0 = value(&capture.wait_for_metric("rustmon.heap.jemalloc.allocated")[0]);
    let resident0 = value(&capture.wait_for_metric("rustmon.heap.jemalloc.resident")[0]);
    let active0 = value(&capture.wait_for_metric("rustmon.heap.jemalloc.active")[0]);

    let big = big_allocation();
    let allocated = wait_for_point(&capture, "rustmon.heap.jemalloc.allocated", |m| {
        value(m) >= allocated0 + BIG as i64
    });
    // Resident grew in the same tick (less free pages purged since the first tick, at most what
    // jemalloc held beyond its active pages then).
    let resident = capture
        .metrics()
        .into_iter()
        .find(|m| {
            m.name == "rustmon.heap.jemalloc.resident"
                && m.time_unix_nanos == allocated.time_unix_nanos
        })
        .unwrap();
    assert!(
        value(&resident) >= resident0 + BIG as i64 - (resident0 - active0),
        "resident {resident0} -> {}",
        value(&resident)
    );
    // The process's own resident set holds the 64 MiB too (from a later tick, maybe: a tick reads
    // the process before jemalloc, so the allocation can fall between the two).
    #[cfg(target_os = "linux")]
    wait_for_point(&capture, "process.memory.usage", |m| value(m) >= BIG as i64);

    // `heap` off (live): a tick that read the new setting reports no jemalloc gauge. The first
    // tick stamped after the update may have read the setting just before it; the second cannot.
    monitor
        .update_config("runtime", &serde_json::json!({ "heap": false }))
        .unwrap();
    let updated_ns = rustmon_core::now_unix_nanos();
    let ticks_after = || {
        let mut t: Vec<u64> = capture
            .metrics()
            .iter()
            .filter(|m| m.name == "process.uptime" && m.time_unix_nanos > updated_ns)
            .map(|m| m.time_unix_nanos)
            .collect();
        t.sort_unstable();
        t
    };
    let deadline = std::time::Instant::now() + WAIT;
    while ticks_after().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no ticks after the update"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = ticks_after()[1];
    assert!(
        !capture
            .metrics()
            .iter()
            .any(|m| m.name.starts_with("rustmon.heap.jemalloc.") && m.time_unix_nanos == second),
        "jemalloc gauges in a tick with heap off"
    );
    drop(big);
    assert!(monitor.shutdown(WAIT));
}
