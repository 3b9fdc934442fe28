//! With no global monitor, or monitoring disabled, `#[monitor]` functions work and record nothing,
//! and their `fields` expressions are not evaluated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustmon_core::{Monitor, context};
use rustmon_macros::monitor;
use rustmon_test::Capture;

/// Counts the allocations of the calling thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
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

#[monitor(err, fields(cost = costly(), name = %"formatted"))]
fn pure(x: u64) -> Result<u64, u64> {
    if x % 2 == 0 { Ok(x) } else { Err(x) }
}

static EVALUATED: AtomicUsize = AtomicUsize::new(0);

fn costly() -> u64 {
    EVALUATED.fetch_add(1, Ordering::Relaxed);
    1
}

#[monitor(err, fields(cost = costly()))]
fn work(fail: bool) -> Result<u8, String> {
    assert_eq!(context::current(), None);
    if fail { Err("no".into()) } else { Ok(1) }
}

#[monitor(fields(cost = costly()))]
async fn async_work() -> u8 {
    2
}

#[test]
fn disabled_monitoring_records_nothing_and_skips_fields() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // No global monitor yet.
    assert_eq!(work(false), Ok(1));
    assert_eq!(rt.block_on(async_work()), 2);

    let capture = Capture::new();
    let monitor = Monitor::builder("disabled-test")
        .listener(capture.listener())
        .enabled(false)
        .build()
        .unwrap();
    monitor.install_global();
    assert!(work(true).is_err());
    assert_eq!(rt.block_on(async_work()), 2);
    let before = ALLOCATIONS.with(Cell::get);
    for i in 0..100 {
        let _ = std::hint::black_box(pure(i));
    }
    assert_eq!(
        ALLOCATIONS.with(Cell::get),
        before,
        "disabled calls allocate"
    );
    assert_eq!(EVALUATED.load(Ordering::Relaxed), 0);

    monitor.enable();
    assert_eq!(rt.block_on(async_work()), 2);
    assert!(monitor.flush(Duration::from_secs(5)));
    assert_eq!(EVALUATED.load(Ordering::Relaxed), 1);
    assert_eq!(capture.events().len(), 1, "{}", capture.summary());
    capture.expect("async_work").one();
}
