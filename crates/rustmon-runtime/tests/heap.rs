//! The tracking allocator installed as this binary's global allocator: exact counts, the sampled
//! profile, per-request attribution, heap metrics and profile events through the plugin.
//!
//! Runs without the test harness (`harness = false`) so no other thread allocates while the exact
//! counts are checked.

use std::alloc::{Layout, alloc, dealloc};
use std::hint::black_box;
use std::time::Duration;

use rustmon_core::metrics::MetricData;
use rustmon_core::{Kind, Monitor, Value};
use rustmon_runtime::heap::{self, HeapMode};
use rustmon_runtime::profile::{Symbols, heap_profile};
use rustmon_runtime::{MeasureExt, ProfileOrder, RuntimePlugin, TrackingAllocator};
use rustmon_test::{Capture, WAIT};

#[global_allocator]
static GLOBAL: TrackingAllocator = TrackingAllocator::system();

fn main() {
    let tests: &[(&str, fn())] = &[
        (
            "counts_are_exact_on_one_thread",
            counts_are_exact_on_one_thread,
        ),
        (
            "counts_are_exact_across_threads",
            counts_are_exact_across_threads,
        ),
        ("off_mode_counts_nothing", off_mode_counts_nothing),
        (
            "the_heaviest_site_tops_the_profile",
            the_heaviest_site_tops_the_profile,
        ),
        (
            "a_request_is_charged_its_allocations",
            a_request_is_charged_its_allocations,
        ),
        (
            "the_plugin_exports_heap_metrics_and_profiles",
            the_plugin_exports_heap_metrics_and_profiles,
        ),
        (
            "sampling_survives_threads_coming_and_going",
            sampling_survives_threads_coming_and_going,
        ),
        (
            "sampling_every_allocation_neither_recurses_nor_deadlocks",
            sampling_every_allocation_neither_recurses_nor_deadlocks,
        ),
        #[cfg(feature = "jemalloc")]
        (
            "jemalloc_statistics_are_not_reported_when_jemalloc_is_not_the_allocator",
            jemalloc_statistics_are_not_reported_when_jemalloc_is_not_the_allocator,
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

const S: usize = 48;
const N: usize = 1000;
const M: usize = 400;

fn layout() -> Layout {
    Layout::from_size_align(S, 8).unwrap()
}

/// Allocates `n` blocks of `S` bytes into `out` (which must have the capacity already).
fn allocate(n: usize, out: &mut Vec<usize>) {
    for _ in 0..n {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc(layout()) };
        assert!(!p.is_null());
        out.push(p as usize);
    }
}

fn free(ptrs: &[usize]) {
    for &p in ptrs {
        // SAFETY: each pointer came from `alloc(layout())` and is freed once.
        unsafe { dealloc(p as *mut u8, layout()) };
    }
}

fn counts_are_exact_on_one_thread() {
    heap::set_mode(HeapMode::Counting);
    let mut ptrs = Vec::with_capacity(N);
    let before = heap::thread_stats();
    let global_before = heap::stats();
    allocate(N, &mut ptrs);
    free(&ptrs[..M]);
    let after = heap::thread_stats();
    let global_after = heap::stats();
    assert_eq!(after.allocated_objects - before.allocated_objects, N as u64);
    assert_eq!(
        after.allocated_bytes - before.allocated_bytes,
        (N * S) as u64
    );
    assert_eq!(after.freed_objects - before.freed_objects, M as u64);
    assert_eq!(after.freed_bytes - before.freed_bytes, (M * S) as u64);
    // No other thread allocates in this binary meanwhile: the process totals agree exactly.
    assert_eq!(
        global_after.allocated_objects - global_before.allocated_objects,
        N as u64
    );
    assert_eq!(
        global_after.freed_bytes - global_before.freed_bytes,
        (M * S) as u64
    );
    assert_eq!(
        global_after.live_bytes() - global_before.live_bytes(),
        ((N - M) * S) as u64
    );
    free(&ptrs[M..]);
    assert_eq!(heap::stats().live_bytes(), global_before.live_bytes());
}

fn counts_are_exact_across_threads() {
    heap::set_mode(HeapMode::Counting);
    // Threads allocate N blocks each and exit; the main thread frees M of each thread's blocks.
    // Thread start-up and exit allocate too, so measure those first with empty threads.
    let spawn = |n: usize| {
        std::thread::spawn(move || {
            let mut ptrs = Vec::with_capacity(N);
            allocate(n, &mut ptrs);
            ptrs
        })
    };
    let base0 = heap::stats();
    let empty: Vec<_> = (0..4).map(|_| spawn(0)).collect();
    let empty: Vec<Vec<usize>> = empty.into_iter().map(|h| h.join().unwrap()).collect();
    let base1 = heap::stats();
    drop(empty); // kept until measured, as `all` is below
    let overhead = (
        base1.allocated_objects - base0.allocated_objects,
        base1.allocated_bytes - base0.allocated_bytes,
        base1.freed_objects - base0.freed_objects,
        base1.freed_bytes - base0.freed_bytes,
    );

    let start = heap::stats();
    let handles: Vec<_> = (0..4).map(|_| spawn(N)).collect();
    let all: Vec<Vec<usize>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for ptrs in &all {
        free(&ptrs[..M]);
    }
    let mid = heap::stats();
    assert_eq!(
        mid.allocated_objects - start.allocated_objects - overhead.0,
        4 * N as u64
    );
    assert_eq!(
        mid.allocated_bytes - start.allocated_bytes - overhead.1,
        (4 * N * S) as u64
    );
    assert_eq!(
        mid.freed_objects - start.freed_objects - overhead.2,
        4 * M as u64
    );
    assert_eq!(
        mid.freed_bytes - start.freed_bytes - overhead.3,
        (4 * M * S) as u64
    );
    for ptrs in &all {
        free(&ptrs[M..]);
    }
    drop(all);
    let end = heap::stats();
    assert_eq!(
        end.live_objects(),
        start.live_objects(),
        "every block was freed"
    );
    assert_eq!(end.live_bytes(), start.live_bytes());
}

fn off_mode_counts_nothing() {
    heap::set_mode(HeapMode::Off);
    let before = heap::stats();
    black_box(vec![0_u8; 1000]);
    assert_eq!(heap::stats(), before);
    heap::set_mode(HeapMode::Counting);
}

#[inline(never)]
fn heavy_allocation_site(keep: &mut Vec<Vec<u8>>) {
    for _ in 0..400 {
        keep.push(black_box(vec![1_u8; 32 * 1024]));
    }
}

#[inline(never)]
fn light_allocation_site(keep: &mut Vec<Vec<u8>>) {
    for _ in 0..400 {
        keep.push(black_box(vec![1_u8; 256]));
    }
}

fn the_heaviest_site_tops_the_profile() {
    heap::set_sample_bytes(64 * 1024);
    heap::set_mode(HeapMode::Sampling);
    let mut heavy = Vec::with_capacity(400);
    let mut light = Vec::with_capacity(400);
    for _ in 0..5 {
        light_allocation_site(&mut light);
    }
    heavy_allocation_site(&mut heavy);
    heap::set_mode(HeapMode::Counting);

    let mut symbols = Symbols::new();
    let top = heap_profile(&mut symbols, ProfileOrder::AllocatedBytes, false, 5);
    let stack = |i: usize| {
        top[i]
            .frames
            .iter()
            .map(|f| f.function.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        !top.is_empty(),
        "no sites sampled: {:?}",
        heap::sampler_stats()
    );
    assert!(
        stack(0)
            .iter()
            .any(|f| f.ends_with("heavy_allocation_site")),
        "top site: {:#?}",
        stack(0)
    );
    // 400 × 32 KiB = 12.5 MiB, estimated from samples.
    let want = 400.0 * 32.0 * 1024.0;
    let got = top[0].stats.allocated_bytes as f64;
    assert!((got / want - 1.0).abs() < 0.3, "estimated {got} of {want}");
    assert_eq!(top[0].stats.freed_bytes, 0);
    assert_eq!(top[0].stats.live_bytes(), top[0].stats.allocated_bytes);

    // Frees of sampled allocations are credited back to the site.
    drop(heavy);
    let after = heap_profile(&mut symbols, ProfileOrder::FreedBytes, false, 1);
    assert_eq!(after[0].stats.index, top[0].stats.index);
    assert_eq!(after[0].stats.freed_bytes, after[0].stats.allocated_bytes);
    assert_eq!(after[0].stats.live_objects(), 0);
    // Ascending by live bytes puts the freed heavy site (live 0) first among sites.
    let asc = heap_profile(&mut symbols, ProfileOrder::LiveBytes, true, 1000);
    assert_eq!(asc[0].stats.live_bytes(), 0);
    drop(light);
    heap::set_sample_bytes(heap::DEFAULT_SAMPLE_BYTES);
}

#[inline(never)]
async fn heavy_request() -> usize {
    let mut total = 0;
    for _ in 0..10 {
        let chunk = black_box(vec![7_u8; 1024 * 1024]);
        total += chunk.len();
        tokio::task::yield_now().await; // continue on whichever worker picks it up
    }
    total
}

fn a_request_is_charged_its_allocations() {
    heap::set_mode(HeapMode::Counting);
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let heavy = monitor.start_event(Kind::Server, "GET /heavy");
        let light = monitor.start_event(Kind::Server, "GET /light");
        let a = tokio::spawn(heavy_request().in_event(heavy));
        let b = tokio::spawn(async { black_box(vec![0_u8; 100]).len() }.in_event(light));
        assert_eq!(a.await.unwrap(), 10 * 1024 * 1024);
        assert_eq!(b.await.unwrap(), 100);
    });
    monitor.flush(WAIT);
    let int = |e: &rustmon_core::EventRecord, k: &str| match e.attribute(k) {
        Some(Value::I64(v)) => *v,
        other => panic!("{k}: {other:?}"),
    };
    let heavy = capture.expect("GET /heavy").one();
    let bytes = int(&heavy, "rustmon.alloc.bytes");
    assert!(
        (10 << 20..11 << 20).contains(&bytes),
        "charged {bytes} bytes for 10 MiB"
    );
    assert!(int(&heavy, "rustmon.alloc.count") >= 10);
    assert!(int(&heavy, "rustmon.task.polls") >= 11);
    assert!(int(&heavy, "rustmon.task.poll_ns") > 0);
    assert!(int(&heavy, "rustmon.task.sched_wait_ns") > 0);
    let light = capture.expect("GET /light").one();
    assert!(int(&light, "rustmon.alloc.bytes") < 4096);
    rt.shutdown_timeout(Duration::from_secs(5));
    assert!(monitor.shutdown(WAIT));
}

fn the_plugin_exports_heap_metrics_and_profiles() {
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .plugin_config(
            "runtime",
            serde_json::json!({
                "interval_ms": 50, "profile_interval_ms": 200, "profile_sample_bytes": 65536,
                "profile_limit": 3, "process": false, "threads": false,
            }),
        )
        .build()
        .unwrap();
    monitor.register_plugin(RuntimePlugin::new()).unwrap();
    assert_eq!(heap::mode(), HeapMode::Sampling);
    let mut keep = Vec::with_capacity(400);
    heavy_allocation_site(&mut keep);

    for name in [
        "rustmon.heap.allocated",
        "rustmon.heap.freed",
        "rustmon.heap.allocations",
        "rustmon.heap.deallocations",
        "rustmon.heap.live",
        "rustmon.heap.live_objects",
        "rustmon.heap.allocation_rate",
    ] {
        capture.wait_for_metric(name);
    }
    let live = capture.wait_for_metric("rustmon.heap.live");
    assert!(matches!(live.last().unwrap().data, MetricData::Gauge(_)));

    assert!(
        capture.wait_until(|events| events.iter().any(|e| e.name == "heap.profile")),
        "no heap profile: {}",
        capture.summary()
    );
    monitor.flush(WAIT);
    let profile = capture
        .expect("heap.profile")
        .kind(Kind::Runtime)
        .attr("heap.profile.order", "allocated_bytes")
        .count(
            capture
                .events()
                .iter()
                .filter(|e| e.name == "heap.profile")
                .count(),
        );
    let first = &profile[0];
    let sites: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|e| e.name == "heap.profile.site" && e.parent_span_id == Some(first.span_id))
        .collect();
    assert!(
        !sites.is_empty() && sites.len() <= 3,
        "{}",
        capture.summary()
    );
    let top = sites
        .iter()
        .find(|e| e.attribute("heap.site.rank") == Some(&Value::I64(1)))
        .unwrap();
    let stack = top.attribute("code.stacktrace").unwrap().to_string();
    assert!(stack.contains("heavy_allocation_site"), "{stack}");
    drop(keep);
    assert!(monitor.shutdown(WAIT));
    heap::set_mode(HeapMode::Counting);
}

