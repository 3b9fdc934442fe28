//! N+1 detection: counts executions of each fingerprint under each parent event.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, OnceLock, PoisonError};

use rustmon_core::SpanId;

use crate::fingerprint::FastHasher;

const SHARDS: usize = 8;
const PER_SHARD: usize = 1024;

type Map = HashMap<(u64, u64), u32, BuildHasherDefault<FastHasher>>;

/// Counts `(parent span, fingerprint)` pairs, bounded: each shard is emptied when full, so a
/// parent whose statements straddle a reset is counted from the reset on (never over-counted).
///
/// # Examples
/// ```
/// use rustmon_core::SpanId;
/// use rustmon_sql::NPlusOne;
/// let counter = NPlusOne::new();
/// let parent = SpanId(7);
/// for _ in 0..4 { counter.hit(parent, 42); }
/// assert_eq!(counter.hit(parent, 42), 5);
/// assert_eq!(counter.hit(SpanId(8), 42), 1);
/// ```
#[derive(Debug)]
pub struct NPlusOne {
    shards: [Mutex<Map>; SHARDS],
}

impl Default for NPlusOne {
    fn default() -> Self {
        NPlusOne::new()
    }
}

impl NPlusOne {
    /// An empty counter.
    pub fn new() -> Self {
        NPlusOne {
            shards: std::array::from_fn(|_| Mutex::new(Map::default())),
        }
    }

    /// The process-wide counter all integrations share.
    pub fn shared() -> &'static NPlusOne {
        static N: OnceLock<NPlusOne> = OnceLock::new();
        N.get_or_init(NPlusOne::new)
    }

    /// Counts one execution of fingerprint `hash` under `parent`; returns the count so far.
    pub fn hit(&self, parent: SpanId, hash: u64) -> u32 {
        let shard = &self.shards[(parent.0 as usize ^ hash as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= PER_SHARD && !map.contains_key(&(parent.0, hash)) {
            map.clear();
        }
        let n = map.entry((parent.0, hash)).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }
}
