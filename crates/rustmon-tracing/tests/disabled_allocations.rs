//! With monitoring disabled the layer allocates nothing: spans, fields, events, enter and exit cost
//! what they cost on a bare registry. (Its own test binary, with a counting allocator that counts
//! the allocations of the calling thread only, so the pipeline thread does not interfere.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rustmon_core::Monitor;
use rustmon_tracing::RustmonLayer;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt as _;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn workload() {
    for i in 0..100_u64 {
        let span = tracing::info_span!("op", i, ok = true, otel.kind = "client");
        let _e = span.enter();
        tracing::info!(i, "tick");
        tracing::error!("failed");
        tracing::debug_span!("inner").in_scope(|| {});
    }
}

fn allocations_of(dispatch: &Dispatch) -> usize {
    tracing::dispatcher::with_default(dispatch, || {
        workload(); // warm up the registry's span pool and thread-locals
        let before = allocations();
        workload();
        allocations() - before
    })
}

#[test]
fn disabled_monitoring_allocates_nothing() {
    let monitor = Monitor::builder("alloc-test")
        .enabled(false)
        .build()
        .unwrap();
    let bare = Dispatch::new(tracing_subscriber::registry());
    let bridged = Dispatch::new(
        tracing_subscriber::registry().with(RustmonLayer::with_monitor(monitor.clone())),
    );
    // Without any monitor (the global one not installed): nothing either.
    let global = Dispatch::new(tracing_subscriber::registry().with(RustmonLayer::new()));
    // A first round warms up what the test harness and `tracing` set up once per thread.
    for d in [&bare, &bridged, &global] {
        allocations_of(d);
    }
    assert_eq!(allocations_of(&bare), 0, "the bare registry allocates");
    assert_eq!(allocations_of(&bridged), 0, "the disabled layer allocates");
    assert_eq!(
        allocations_of(&global),
        0,
        "the layer without a monitor allocates"
    );
}