#[inline(never)]
fn churn(seed: u64, n: usize) {
    let mut keep: Vec<Vec<u8>> = Vec::with_capacity(64);
    let mut x = seed | 1;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keep.push(black_box(vec![0_u8; 16 + (x % 4096) as usize]));
        if keep.len() == 64 {
            // Free half, from anywhere in the vector.
            for k in 0..32 {
                keep.swap_remove((x as usize + k) % keep.len());
            }
        }
    }
}

fn sampling_survives_threads_coming_and_going() {
    heap::set_sample_bytes(4096);
    heap::set_mode(HeapMode::Sampling);
    let before = heap::sampler_stats();
    let live_before = heap::stats().live_bytes();
    for round in 0..5_u64 {
        let threads: Vec<_> = (0..4_u64)
            .map(|t| std::thread::spawn(move || churn(round * 8 + t + 1, 5000)))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    heap::set_mode(HeapMode::Counting);
    heap::set_sample_bytes(heap::DEFAULT_SAMPLE_BYTES);
    let after = heap::sampler_stats();
    assert!(
        after.samples - before.samples > 10_000,
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        after.untracked, before.untracked,
        "the pointer map never filled"
    );
    // Every sampled allocation was freed, every free was found, and blocks were reused.
    assert_eq!(after.tracked, before.tracked, "{before:?} -> {after:?}");
    assert_eq!(heap::stats().live_bytes(), live_before);
    let mut symbols = Symbols::new();
    let churn_sites: Vec<_> = heap_profile(&mut symbols, ProfileOrder::AllocatedBytes, false, 1000)
        .into_iter()
        .filter(|s| s.frames.iter().any(|f| f.function.ends_with("churn")))
        .collect();
    assert!(!churn_sites.is_empty());
    for s in &churn_sites {
        assert_eq!(s.stats.freed_bytes, s.stats.allocated_bytes);
        assert_eq!(s.stats.freed_objects, s.stats.allocated_objects);
    }
}

fn sampling_every_allocation_neither_recurses_nor_deadlocks() {
    // Every allocation sampled (the stack walk and the tables are exercised on each one) while
    // the main thread symbolises under the backtrace crate's lock, and more sampled allocations
    // stay live than the pointer map holds.
    heap::set_sample_bytes(1);
    heap::set_mode(HeapMode::Sampling);
    let before = heap::sampler_stats();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..3_u64)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 2000 {
                    churn(t + 100, 100);
                    n += 100;
                }
            })
        })
        .collect();
    let mut symbols = Symbols::new();
    for _ in 0..5 {
        black_box(heap_profile(
            &mut symbols,
            ProfileOrder::AllocatedObjects,
            false,
            50,
        ));
    }
    let many: Vec<Box<u64>> = (0..heap::MAX_TRACKED as u64 + 2000).map(Box::new).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let full = heap::sampler_stats();
    assert!(full.untracked > before.untracked, "{full:?}");
    drop(many);
    heap::set_mode(HeapMode::Counting);
    heap::set_sample_bytes(heap::DEFAULT_SAMPLE_BYTES);
    let after = heap::sampler_stats();
    assert!(after.samples - before.samples > 10_000, "{after:?}");
    // Frees were credited while the map was full; what stays tracked is what symbolising keeps
    // (the backtrace crate's debug-info cache, `symbols`): live, so rightly tracked.
    assert!(after.tracked < full.tracked, "{full:?} -> {after:?}");
    drop(symbols);
}

/// With the `jemalloc` feature, jemalloc is linked but this binary's allocator is the tracking
/// allocator around the system one: jemalloc's statistics would describe an idle allocator, so
/// they are named unavailable and not reported.
#[cfg(feature = "jemalloc")]
fn jemalloc_statistics_are_not_reported_when_jemalloc_is_not_the_allocator() {
    use rustmon_runtime::{RuntimeConfig, RuntimeSampler};
    assert!(!rustmon_runtime::jemalloc::is_global_allocator());
    let mut sampler = RuntimeSampler::new();
    let missing = sampler.unavailable();
    assert!(
        missing
            .iter()
            .any(|(what, why)| *what == "rustmon.heap.jemalloc.*" && why.contains("jemalloc")),
        "{missing:?}"
    );
    let metrics = sampler.sample(&RuntimeConfig::default());
    assert!(metrics.iter().any(|m| m.name == "rustmon.heap.live"));
    assert!(
        !metrics
            .iter()
            .any(|m| m.name.starts_with("rustmon.heap.jemalloc.")),
        "jemalloc gauges without jemalloc"
    );
}
