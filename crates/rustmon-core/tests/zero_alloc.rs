//! Recording an event with up to 8 static-key attributes allocates nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use rustmon_core::{Event, Kind, Monitor};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a thread-local `Cell` with a const
// initialiser, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
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

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

fn record() {
    let root = Event::start(Kind::Server, "GET /orders/{id}");
    let _g = root.enter();
    let mut e = Event::start(Kind::Database, "SELECT orders");
    e.set("db.system.name", "postgresql")
        .set("db.operation.name", "SELECT")
        .set("db.collection.name", "orders")
        .set("server.address", "127.0.0.1")
        .set("server.port", 5432_i64)
        .set("db.response.returned_rows", 3_u64)
        .set("cache.hit", false)
        .set("ratio", 0.5_f64);
    e.finish();
    drop(_g);
    root.finish();
}

#[test]
fn recording_with_eight_static_attributes_does_not_allocate() {
    let m = Monitor::builder("alloc-test").build().unwrap();
    m.install_global();
    // Warm up: thread-locals, the clock anchor, the shard index.
    record();
    assert!(m.flush(Duration::from_secs(10)));
    let n = allocations_in(record);
    assert_eq!(n, 0, "recording allocated {n} times");
    // And with monitoring disabled.
    m.disable();
    assert_eq!(allocations_in(record), 0);
    m.shutdown(Duration::from_secs(10));
}
