//! Attributes for an event that is still running and known only by its id: a child marks its
//! parent (the N+1 detector marks the request that issued the repeated statement).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::attr::KeyValue;
use crate::event::EventRecord;
use crate::ids::SpanId;

/// The most events with annotations waiting for them.
const CAP: usize = 4096;
/// Annotations older than this are given up when the table is full: their event ended unrecorded.
const STALE: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub(crate) struct Annotations {
    waiting: AtomicUsize,
    map: Mutex<HashMap<SpanId, (Instant, Vec<KeyValue>)>>,
}

impl Annotations {
    /// Stores `kv` for event `span` (replacing a value of the same key); `false` when full.
    pub(crate) fn add(&self, span: SpanId, kv: KeyValue) -> bool {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= CAP && !map.contains_key(&span) {
            let now = Instant::now();
            map.retain(|_, (since, _)| now.duration_since(*since) < STALE);
            if map.len() >= CAP {
                return false;
            }
        }
        let (_, attrs) = map
            .entry(span)
            .or_insert_with(|| (Instant::now(), Vec::new()));
        match attrs.iter_mut().find(|a| a.key == kv.key) {
            Some(a) => a.value = kv.value,
            None => attrs.push(kv),
        }
        self.waiting.store(map.len(), Ordering::Release);
        true
    }

    /// Applies what is waiting for `record`, which is then kept whatever the sampling decision.
    /// One atomic load when nothing waits.
    #[inline]
    pub(crate) fn apply(&self, record: &mut EventRecord) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, attrs)) = map.remove(&record.span_id) {
            self.waiting.store(map.len(), Ordering::Release);
            drop(map);
            record.attributes.extend(attrs);
            record.keep = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_replacing() {
        let a = Annotations::default();
        assert!(a.add(SpanId(1), KeyValue::new("n", 1_i64)));
        assert!(a.add(SpanId(1), KeyValue::new("n", 2_i64)));
        let mut record = *crate::pool::take();
        record.span_id = SpanId(1);
        a.apply(&mut record);
        assert_eq!(record.attribute("n").and_then(|v| v.as_i64()), Some(2));
        assert!(record.keep);
        for i in 0..CAP as u64 {
            assert!(a.add(SpanId(100 + i), KeyValue::new("n", 1_i64)));
        }
        assert!(!a.add(SpanId(7), KeyValue::new("n", 1_i64)));
    }
}
