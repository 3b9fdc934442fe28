//! Recycled event records.
//!
//! A live event keeps its record in a box taken from a per-thread cache, so moving an event, and
//! handing it to the pipeline, moves a pointer instead of half a kilobyte. The pipeline clears
//! delivered records and returns them to a shared pool, from which threads refill their caches.
//! In steady state recording allocates nothing; a box is allocated only when the pool is empty
//! (start-up, bursts), and freed when the pool is full.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::OnceLock;

use crossbeam_queue::ArrayQueue;

use crate::attr::Attributes;
use crate::event::{EventRecord, Kind, Status};
use crate::ids::{SpanId, TraceId};

/// Records kept for reuse across all threads.
const POOL_CAPACITY: usize = 8192;
/// Attribute capacity a recycled record keeps.
const KEEP_ATTRIBUTES: usize = 16;
/// Records a thread keeps at hand.
const CACHE_CAPACITY: usize = 32;

fn pool() -> &'static ArrayQueue<Box<EventRecord>> {
    static POOL: OnceLock<ArrayQueue<Box<EventRecord>>> = OnceLock::new();
    POOL.get_or_init(|| ArrayQueue::new(POOL_CAPACITY))
}

struct Cache {
    boxes: [Option<Box<EventRecord>>; CACHE_CAPACITY],
    len: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache { boxes: [const { None }; CACHE_CAPACITY], len: 0 })
    };
}

/// A cleared record: from this thread's cache, else the shared pool, else newly allocated.
#[inline]
pub(crate) fn take() -> Box<EventRecord> {
    CACHE
        .try_with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len == 0 {
                let pool = pool();
                while cache.len < CACHE_CAPACITY / 2 {
                    let Some(b) = pool.pop() else { break };
                    let i = cache.len;
                    cache.boxes[i] = Some(b);
                    cache.len += 1;
                }
            }
            if cache.len == 0 {
                return None;
            }
            cache.len -= 1;
            let i = cache.len;
            cache.boxes[i].take()
        })
        .ok()
        .flatten()
        .unwrap_or_else(blank)
}

#[cold]
fn blank() -> Box<EventRecord> {
    Box::new(EventRecord {
        trace_id: TraceId(0),
        span_id: SpanId(0),
        parent_span_id: None,
        parent_remote: false,
        sampled: false,
        keep: false,
        trace_state: None,
        kind: Kind::Custom,
        status: Status::Unset,
        name: Cow::Borrowed(""),
        plugin: "custom",
        start_unix_nanos: 0,
        duration_nanos: 0,
        attributes: Attributes::new(),
        errors: Vec::new(),
        span_events: Vec::new(),
    })
}

/// Clears a record (off the hot path, on the pipeline thread) and returns it to the pool.
pub(crate) fn recycle(mut record: Box<EventRecord>) {
    record.name = Cow::Borrowed("");
    // A spilled buffer of moderate size is kept for the next event (an HTTP server event carries
    // 9 to 12 attributes); a large one is freed.
    if record.attributes.capacity() > KEEP_ATTRIBUTES {
        record.attributes = Attributes::new();
    } else {
        record.attributes.clear();
    }
    clear_small(&mut record.errors);
    clear_small(&mut record.span_events);
    // A full pool frees the record.
    let _ = pool().push(record);
}

fn clear_small<T>(v: &mut Vec<T>) {
    if v.capacity() > 8 {
        *v = Vec::new();
    } else {
        v.clear();
    }
}
